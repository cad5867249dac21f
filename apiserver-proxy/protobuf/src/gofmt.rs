//! Go's text formats for the special types, reproduced exactly: `time.Time` as
//! RFC3339 (metav1.Time) and RFC3339 with microseconds (metav1.MicroTime),
//! `time.Duration.String()`, and encoding/json's float formatting rules.
//!
//! Owns formatting only; never decides whether a value is emitted.

use serde_json::{Number, Value};

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
pub const ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Unix seconds of 0000-01-01T00:00:00Z and of 10000-01-01T00:00:00Z: outside this
/// range Go would print years that RFC3339 (and Go's own parser) reject.
const MIN_UNIX: i64 = -62_167_219_200;
const MAX_UNIX: i64 = 253_402_300_800;

/// Formats Unix seconds (+ optional microseconds) as Go's `t.UTC().Format(RFC3339)`
/// or `RFC3339Micro`; `None` when the year is outside 0..=9999.
pub fn rfc3339(secs: i64, micros: Option<u32>) -> Option<String> {
    if !(MIN_UNIX..MAX_UNIX).contains(&secs) {
        return None;
    }
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod / 60 % 60, sod % 60);
    Some(match micros {
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        Some(us) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}Z"),
    })
}

/// Howard Hinnant's days-from-civil inverse: days since 1970-01-01 -> (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Go's `time.Duration(ns).String()`, e.g. `1h2m3.5s`, `1.5ms`, `0s`.
pub fn duration(ns: i64) -> String {
    let neg = ns < 0;
    let mut u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_string(),
            u if u < 1_000 => (0, "ns"),
            u if u < 1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (frac, rest) = fmt_frac(u, prec);
        out.push_str(&rest.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = fmt_frac(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{frac}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// The fraction of `v / 10^prec` as `.123` without trailing zeros (empty when 0),
/// and the integer part.
fn fmt_frac(v: u64, prec: u32) -> (String, u64) {
    let p = 10u64.pow(prec);
    let frac = v % p;
    if frac == 0 {
        return (String::new(), v / p);
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), v / p)
}

/// A float as encoding/json would write it, as a JSON number: integral values
/// become integers (Go prints `5`, not `5.0`); NaN and infinities are `None`
/// (encoding/json refuses them).
pub fn float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 1e18 {
        return Some(Value::Number(Number::from(f as i64)));
    }
    Number::from_f64(f).map(Value::Number)
}

/// A float32 as encoding/json would write it (shortest float32 representation).
pub fn float32(f: f32) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    let shortest: f64 = f.to_string().parse().ok()?;
    float(shortest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, None).unwrap(), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_767_225_600, None).unwrap(),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339(1_767_225_601, Some(5)).unwrap(),
            "2026-01-01T00:00:01.000005Z"
        );
        assert_eq!(
            rfc3339(ZERO_TIME_UNIX, None).unwrap(),
            "0001-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339(-1, None).unwrap(), "1969-12-31T23:59:59Z");
        assert!(rfc3339(i64::MAX, None).is_none());
        assert!(rfc3339(i64::MIN, None).is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(1), "1ns");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(1_500_000), "1.5ms");
        assert_eq!(duration(1_000_000_000), "1s");
        assert_eq!(duration(90 * 1_000_000_000), "1m30s");
        assert_eq!(duration(3_600 * 1_000_000_000), "1h0m0s");
        assert_eq!(duration(-3_723_500_000_000), "-1h2m3.5s");
        assert_eq!(duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn floats() {
        assert_eq!(float(5.0), Some(serde_json::json!(5)));
        assert_eq!(float(0.5), Some(serde_json::json!(0.5)));
        assert_eq!(float(f64::NAN), None);
        assert_eq!(float32(0.1), Some(serde_json::json!(0.1)));
    }
}
