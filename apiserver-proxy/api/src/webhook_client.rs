//! A webhook's `clientConfig` as upstream checks it
//! (`k8s.io/apiserver/pkg/util/webhook`'s `ValidateWebhookURL` and
//! `ValidateWebhookService`): shared by the admission webhook
//! configurations and a CRD's conversion webhook. Syntax only; where a
//! tenant may send requests is decided where they are sent.

use serde_json::Value;

use crate::error::FieldError;

/// `path.Child(name)`.
fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `webhook.ValidateWebhookURL` with https forced.
pub fn validate_url(path: &str, url: &str) -> Vec<FieldError> {
    const FORM: &str = "; desired format: https://host[/path]";
    let mut errs = Vec::new();
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url),
    };
    if scheme != "https" {
        errs.push(FieldError::invalid(
            path,
            scheme,
            format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((b, f)) => (b, f),
        None => (rest, ""),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, q),
        None => (before_fragment, ""),
    };
    let authority = if scheme.is_empty() {
        ""
    } else {
        before_query.split('/').next().unwrap_or("")
    };
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        errs.push(FieldError::invalid(
            path,
            host,
            format!("host must be specified{FORM}"),
        ));
    }
    if let Some(u) = user {
        errs.push(FieldError::invalid(
            path,
            u,
            "user information is not permitted in the URL",
        ));
    }
    if !fragment.is_empty() {
        errs.push(FieldError::invalid(
            path,
            fragment,
            "fragments are not permitted in the URL",
        ));
    }
    if !query.is_empty() {
        errs.push(FieldError::invalid(
            path,
            query,
            "query parameters are not permitted in the URL",
        ));
    }
    errs
}

/// `webhook.ValidateWebhookService`.
pub fn validate_service(path: &str, s: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if str_at(s, "name").is_empty() {
        errs.push(FieldError::required(
            child(path, "name"),
            "service name is required",
        ));
    }
    if str_at(s, "namespace").is_empty() {
        errs.push(FieldError::required(
            child(path, "namespace"),
            "service namespace is required",
        ));
    }
    let port = s.get("port").and_then(Value::as_i64).unwrap_or(443);
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            child(path, "port"),
            port,
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(url_path) = s.get("path").and_then(Value::as_str) else {
        return errs;
    };
    let pp = child(path, "path");
    if url_path == "/" || url_path.is_empty() {
        return errs;
    }
    if url_path == "//" {
        errs.push(FieldError::invalid(
            pp,
            url_path,
            "segment[0] may not be empty",
        ));
        return errs;
    }
    if !url_path.starts_with('/') {
        errs.push(FieldError::invalid(
            pp.clone(),
            url_path,
            "must start with a '/'",
        ));
    }
    let mut check = &url_path[1..];
    if let Some(stripped) = check.strip_suffix('/') {
        check = stripped;
    }
    for (i, step) in check.split('/').enumerate() {
        if step.is_empty() {
            errs.push(FieldError::invalid(
                pp.clone(),
                url_path,
                format!("segment[{i}] may not be empty"),
            ));
            continue;
        }
        for e in crate::names::dns1123_subdomain(step) {
            errs.push(FieldError::invalid(
                pp.clone(),
                url_path,
                format!("segment[{i}]: {e}"),
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn service_paths() {
        let e = validate_service(
            "s",
            &json!({"name": "n", "namespace": "ns", "path": "/a//B", "port": 0}),
        );
        assert_eq!(
            msgs(&e)[..2],
            [
                "s.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
                "s.path: Invalid value: \"/a//B\": segment[1] may not be empty",
            ]
        );
        assert!(msgs(&e)[2].starts_with(
            "s.path: Invalid value: \"/a//B\": segment[2]: a lowercase RFC 1123 subdomain"
        ));
        assert!(
            validate_service(
                "s",
                &json!({"name": "n", "namespace": "ns", "path": "/convert"})
            )
            .is_empty()
        );
    }

    /// Messages as kube-apiserver 1.37 gives them.
    #[test]
    fn urls() {
        assert!(validate_url("u", "https://example.com/convert").is_empty());
        assert_eq!(
            msgs(&validate_url("u", "https://user@/x#frag")),
            [
                "u: Invalid value: \"\": host must be specified; desired format: https://host[/path]",
                "u: Invalid value: \"user\": user information is not permitted in the URL",
                "u: Invalid value: \"frag\": fragments are not permitted in the URL",
            ]
        );
        assert_eq!(
            msgs(&validate_url("u", "https://a.example.com/x?q=1")),
            ["u: Invalid value: \"q=1\": query parameters are not permitted in the URL"]
        );
    }
}
