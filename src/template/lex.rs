//! Splits a template's text into text and actions (`{{ ... }}`, with Go's
//! `{{-`/`-}}` trimming and `{{/* comments */}}`), and an action into
//! tokens.

/// A piece of the template: literal text, or an action's tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Literal text, already trimmed by its neighbours' `-` markers.
    Text(String),
    /// An action's tokens, with the line the action starts on.
    Action { tokens: Vec<Tok>, line: usize },
}

/// A token of an action, and whether white space came before it (Go tells
/// `.A.B`, one chain, from `.A .B`, two arguments, by it).
#[derive(Debug, Clone, PartialEq)]
pub struct Tok {
    /// What it is.
    pub kind: Kind,
    /// White space (or the action's start) came before it.
    pub spaced: bool,
}

/// The kinds of tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A name: a function or a keyword (`if`, `range`, `true`, `nil`...).
    Ident(String),
    /// `.Name` (a field of what precedes it, or of dot).
    Field(String),
    /// `.` alone.
    Dot,
    /// `$name`, or `$` alone.
    Var(String),
    /// A string constant (quoted or raw), unescaped.
    Str(String),
    /// A number constant.
    Num(f64),
    /// `(`
    Open,
    /// `)`
    Close,
    /// `|`
    Pipe,
    /// `:=`
    Declare,
    /// `=`
    Assign,
    /// `,`
    Comma,
}

/// A lexing error and the line it is on.
pub type LexError = (usize, String);

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits `text` into items.
pub fn items(text: &str) -> Result<Vec<Item>, LexError> {
    let mut out: Vec<Item> = Vec::new();
    let mut rest = text;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let Some(open) = rest.find("{{") else {
            push_text(&mut out, rest, trim_next, false);
            break;
        };
        let before = &rest[..open];
        let after = &rest[open + 2..];
        let trim_left = after.starts_with("- ")
            || after.starts_with("-\t")
            || after.starts_with("-\n")
            || after.starts_with("-\r");
        push_text(&mut out, before, trim_next, trim_left);
        line += before.matches('\n').count();
        let body_start = if trim_left { &after[2..] } else { after };
        let (tokens, consumed, trim_right) = if body_start.trim_start().starts_with("/*") {
            comment(body_start, line)?
        } else {
            action(body_start, line)?
        };
        let taken = &body_start[..consumed];
        if let Some(tokens) = tokens {
            out.push(Item::Action { tokens, line });
        }
        line += taken.matches('\n').count();
        rest = &body_start[consumed..];
        trim_next = trim_right;
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Item>, text: &str, trim_start: bool, trim_end: bool) {
    let mut t = text;
    if trim_start {
        t = t.trim_start_matches(is_space);
    }
    if trim_end {
        t = t.trim_end_matches(is_space);
    }
    if !t.is_empty() {
        out.push(Item::Text(t.to_string()));
    }
}

/// The end of an action at the start of `s`: `}}` or ` -}}`, its length
/// and whether it trims.
fn close_at(s: &str) -> Option<(usize, bool)> {
    if s.starts_with("}}") {
        return Some((2, false));
    }
    let trimmed = s.trim_start_matches(is_space);
    if trimmed.len() < s.len() && trimmed.starts_with("-}}") {
        return Some((s.len() - trimmed.len() + 3, true));
    }
    None
}

type Lexed = (Option<Vec<Tok>>, usize, bool);

fn comment(s: &str, line: usize) -> Result<Lexed, LexError> {
    let start = s.find("/*").unwrap_or(0);
    let Some(end) = s[start..].find("*/") else {
        return Err((line, "unclosed comment".into()));
    };
    let after = start + end + 2;
    match close_at(&s[after..]) {
        Some((n, trim)) => Ok((None, after + n, trim)),
        None => Err((line, "comment ends before closing delimiter".into())),
    }
}

fn action(s: &str, line: usize) -> Result<Lexed, LexError> {
    let mut tokens = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut spaced = true;
    let mut here = line;
    loop {
        if let Some((n, trim)) = close_at(&s[i..]) {
            return Ok((Some(tokens), i + n, trim));
        }
        let Some(c) = s[i..].chars().next() else {
            return Err((here, "unclosed action".into()));
        };
        if is_space(c) {
            if c == '\n' {
                here += 1;
            }
            i += 1;
            spaced = true;
            continue;
        }
        let (kind, len) = match c {
            '(' => (Kind::Open, 1),
            ')' => (Kind::Close, 1),
            '|' => (Kind::Pipe, 1),
            ',' => (Kind::Comma, 1),
            '=' => (Kind::Assign, 1),
            ':' if bytes.get(i + 1) == Some(&b'=') => (Kind::Declare, 2),
            '"' => quoted(&s[i..], here)?,
            '`' => match s[i + 1..].find('`') {
                Some(end) => (Kind::Str(s[i + 1..i + 1 + end].to_string()), end + 2),
                None => return Err((here, "unterminated raw quoted string".into())),
            },
            '\'' => {
                let mut cs = s[i + 1..].chars();
                match (cs.next(), cs.next()) {
                    (Some(ch), Some('\'')) => (Kind::Num(ch as u32 as f64), 2 + ch.len_utf8()),
                    _ => return Err((here, "bad character constant".into())),
                }
            }
            '.' => {
                let n = word_len(&s[i + 1..]);
                if n == 0 {
                    (Kind::Dot, 1)
                } else {
                    (Kind::Field(s[i + 1..i + 1 + n].to_string()), n + 1)
                }
            }
            '$' => {
                let n = word_len(&s[i + 1..]);
                (Kind::Var(s[i..i + 1 + n].to_string()), n + 1)
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => number(&s[i..], here)?,
            c if c.is_alphabetic() || c == '_' => {
                let n = word_len(&s[i..]);
                (Kind::Ident(s[i..i + n].to_string()), n)
            }
            other => return Err((here, format!("unexpected {other:?} in action"))),
        };
        tokens.push(Tok { kind, spaced });
        spaced = false;
        i += len;
    }
}

fn word_len(s: &str) -> usize {
    s.char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map(|(i, _)| i)
        .unwrap_or(s.len())
}

fn quoted(s: &str, line: usize) -> Result<(Kind, usize), LexError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Kind::Str(out), i + 1)),
            '\n' => break,
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some('\'') => out.push('\''),
                Some(other) => return Err((line, format!("unknown escape \\{other} in string"))),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err((line, "unterminated quoted string".into()))
}

fn number(s: &str, line: usize) -> Result<(Kind, usize), LexError> {
    let n = s
        .char_indices()
        .skip(1)
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_')))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let text = &s[..n];
    let parsed = if let Some(hex) = text.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok().map(|v| v as f64)
    } else {
        text.replace('_', "").parse::<f64>().ok()
    };
    match parsed {
        Some(v) => Ok((Kind::Num(v), n)),
        None => Err((line, format!("bad number syntax: {text:?}"))),
    }
}
