//! Name and label syntax checks with upstream's messages: DNS-1123 labels and
//! subdomains, DNS-1035 labels, qualified names and label values
//! (`k8s.io/apimachinery/pkg/util/validation`), label keys and values as
//! `k8s.io/apimachinery/pkg/api/validate/content` words them ("bytes"),
//! path segment names, ConfigMap keys, C identifiers and port names.
//!
//! Pure functions over strings: they return upstream's problem descriptions
//! and never build field errors, so the registry (built-in kinds, object
//! metadata) and the schema crate (custom resources, CRDs) share one copy.

use std::sync::LazyLock;

use regex::Regex;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_EXAMPLES: &[&str] = &["MyValue", "my_value", "12345"];
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const C_IDENTIFIER_FMT: &str = "[A-Za-z_][A-Za-z0-9_]*";

fn anchored(fmt: &str) -> Regex {
    Regex::new(&format!("^(?:{fmt})$")).expect("static regex")
}

static DNS1123_LABEL: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static CONFIG_MAP_KEY: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));
static C_IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| anchored(C_IDENTIFIER_FMT));

/// Upstream `RegexError`: the message, examples and the regex. Go joins the
/// examples as `'a',  or 'b'` (two spaces); kept as upstream prints it.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, ex) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{ex}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// Upstream `MaxLenError` of `util/validation` ("characters").
pub fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// `MaxLenError` of `api/validate/content` (label keys and values: "bytes").
pub fn content_max_len_error(n: usize) -> String {
    format!("must be no more than {n} bytes")
}

/// `IsDNS1123Label`.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !DNS1123_LABEL.is_match(value) {
        if DNS1123_SUBDOMAIN.is_match(value) {
            // A valid subdomain of valid length: only the dots are wrong.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsDNS1123Subdomain`.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    dns1123_subdomain_with(value, max_len_error)
}

fn dns1123_subdomain_with(value: &str, max_len: fn(usize) -> String) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len(253));
    }
    if !DNS1123_SUBDOMAIN.is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1035Label` (service names, CRD version and kind names).
pub fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !DNS1035_LABEL.is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// The two spellings of a `[prefix/]name` check: `IsQualifiedName` and
/// `content.IsLabelKey` differ only in the whole-value message's subject
/// and the length unit.
fn prefixed_name(value: &str, subject: &str, max_len: fn(usize) -> String) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_with(prefix, max_len)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            return vec![format!(
                "{subject} {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    QUALIFIED_NAME_EXAMPLES
                )
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len(63)));
    }
    if !QUALIFIED_NAME.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                QUALIFIED_NAME_EXAMPLES
            )
        ));
    }
    errs
}

/// `IsQualifiedName` of `util/validation`: `[prefix/]name`, lengths in
/// "characters".
pub fn qualified_name(value: &str) -> Vec<String> {
    prefixed_name(value, "a qualified name", max_len_error)
}

/// `content.IsLabelKey`: label and annotation keys and finalizer names of
/// the built-in kinds' metadata, lengths in "bytes".
pub fn label_key(value: &str) -> Vec<String> {
    prefixed_name(value, "a valid label key", content_max_len_error)
}

/// `IsValidLabelValue` of `util/validation` (length in "characters").
pub fn label_value(value: &str) -> Vec<String> {
    label_value_with(value, max_len_error)
}

/// `content.IsLabelValue` (length in "bytes").
pub fn content_label_value(value: &str) -> Vec<String> {
    label_value_with(value, content_max_len_error)
}

fn label_value_with(value: &str, max_len: fn(usize) -> String) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len(63));
    }
    if !LABEL_VALUE.is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            LABEL_VALUE_EXAMPLES,
        ));
    }
    errs
}

/// `path.IsValidPathSegmentName`: names that become one URL path segment.
pub fn path_segment_name(value: &str) -> Vec<String> {
    for bad in [".", ".."] {
        if value == bad {
            return vec![format!("may not be '{bad}'")];
        }
    }
    path_segment_prefix(value)
}

/// `path.IsValidPathSegmentPrefix` (a `generateName`: "." is allowed, a
/// suffix follows).
pub fn path_segment_prefix(value: &str) -> Vec<String> {
    ["/", "%"]
        .iter()
        .filter(|c| value.contains(**c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// `IsConfigMapKey`: keys of ConfigMap `data`/`binaryData` and Secret `data`.
pub fn config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !CONFIG_MAP_KEY.is_match(value) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match value {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        v if v.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// `IsCIdentifier`.
pub fn c_identifier(value: &str) -> Vec<String> {
    if C_IDENTIFIER.is_match(value) {
        Vec::new()
    } else {
        vec![regex_error(
            "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'",
            C_IDENTIFIER_FMT,
            &["my_name", "MY_NAME", "MyName"],
        )]
    }
}

/// `IsValidPortName` (container and service port names).
pub fn port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push(max_len_error(15));
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_error_with_and_without_examples() {
        assert_eq!(
            regex_error("bad", "x+", &[]),
            "bad (regex used for validation is 'x+')"
        );
        assert_eq!(
            regex_error("bad", "x+", &["x"]),
            "bad (e.g. 'x', regex used for validation is 'x+')"
        );
    }

    #[test]
    fn dns_label_messages() {
        assert!(dns1123_label("my-name").is_empty());
        assert_eq!(dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            dns1123_label("Bad"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert_eq!(
            dns1123_label(&"a".repeat(64))[0],
            "must be no more than 63 characters"
        );
        assert!(dns1035_label("1abc").len() == 1);
        assert!(dns1035_label("abc-1").is_empty());
    }

    #[test]
    fn subdomain_and_path_segment() {
        assert!(dns1123_subdomain("example.com").is_empty());
        assert_eq!(
            dns1123_subdomain("Foo_bar"),
            vec![
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        assert_eq!(path_segment_name(".."), vec!["may not be '..'"]);
        assert_eq!(
            path_segment_name("a/b%c"),
            vec!["may not contain '/'", "may not contain '%'"]
        );
        assert!(path_segment_name("system:controller:x").is_empty());
        assert!(path_segment_prefix(".").is_empty());
        assert_eq!(path_segment_prefix("a/"), vec!["may not contain '/'"]);
    }

    #[test]
    fn qualified_names_and_label_keys() {
        assert!(qualified_name("example.com/Name").is_empty());
        assert!(label_key("app.kubernetes.io/name").is_empty());
        assert!(qualified_name("a/b/c")[0].starts_with("a qualified name must consist"));
        assert!(label_key("a/b/c")[0].starts_with("a valid label key must consist"));
        assert_eq!(label_key("/x"), vec!["prefix part must be non-empty"]);
        assert_eq!(
            label_key("-x"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        let long = "n".repeat(64);
        assert_eq!(
            qualified_name(&long),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(
            label_key(&long),
            vec!["name part must be no more than 63 bytes"]
        );
    }

    #[test]
    fn label_values_and_other_keys() {
        assert!(label_value("").is_empty());
        assert!(content_label_value("").is_empty());
        assert_eq!(
            label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(
            content_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 bytes"]
        );
        assert!(content_label_value("a b")[0].starts_with("a valid label must be an empty string"));
        assert!(config_map_key("..x").contains(&"must not start with '..'".to_string()));
        assert!(c_identifier("_ok1").is_empty());
        assert!(port_name("http").is_empty());
        assert_eq!(
            port_name("80"),
            vec!["must contain at least one letter (a-z)"]
        );
    }
}
