//! Go's `fmt.Sprintf`, for the verbs templates use.

use std::fmt::Write as _;

use serde_json::Value;

use super::{float, go_quote, int, print, s};

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %q %t %f %x
/// %%`, with flags `-` and `0`, a width and a precision.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut zero = false;
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            precision = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let text = match verb {
            'd' => int(arg)
                .map(|i| i.to_string())
                .unwrap_or_else(|_| format!("%!d({})", s(arg))),
            'q' => go_quote(&s(arg)),
            'f' => float(arg)
                .map(|f| format!("{:.*}", precision.unwrap_or(6), f))
                .unwrap_or_else(|| format!("%!f({})", s(arg))),
            'x' => match arg {
                Value::Number(_) => format!("{:x}", int(arg).unwrap_or(0)),
                other => s(other).bytes().map(|b| format!("{b:02x}")).collect(),
            },
            's' | 'v' | 't' => {
                let t = print(arg);
                match precision {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            other => format!("%!{other}({})", s(arg)),
        };
        let w: usize = width.parse().unwrap_or(0);
        let pad = w.saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else {
            out.push_str(&(if zero { "0" } else { " " }).repeat(pad));
            out.push_str(&text);
        }
    }
    let extra: Vec<String> = args.map(s).collect();
    if !extra.is_empty() {
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}
