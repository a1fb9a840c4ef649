//! Kubernetes resource quantities in their canonical form ("4000m" -> "4",
//! "1024Mi" -> "1Gi"), the form the API server and Istio's injector write.

const DECIMAL: &[(&str, i32)] = &[
    ("E", 18),
    ("P", 15),
    ("T", 12),
    ("G", 9),
    ("M", 6),
    ("k", 3),
    ("", 0),
    ("m", -3),
    ("u", -6),
    ("n", -9),
];

const BINARY: &[(&str, u32)] = &[
    ("Ei", 60),
    ("Pi", 50),
    ("Ti", 40),
    ("Gi", 30),
    ("Mi", 20),
    ("Ki", 10),
];

/// Whether `s` is a Kubernetes quantity (`<number><suffix>`).
pub fn is_valid(s: &str) -> bool {
    parse(s).is_some()
}

/// The canonical form of a quantity; a string that is not a quantity, or
/// one this function cannot represent exactly, is returned unchanged.
pub fn canonical(s: &str) -> String {
    match parse(s) {
        Some(Parsed::Decimal(nanos)) => format_decimal(nanos),
        Some(Parsed::Binary(nanos)) => format_binary(nanos),
        None => s.to_string(),
    }
}

enum Parsed {
    /// Value in units of 10^-9.
    Decimal(i128),
    /// Value in units of 10^-9, written with a binary suffix.
    Binary(i128),
}

fn parse(s: &str) -> Option<Parsed> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let (neg, digits) = match num.as_bytes().first() {
        Some(b'-') => (true, &num[1..]),
        Some(b'+') => (false, &num[1..]),
        _ => (false, num),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || int_part.len() + frac_part.len() > 27
    {
        return None;
    }
    let mut mantissa: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let frac = frac_part.len() as i32;
    let sign = if neg { -1 } else { 1 };
    if let Some((_, shift)) = BINARY.iter().find(|(n, _)| *n == suffix) {
        let v = mantissa.checked_mul(1i128.checked_shl(*shift)?)?;
        return Some(Parsed::Binary(sign * scale(v, 9 - frac)?));
    }
    let (_, exp) = DECIMAL.iter().find(|(n, _)| *n == suffix)?;
    Some(Parsed::Decimal(sign * scale(mantissa, 9 + exp - frac)?))
}

/// `v * 10^e`, rounding up (as Kubernetes does) when `e` is negative.
fn scale(v: i128, e: i32) -> Option<i128> {
    if e >= 0 {
        v.checked_mul(10i128.checked_pow(e as u32)?)
    } else {
        let d = 10i128.checked_pow((-e) as u32)?;
        Some((v + d - 1) / d)
    }
}

fn format_decimal(nanos: i128) -> String {
    if nanos == 0 {
        return "0".into();
    }
    for (suffix, exp) in DECIMAL {
        let unit = 10i128.pow((9 + exp) as u32);
        if nanos % unit == 0 {
            return format!("{}{}", nanos / unit, suffix);
        }
    }
    format!("{nanos}n")
}

fn format_binary(nanos: i128) -> String {
    let unit = 1_000_000_000i128;
    if nanos % unit != 0 {
        return format_decimal(nanos);
    }
    let bytes = nanos / unit;
    if bytes == 0 {
        return "0".into();
    }
    for (suffix, shift) in BINARY {
        let d = 1i128 << shift;
        if bytes % d == 0 {
            return format!("{}{}", bytes / d, suffix);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_forms() {
        for (input, want) in [
            ("4000m", "4"),
            ("100m", "100m"),
            ("2000m", "2"),
            ("1024Mi", "1Gi"),
            ("128Mi", "128Mi"),
            ("1000Mi", "1000Mi"),
            ("0", "0"),
            ("0.5", "500m"),
            ("1000", "1k"),
            ("1Gi", "1Gi"),
            ("bogus", "bogus"),
        ] {
            assert_eq!(canonical(input), want, "{input}");
        }
    }
}
