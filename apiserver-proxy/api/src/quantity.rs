//! Just enough of `resource.Quantity` to compare and add quantities (pod QoS,
//! PVC size checks). Values are kept as an exact integer count of nano-units.
//!
//! Never formats or canonicalizes quantities for output; the stored string is
//! what clients see.

/// A parsed quantity in nano-units (`1` = 1e-9).
pub type Nanos = i128;

/// Parses a quantity string (`500m`, `1.5Gi`, `2e3`, `128974848`), or `None`.
pub fn parse(s: &str) -> Option<Nanos> {
    let s = s.trim();
    let (sign, s) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // Value = digits * 10^-frac_len; keep nine fractional digits.
    let mut digits: String = format!("{int_part}{frac_part}");
    let mut scale10: i32 = -(frac_part.len() as i32);
    let mut scale2: u32 = 0;
    match suffix {
        "" => {}
        "n" => scale10 -= 9,
        "u" => scale10 -= 6,
        "m" => scale10 -= 3,
        "k" => scale10 += 3,
        "M" => scale10 += 6,
        "G" => scale10 += 9,
        "T" => scale10 += 12,
        "P" => scale10 += 15,
        "E" => scale10 += 18,
        "Ki" => scale2 = 10,
        "Mi" => scale2 = 20,
        "Gi" => scale2 = 30,
        "Ti" => scale2 = 40,
        "Pi" => scale2 = 50,
        "Ei" => scale2 = 60,
        e if e.starts_with(['e', 'E']) => scale10 += e[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    digits = digits.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return Some(0);
    }
    let mut value: i128 = digits.parse().ok()?;
    let exp = scale10 + 9;
    if exp >= 0 {
        value = value.checked_mul(10i128.checked_pow(exp as u32)?)?;
    } else {
        // Round up sub-nano precision, as upstream rounds up to the scale.
        let div = 10i128.checked_pow((-exp) as u32)?;
        value = (value + div - 1) / div;
    }
    value = value.checked_mul(1i128.checked_shl(scale2)?)?;
    Some(sign * value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(parse("1"), Some(1_000_000_000));
        assert_eq!(parse("500m"), Some(500_000_000));
        assert_eq!(parse("0.5"), parse("500m"));
        assert_eq!(parse("1Ki"), Some(1024 * 1_000_000_000));
        assert_eq!(parse("1e3"), parse("1k"));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1Zi"), None);
    }
}
