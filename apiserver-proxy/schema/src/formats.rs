//! String formats a CRD schema may check (`supportedVersionedFormats` of
//! apiextensions-apiserver, validated as kube-openapi's `strfmt.Default`).
//!
//! Formats outside the supported set are ignored, as upstream strips them
//! before validation. Pure predicates over strings; no error building here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// The supported formats, normalised as `strfmt` does (lower case, no `-`/`_`).
const SUPPORTED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

fn normalize(format: &str) -> String {
    format
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .collect::<String>()
        .to_lowercase()
}

/// Whether `format` is one the apiserver validates.
pub(crate) fn is_known(format: &str) -> bool {
    !format.is_empty() && SUPPORTED.contains(&normalize(format).as_str())
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("static regex")
}

static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static MAC: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([0-9A-Fa-f]{2}[:-]){5,19}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2,9}[0-9A-Fa-f]{4}$")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d{4})-(\d{2})-(\d{2})$"));
/// `strfmt`'s `rxDateTime`, matched against the part after the `t`.
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
});
static DURATION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(-?\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?|sec|secs|min|mins|hr|hrs)\s*)+$",
    )
});
static BSON: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9a-fA-F]{24}$"));
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static HEXCOLOR: LazyLock<Regex> = LazyLock::new(|| re(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGBCOLOR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$",
    )
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"^[^@\s<>]+@[^@\s<>]+$|^[^<>]*<[^@\s<>]+@[^@\s<>]+>$"));
static ISBN10: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:[0-9]{9}X|[0-9]{10})$"));
static ISBN13: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:[0-9]{13})$"));
static CREDITCARD: LazyLock<Regex> = LazyLock::new(|| re(r"^[0-9]{12,19}$"));

/// `strfmt.IsDate`: Go's `time.Parse("2006-01-02", …)`, a real calendar day.
fn is_date(s: &str) -> bool {
    let Some(c) = DATE.captures(s) else {
        return false;
    };
    let n = |i: usize| c[i].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (n(1), n(2), n(3));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// `strfmt.IsDateTime`: a date, a `t`, `hh:mm:ss[.frac]` and a zone (`z` or
/// `±hh:mm`), case-insensitively.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower.split('t').collect();
    if parts.len() < 2 || !is_date(parts[0]) {
        return false;
    }
    TIME.captures(parts[1]).is_some_and(|m| {
        m[1].as_bytes() <= b"23".as_slice()
            && m[2].as_bytes() <= b"59".as_slice()
            && m[3].as_bytes() <= b"59".as_slice()
    })
}

fn base64_std(s: &str) -> bool {
    let bytes: Vec<u8> = s.bytes().collect();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    pad <= 2
        && bytes[..bytes.len() - pad]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

fn cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    (ip.parse::<Ipv4Addr>().is_ok() && bits <= 32)
        || (ip.parse::<Ipv6Addr>().is_ok() && bits <= 128)
}

/// Go's `url.ParseRequestURI`: an absolute URI or an absolute path.
fn request_uri(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    if s.starts_with('/') {
        return true;
    }
    match s.split_once(':') {
        Some((scheme, _)) => {
            let mut chars = scheme.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic())
                && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// Whether `value` is valid in the (supported) `format`.
pub(crate) fn validates(format: &str, value: &str) -> bool {
    match normalize(format).as_str() {
        "bsonobjectid" => BSON.is_match(value),
        "uri" => request_uri(value),
        "email" => EMAIL.is_match(value),
        "hostname" => value.len() <= 255 && HOSTNAME.is_match(value),
        // Go's `net.ParseIP` plus a `.` (ipv4) or a `:` (ipv6).
        "ipv4" => value.parse::<IpAddr>().is_ok() && value.contains('.'),
        "ipv6" => value.parse::<IpAddr>().is_ok() && value.contains(':'),
        "cidr" => cidr(value),
        "mac" => MAC.is_match(value),
        "uuid" => UUID.is_match(value),
        "uuid3" => UUID3.is_match(value),
        "uuid4" => UUID4.is_match(value),
        "uuid5" => UUID5.is_match(value),
        "isbn" => ISBN10.is_match(value) || ISBN13.is_match(value),
        "isbn10" => ISBN10.is_match(value),
        "isbn13" => ISBN13.is_match(value),
        "creditcard" => CREDITCARD.is_match(value),
        "ssn" => SSN.is_match(value),
        "hexcolor" => HEXCOLOR.is_match(value),
        "rgbcolor" => RGBCOLOR.is_match(value),
        "byte" => base64_std(value),
        "date" => is_date(value),
        "datetime" => is_date_time(value),
        "duration" => DURATION.is_match(value),
        "k8sshortname" => crate::names::dns1123_label(value).is_empty(),
        "k8slongname" => crate::names::dns1123_subdomain(value).is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_validate() {
        assert!(is_known("date-time"));
        assert!(!is_known("int32"));
        assert!(validates("date-time", "2024-01-02T03:04:05Z"));
        assert!(validates("date-time", "2024-02-29t03:04:05.123+02:00"));
        assert!(!validates("date-time", "2023-02-29T03:04:05Z"));
        assert!(!validates("date-time", "2024-01-02T03:04:05"));
        assert!(!validates("date-time", "2024-01-02 03:04:05Z"));
        assert!(!validates("date-time", "yesterday"));
        assert!(validates("date", "2024-12-31"));
        assert!(!validates("date", "2024-13-01"));
        assert!(validates("ipv4", "::ffff:1.2.3.4"));
        assert!(!validates("ipv4", "::1"));
        assert!(validates("byte", "aGVsbG8="));
        assert!(!validates("byte", "not base64!"));
        assert!(validates("cidr", "10.0.0.0/8"));
        assert!(validates("uuid", "0b6c4a40-1c1e-4a3b-9f3e-0a0b0c0d0e0f"));
        assert!(validates("duration", "1h30m"));
        assert!(validates("k8s-short-name", "abc"));
        assert!(!validates("k8s-short-name", "ABC"));
    }
}
