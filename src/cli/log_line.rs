//! One log event, one line: what the text format writes is escaped so that
//! no value can start a new line or drive the terminal.
//!
//! Request-supplied strings (an object's `metadata.name`, an annotation, a
//! token's claims) end up in log fields; in text format tracing-subscriber
//! writes them as they are, so a name holding a newline and ANSI escapes
//! could forge a whole `certificate issued ...` line, and a PEM spans a
//! dozen lines. tracing-subscriber writes each event with one `write_all`
//! ending in a newline; every other line break or control character in it
//! is written as an escape (`\n`, `\r`, `\x1b`, `\u{2028}`). JSON lines are
//! escaped already and pass through unchanged.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `event` (one formatted event, ending with a newline) on a single line.
pub fn single_line(event: &[u8]) -> Cow<'_, [u8]> {
    let text = String::from_utf8_lossy(event);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    if !body.chars().any(needs_escape) {
        return Cow::Borrowed(event);
    }
    let mut line = String::with_capacity(event.len() + 16);
    for c in body.chars() {
        match c {
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c if (c as u32) < 0x100 && needs_escape(c) => {
                let _ = write!(line, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(line, "\\u{{{:x}}}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('\n');
    Cow::Owned(line.into_bytes())
}

/// Line breaks and control characters, tab aside (tracing-subscriber does
/// not write tabs itself, and a tab cannot start a line).
fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{2028}' | '\u{2029}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_line_stays_inside_its_field() {
        let event = b"INFO admission name=web\n2026-01-01T00:00:00Z INFO certificate issued identity=spiffe://cluster.local/ns/kube-system/sa/admin\x1b[2K\n";
        let line = single_line(event);
        let text = std::str::from_utf8(&line).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(text.contains("name=web\\n2026"), "{text}");
        assert!(text.contains("\\x1b[2K"), "{text}");
    }

    #[test]
    fn ordinary_lines_are_written_as_they_are() {
        let event = "INFO serving listen=127.0.0.1:15017 ca=127.0.0.1:15012 é\n".as_bytes();
        assert!(matches!(single_line(event), Cow::Borrowed(_)));
    }

    #[test]
    fn unicode_line_separators_are_escaped_too() {
        let line = single_line("a\u{2028}b\u{85}c\n".as_bytes());
        assert_eq!(std::str::from_utf8(&line).unwrap(), "a\\u{2028}b\\x85c\n");
    }
}
