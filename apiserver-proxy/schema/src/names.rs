//! Name syntax checks of custom resources and CRDs: upstream's
//! `k8s.io/apimachinery/pkg/util/validation` checks (shared with the
//! registry in `nestkube_api::names`) and group/version strings.

pub(crate) use nestkube_api::names::{
    dns1035_label, dns1123_label, dns1123_subdomain, label_value, qualified_name,
};

/// `path.IsValidPathSegmentName`, or `IsValidPathSegmentPrefix` for a
/// `generateName` (`prefix`).
pub(crate) fn path_segment_name(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        nestkube_api::names::path_segment_prefix(name)
    } else {
        nestkube_api::names::path_segment_name(name)
    }
}

/// `schema.ParseGroupVersion`'s error, when the string is not `[group/]version`.
pub(crate) fn parse_group_version(gv: &str) -> Result<(), String> {
    if gv.matches('/').count() > 1 {
        return Err(format!("unexpected GroupVersion string: {gv}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_upstreams() {
        assert_eq!(
            dns1123_label("A"),
            [
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert!(dns1123_subdomain("example.com").is_empty());
        assert!(dns1035_label("1abc").len() == 1);
        assert!(qualified_name("example.com/Name").is_empty());
        assert_eq!(
            qualified_name("a/b/c"),
            [
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
        assert_eq!(
            label_value(&"v".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert!(label_value("").is_empty());
        assert_eq!(path_segment_name("a/b", false), ["may not contain '/'"]);
        assert_eq!(path_segment_name(".", false), ["may not be '.'"]);
        assert!(path_segment_name(".", true).is_empty());
        assert!(parse_group_version("a/b/c").is_err());
    }
}
