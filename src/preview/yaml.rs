//! A YAML writer for Kubernetes objects that Kubernetes reads back as it
//! was meant.
//!
//! Kubernetes (and `kubectl`) read YAML with go-yaml v2's YAML 1.1 rules,
//! under which `yes`, `no`, `on`, `off`, `y`, `n`, `~`, `1_000`, `0x1F`,
//! `012`, `1:20` (base 60), `.inf` or `2001-12-14` are not strings. A
//! YAML 1.2 writer (serde_yaml's) prints such strings plain, so
//! `data: {X: "yes"}` came back as a boolean and `kubectl apply` failed.
//! Here every string that a YAML 1.1 or 1.2 reader could take for another
//! type, or that is not a safe plain scalar, is quoted: single quotes when
//! it is printable on one line, double quotes with escapes otherwise.
//! The layout is serde_yaml's block style (sequences at their key's
//! indentation), so the output reads as before.

use serde_json::Value;

/// `value` as one YAML document (no `---` line), ending in a newline.
pub(super) fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (key, value) in map {
        push_indent(indent, out);
        out.push_str(&string(key));
        out.push(':');
        match value {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                mapping(m, indent + 2, out);
            }
            Value::Array(items) if !items.is_empty() => {
                out.push('\n');
                sequence(items, indent, out);
            }
            other => {
                out.push(' ');
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        push_indent(indent, out);
        out.push_str("- ");
        // A collection starts on the dash's line: render it two columns in
        // and drop the indentation of its first line.
        let mut nested = String::new();
        match item {
            Value::Object(m) if !m.is_empty() => mapping(m, indent + 2, &mut nested),
            Value::Array(a) if !a.is_empty() => sequence(a, indent + 2, &mut nested),
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
                continue;
            }
        }
        out.push_str(&nested[indent + 2..]);
    }
}

fn push_indent(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar or an empty collection, on one line.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string as a YAML scalar: plain when every reader takes it for that
/// very string, else quoted.
pub(super) fn string(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else if s.chars().all(|c| c == ' ' || is_printable(c)) {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        double_quoted(s)
    }
}

/// Printable on one line in a single-quoted scalar: no line break, no
/// control character, no byte-order mark.
fn is_printable(c: char) -> bool {
    !c.is_control() && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == ' ' || is_printable(c) => out.push(c),
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Whether `s` can be written plain: a YAML 1.1 and a YAML 1.2 reader
/// both resolve it to this very string. Conservative: a string that might
/// be anything else is quoted.
fn is_plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let last = s.chars().next_back().unwrap_or(first);
    // Indicators that start something else; whitespace that would be lost.
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) && !starts_dash_word(s)
        || first.is_whitespace()
        || last.is_whitespace()
        || last == ':'
    {
        return false;
    }
    if s.contains(": ")
        || s.contains(" #")
        || s.contains('\t')
        || s.starts_with("---")
        || s.starts_with("...")
    {
        return false;
    }
    if !s.chars().all(is_printable) {
        return false;
    }
    !resolves_to_non_string(s)
}

/// `-name` or `--flag`: a dash followed by a letter or another dash is a
/// plain scalar, not a sequence entry (`- `) or a number (`-1`).
fn starts_dash_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next() == Some('-')
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || (c == '-' && !s.starts_with("---")))
}

/// Whether a YAML 1.1 (go-yaml v2, PyYAML) or 1.2 (core schema) reader
/// would take the plain scalar `s` for null, a boolean, a number, a date
/// or a merge key.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        "<<", "=",
    ];
    if WORDS.contains(&s) {
        return true;
    }
    // Numbers of every base and form (1_000, 0x1F, 0o17, 012, 0b101, 1:20,
    // 1e3, .5, +1, .inf, .NaN) and dates (2001-12-14...) all start with a
    // digit, or a sign or dot before one; `.inf`/`.nan` in any case.
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == ".inf" || lower == ".nan" {
        return true;
    }
    let mut chars = body.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() => number_like(body),
        Some('.') => chars.next().is_some_and(|c| c.is_ascii_digit()) && number_like(body),
        _ => false,
    }
}

/// Made only of what numbers, base-60 numbers and timestamps are made of:
/// such a string might be one, so it is quoted (`1.26.0` too, harmlessly).
fn number_like(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '+' | '-' | ' ' | '\t'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Strings a YAML 1.1 reader takes for another type (or that are not
    /// plain scalars at all): each must come out quoted.
    const NOT_PLAIN: &[&str] = &[
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "y",
        "Y",
        "n",
        "N",
        "true",
        "True",
        "TRUE",
        "false",
        "False",
        "FALSE",
        "~",
        "null",
        "Null",
        "NULL",
        "",
        "1_000",
        "0x1F",
        "0o17",
        "012",
        "0b101",
        "1:20",
        "190:20:30",
        "1:20.5",
        ".inf",
        "-.inf",
        "+.INF",
        ".nan",
        ".NaN",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "2002-12-14 21:59:43.10 -5",
        "1e3",
        "1.5",
        "-1",
        "+12",
        ".5",
        "1.",
        "<<",
        "=",
        "123",
        "1.26.0",
        "- item",
        "-",
        "---",
        "...x",
        "? x",
        "a: b",
        "a #b",
        "trailing:",
        " lead",
        "trail ",
        "#x",
        "&x",
        "*x",
        "!x",
        "|x",
        ">x",
        "'x",
        "\"x",
        "%x",
        "@x",
        "`x",
        "{x",
        "[x",
        "]",
        "}",
        ",x",
        "line\nbreak",
        "tab\there",
        "bell\u{7}",
        "*",
    ];

    #[test]
    fn strings_a_yaml_1_1_reader_would_retype_are_quoted() {
        for s in NOT_PLAIN {
            let out = string(s);
            assert!(
                out.starts_with('\'') || out.starts_with('"'),
                "{s:?} written plain as {out}"
            );
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for s in [
            "istio-proxy",
            "docker.io/istio/proxyv2:1.26.0",
            "--log_output_level=default:info",
            "-c",
            "10.0.0.0/8,172.16.0.0/12",
            "sidecar.istio.io/status",
            "a b",
            "café",
            "yesterday",
            "nope",
            "x1:20",
            "http://example.com/a#b",
        ] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn quoted_forms_escape_what_they_must() {
        assert_eq!(string("it's"), "it's");
        assert_eq!(string("'yes'"), "'''yes'''");
        assert_eq!(string("a\nb \"c\" \\"), "\"a\\nb \\\"c\\\" \\\\\"");
        assert_eq!(string("\u{2028}"), "\"\\u2028\"");
        assert_eq!(string("\u{1}"), "\"\\x01\"");
    }

    #[test]
    fn layout_is_block_style_with_sequences_at_their_keys_indentation() {
        let value = serde_json::json!({
            "metadata": {"name": "f", "labels": {}},
            "data": {"X": "yes", "on": "1_000"},
            "list": [{"a": 1, "b": [true, null]}, [1, 2], "n", []],
        });
        assert_eq!(
            to_string(&value),
            "data:\n  X: 'yes'\n  'on': '1_000'\nlist:\n- a: 1\n  b:\n  - true\n  - null\n- - 1\n  - 2\n- 'n'\n- []\nmetadata:\n  labels: {}\n  name: f\n"
        );
    }
}
