//! `resource.Quantity` strings as carried in protobuf (`Quantity{string=1}`).
//!
//! Owns validating the quantity syntax. Go re-canonicalizes on unmarshal
//! (`1000m` -> `1`); client-go always sends the canonical form (its Marshal
//! writes `q.String()`), so a canonical string passes through unchanged. Never
//! rewrites a string it accepts (non-canonical input from hand-built clients is
//! kept as sent; see the crate docs).

/// Returns the string to emit if `s` is a syntactically valid quantity
/// (`^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$`, one suffix), else `None`.
pub fn canonical(s: &str) -> Option<String> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(num_end);
    if number.is_empty()
        || number.matches('.').count() > 1
        || !number.chars().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let valid_suffix = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exp => {
            let rest = exp.strip_prefix(['e', 'E']);
            match rest {
                Some(r) => {
                    let digits = r.strip_prefix(['+', '-']).unwrap_or(r);
                    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
                }
                None => false,
            }
        }
    };
    valid_suffix.then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn syntax() {
        for ok in ["1", "500m", "1.5Gi", "128974848", "2e3", "-1", "0", "1E-3"] {
            assert_eq!(canonical(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in ["", "abc", "1..2", "1Qi", "1e", ".", "1 Gi"] {
            assert_eq!(canonical(bad), None, "{bad}");
        }
    }
}
