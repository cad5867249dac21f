//! [`validate`]: the rules of the VirtualCluster schema, in Rust.
//!
//! The CRD schema carries the same rules (enum, minimum, pattern, and a CEL
//! `x-kubernetes-validations` rule); this module exists for servers that do
//! not evaluate CEL (or patterns) and for clients that want to check a spec
//! before sending it. Errors read like Kubernetes' field errors
//! (`field.ErrorList`), e.g.
//! `spec.isolation.runtimeClassName: Invalid value: "kata": must be one of spec.isolation.allowedRuntimeClassNames`.

use std::collections::HashSet;

use crate::network::MAX_NETWORK_ENTRIES;
use crate::types::{
    DNS1123_LABEL_MAX_LENGTH, DNS1123_SUBDOMAIN_MAX_LENGTH, MAX_ALLOWED_HOST_ESCAPES,
    MAX_ALLOWED_RUNTIME_CLASSES, VirtualClusterSpec,
};

const DNS1123_SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_ERROR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUANTITY_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// One invalid field of a [`VirtualClusterSpec`], shaped like a Kubernetes
/// `field.Error`: a JSON path from the object root, a reason, the offending
/// value and a detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The value is not acceptable (upstream `FieldValueInvalid`).
    #[error("{field}: Invalid value: {value}: {detail}")]
    Invalid {
        /// Path of the field, e.g. `spec.isolation.runtimeClassName`.
        field: String,
        /// The value, rendered as upstream does (strings quoted, numbers bare).
        value: String,
        /// Why it is invalid.
        detail: String,
    },
    /// The value appears more than once in a set (upstream `FieldValueDuplicate`).
    #[error("{field}: Duplicate value: {value}")]
    Duplicate {
        /// Path of the repeated element, e.g. `spec.isolation.allowedRuntimeClassNames[2]`.
        field: String,
        /// The repeated value, quoted.
        value: String,
    },
    /// A list has more items than allowed (upstream `FieldValueTooMany`).
    #[error("{field}: Too many: {actual}: must have at most {max} items")]
    TooMany {
        /// Path of the list.
        field: String,
        /// Its length.
        actual: usize,
        /// The most items allowed.
        max: usize,
    },
}

impl SpecError {
    /// Path of the invalid field, e.g. `spec.limits.requestsPerSecond`.
    pub fn field(&self) -> &str {
        match self {
            Self::Invalid { field, .. }
            | Self::Duplicate { field, .. }
            | Self::TooMany { field, .. } => field,
        }
    }

    /// The upstream `metav1.StatusCause` type for this error
    /// (`FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueTooMany`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "FieldValueInvalid",
            Self::Duplicate { .. } => "FieldValueDuplicate",
            Self::TooMany { .. } => "FieldValueTooMany",
        }
    }

    fn invalid(
        field: impl Into<String>,
        value: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            value: value.into(),
            detail: detail.into(),
        }
    }
}

/// Renders a string value as Go's `%q` does in upstream field errors.
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Checks `spec` against every rule of the VirtualCluster schema (including
/// the CEL rule), returning all violations (empty when valid), with field
/// paths rooted at `spec`.
pub fn validate(spec: &VirtualClusterSpec) -> Vec<SpecError> {
    let mut errs = Vec::new();

    // spec.isolation
    let iso = &spec.isolation;
    let allowed_path = "spec.isolation.allowedRuntimeClassNames";
    if iso.allowed_runtime_class_names.len() > MAX_ALLOWED_RUNTIME_CLASSES {
        errs.push(SpecError::TooMany {
            field: allowed_path.to_string(),
            actual: iso.allowed_runtime_class_names.len(),
            max: MAX_ALLOWED_RUNTIME_CLASSES,
        });
    }
    let mut seen = HashSet::new();
    for (i, name) in iso.allowed_runtime_class_names.iter().enumerate() {
        let field = format!("{allowed_path}[{i}]");
        if !seen.insert(name.as_str()) {
            errs.push(SpecError::Duplicate {
                field,
                value: quote(name),
            });
            continue;
        }
        check_subdomain(&mut errs, &field, name);
    }
    if let Some(name) = &iso.runtime_class_name {
        let field = "spec.isolation.runtimeClassName";
        check_subdomain(&mut errs, field, name);
        if !iso.allowed_runtime_class_names.is_empty()
            && !iso.allowed_runtime_class_names.contains(name)
        {
            errs.push(SpecError::invalid(
                field,
                quote(name),
                format!("must be one of {allowed_path}"),
            ));
        }
    }

    // spec.isolation.allowedHostEscapes: bounded sets of non-empty names.
    let escapes = &iso.allowed_host_escapes;
    for (name, list) in [
        ("capabilities", &escapes.capabilities),
        ("sysctls", &escapes.sysctls),
        ("tolerations", &escapes.tolerations),
    ] {
        let path = format!("spec.isolation.allowedHostEscapes.{name}");
        if list.len() > MAX_ALLOWED_HOST_ESCAPES {
            errs.push(SpecError::TooMany {
                field: path.clone(),
                actual: list.len(),
                max: MAX_ALLOWED_HOST_ESCAPES,
            });
        }
        let mut seen = HashSet::new();
        for (i, item) in list.iter().enumerate() {
            let field = format!("{path}[{i}]");
            if item.trim().is_empty() {
                errs.push(SpecError::invalid(field, quote(item), "must not be empty"));
            } else if !seen.insert(item.as_str()) {
                errs.push(SpecError::Duplicate {
                    field,
                    value: quote(item),
                });
            }
        }
    }

    // spec.limits
    let limits = &spec.limits;
    for (name, value) in [
        ("maxObjects", limits.max_objects),
        (
            "requestsPerSecond",
            limits.requests_per_second.map(u64::from),
        ),
        (
            "maxConcurrentRequests",
            limits.max_concurrent_requests.map(u64::from),
        ),
    ] {
        if value == Some(0) {
            errs.push(SpecError::invalid(
                format!("spec.limits.{name}"),
                "0",
                "must be greater than 0",
            ));
        }
    }
    if let Some(hard) = limits.synced_quota.as_ref().and_then(|q| q.hard.as_ref()) {
        for (resource, quantity) in hard {
            let field = format!("spec.limits.syncedQuota.hard[{resource}]");
            match parse_quantity_sign(&quantity.0) {
                None => errs.push(SpecError::invalid(
                    field,
                    quote(&quantity.0),
                    QUANTITY_ERROR,
                )),
                Some(true) => errs.push(SpecError::invalid(
                    field,
                    quote(&quantity.0),
                    "must be greater than or equal to 0",
                )),
                Some(false) => {}
            }
        }
    }

    // spec.hostNamespace
    if let Some(ns) = &spec.host_namespace {
        let field = "spec.hostNamespace";
        if ns.len() > DNS1123_LABEL_MAX_LENGTH {
            errs.push(SpecError::invalid(
                field,
                quote(ns),
                format!("must be no more than {DNS1123_LABEL_MAX_LENGTH} characters"),
            ));
        }
        if !is_dns1123_label(ns) {
            errs.push(SpecError::invalid(field, quote(ns), DNS1123_LABEL_ERROR));
        }
    }

    validate_network(&spec.network, &mut errs);

    errs
}

/// Checks a VirtualCluster's name: it becomes a segment of its cluster's
/// path (`/clusters/<name>`) and of the names of its copies in the parent,
/// so it must be a DNS-1123 label (no dots), stricter than the subdomain a
/// custom resource's name may otherwise be. Errors are rooted at
/// `metadata.name`.
pub fn validate_name(name: &str) -> Vec<SpecError> {
    let field = "metadata.name";
    let mut errs = Vec::new();
    if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(SpecError::invalid(
            field,
            quote(name),
            format!("must be no more than {DNS1123_LABEL_MAX_LENGTH} characters"),
        ));
    }
    if !is_dns1123_label(name) {
        errs.push(SpecError::invalid(field, quote(name), DNS1123_LABEL_ERROR));
    }
    errs
}

/// `spec.network`: bounded sets of CIDRs, host patterns and class names.
fn validate_network(net: &crate::NetworkSpec, errs: &mut Vec<SpecError>) {
    let too_many = |errs: &mut Vec<SpecError>, field: &str, len: usize| {
        if len > MAX_NETWORK_ENTRIES {
            errs.push(SpecError::TooMany {
                field: field.to_string(),
                actual: len,
                max: MAX_NETWORK_ENTRIES,
            });
        }
    };
    let field = "spec.network.allowedServiceTypes";
    too_many(errs, field, net.allowed_service_types.len());
    for (i, t) in net.allowed_service_types.iter().enumerate() {
        if net.allowed_service_types[..i].contains(t) {
            errs.push(SpecError::Duplicate {
                field: format!("{field}[{i}]"),
                value: quote(t.as_str()),
            });
        }
    }
    let field = "spec.network.allowedCIDRs";
    too_many(errs, field, net.allowed_cidrs.len());
    for (i, c) in net.allowed_cidrs.iter().enumerate() {
        if let Err(e) = c.parse::<crate::Cidr>() {
            errs.push(SpecError::invalid(
                format!("{field}[{i}]"),
                quote(c),
                e.to_string(),
            ));
        }
    }
    let field = "spec.network.ingress.allowedHosts";
    too_many(errs, field, net.ingress.allowed_hosts.len());
    let mut seen = HashSet::new();
    for (i, h) in net.ingress.allowed_hosts.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !seen.insert(h.as_str()) {
            errs.push(SpecError::Duplicate {
                field: f,
                value: quote(h),
            });
            continue;
        }
        if h != "*" {
            check_subdomain(errs, &f, h.strip_prefix("*.").unwrap_or(h));
        }
    }
    let field = "spec.network.ingress.allowedClasses";
    too_many(errs, field, net.ingress.allowed_classes.len());
    let mut seen = HashSet::new();
    for (i, c) in net.ingress.allowed_classes.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if !seen.insert(c.as_str()) {
            errs.push(SpecError::Duplicate {
                field: f,
                value: quote(c),
            });
            continue;
        }
        check_subdomain(errs, &f, c);
    }
}

fn check_subdomain(errs: &mut Vec<SpecError>, field: &str, value: &str) {
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(SpecError::invalid(
            field,
            quote(value),
            format!("must be no more than {DNS1123_SUBDOMAIN_MAX_LENGTH} characters"),
        ));
    }
    if !value.split('.').all(is_dns1123_label) {
        errs.push(SpecError::invalid(
            field,
            quote(value),
            DNS1123_SUBDOMAIN_ERROR,
        ));
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (length is checked separately).
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// Parses a Kubernetes quantity (`resource.ParseQuantity` syntax); returns
/// whether it is negative, or None when it is malformed.
fn parse_quantity_sign(s: &str) -> Option<bool> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    // <number> ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    let num_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_end);
    if number.matches('.').count() > 1 || !number.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let suffix_ok = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        _ => {
            // <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
            let exp = suffix.strip_prefix(['e', 'E']);
            let digits = exp.map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
            digits.is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
        }
    };
    let is_zero = number.bytes().all(|c| c == b'0' || c == b'.');
    suffix_ok.then_some(negative && !is_zero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_labels() {
        assert!(validate_name("team-a").is_empty());
        for bad in ["x.sa-token", "Team", "-a", "", &"a".repeat(64)] {
            let errs = validate_name(bad);
            assert!(!errs.is_empty(), "{bad:?}");
            assert!(errs.iter().all(|e| e.field() == "metadata.name"));
        }
    }
    use crate::types::{HostEscapesSpec, IsolationSpec, LimitsSpec, PodSecurityLevel, SyncSpec};
    use k8s_openapi::api::core::v1::ResourceQuotaSpec;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn spec(iso: IsolationSpec) -> VirtualClusterSpec {
        VirtualClusterSpec {
            isolation: iso,
            ..Default::default()
        }
    }

    fn messages(spec: &VirtualClusterSpec) -> Vec<String> {
        validate(spec).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn empty_spec_is_valid() {
        assert_eq!(validate(&VirtualClusterSpec::default()), vec![]);
    }

    #[test]
    fn full_valid_spec() {
        let s = VirtualClusterSpec {
            isolation: IsolationSpec {
                runtime_class_name: Some("kata".into()),
                allowed_runtime_class_names: vec!["kata".into(), "gvisor".into()],
                pod_security: PodSecurityLevel::Restricted,
                allowed_host_escapes: HostEscapesSpec {
                    capabilities: vec!["NET_ADMIN".into()],
                    seccomp_unconfined: true,
                    sysctls: vec!["net.core.somaxconn".into()],
                    tolerations: vec!["CriticalAddonsOnly".into()],
                    ..Default::default()
                },
            },
            limits: LimitsSpec {
                max_objects: Some(10_000),
                requests_per_second: Some(50),
                max_concurrent_requests: Some(20),
                max_virtual_clusters: Some(3),
                max_custom_resource_definitions: Some(30),
                synced_quota: Some(ResourceQuotaSpec {
                    hard: Some(
                        [
                            ("requests.cpu", "8"),
                            ("requests.memory", "16Gi"),
                            ("limits.cpu", "500m"),
                            ("pods", "100"),
                            ("x", "1e3"),
                            ("y", "0.5"),
                            ("z", "-0"),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                    ),
                    ..Default::default()
                }),
            },
            host_namespace: Some("tenant-team-a".into()),
            sync: SyncSpec {
                ingresses: true,
                network_policies: true,
            },
            network: crate::NetworkSpec {
                allowed_service_types: vec![crate::ExposedServiceType::LoadBalancer],
                allowed_cidrs: vec!["203.0.113.0/24".into(), "2001:db8::/64".into()],
                ingress: crate::IngressPolicy {
                    allowed_hosts: vec!["*".into(), "*.example.com".into(), "a.example.com".into()],
                    allowed_classes: vec!["nginx".into()],
                },
                ..Default::default()
            },
        };
        assert_eq!(validate(&s), vec![]);
    }

    #[test]
    fn default_class_must_be_allowed() {
        let s = spec(IsolationSpec {
            runtime_class_name: Some("runc".into()),
            allowed_runtime_class_names: vec!["kata".into(), "gvisor".into()],
            ..Default::default()
        });
        let errs = validate(&s);
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                r#"spec.isolation.runtimeClassName: Invalid value: "runc": must be one of spec.isolation.allowedRuntimeClassNames"#
            ]
        );
        assert_eq!(errs[0].field(), "spec.isolation.runtimeClassName");
        assert_eq!(errs[0].reason(), "FieldValueInvalid");
    }

    #[test]
    fn any_default_class_when_allowed_is_empty() {
        let s = spec(IsolationSpec {
            runtime_class_name: Some("kata".into()),
            ..Default::default()
        });
        assert_eq!(validate(&s), vec![]);
    }

    #[test]
    fn runtime_class_names_must_be_subdomains() {
        let s = spec(IsolationSpec {
            runtime_class_name: Some("Kata".into()),
            allowed_runtime_class_names: vec!["Kata".into(), "ok.example".into(), "-x".into()],
            ..Default::default()
        });
        let fields: Vec<_> = validate(&s).iter().map(|e| e.field().to_string()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.isolation.allowedRuntimeClassNames[0]",
                "spec.isolation.allowedRuntimeClassNames[2]",
                "spec.isolation.runtimeClassName",
            ]
        );
        assert!(messages(&s)[0].starts_with(
            r#"spec.isolation.allowedRuntimeClassNames[0]: Invalid value: "Kata": a lowercase RFC 1123 subdomain"#
        ));

        let long = "a".repeat(254);
        let s = spec(IsolationSpec {
            runtime_class_name: Some(long.clone()),
            ..Default::default()
        });
        assert_eq!(
            messages(&s),
            vec![format!(
                "spec.isolation.runtimeClassName: Invalid value: \"{long}\": must be no more than 253 characters"
            )]
        );
    }

    #[test]
    fn allowed_classes_are_a_bounded_set() {
        let s = spec(IsolationSpec {
            allowed_runtime_class_names: vec!["kata".into(), "gvisor".into(), "kata".into()],
            ..Default::default()
        });
        let errs = validate(&s);
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![r#"spec.isolation.allowedRuntimeClassNames[2]: Duplicate value: "kata""#]
        );
        assert_eq!(errs[0].reason(), "FieldValueDuplicate");

        let s = spec(IsolationSpec {
            allowed_runtime_class_names: (0..65).map(|i| format!("rc{i}")).collect(),
            ..Default::default()
        });
        assert_eq!(
            messages(&s),
            vec![
                "spec.isolation.allowedRuntimeClassNames: Too many: 65: must have at most 64 items"
            ]
        );
    }

    #[test]
    fn limits_must_be_positive() {
        let s = VirtualClusterSpec {
            limits: LimitsSpec {
                max_objects: Some(0),
                requests_per_second: Some(0),
                max_concurrent_requests: Some(1),
                synced_quota: None,
                max_virtual_clusters: None,
                max_custom_resource_definitions: None,
            },
            ..Default::default()
        };
        assert_eq!(
            messages(&s),
            vec![
                "spec.limits.maxObjects: Invalid value: 0: must be greater than 0",
                "spec.limits.requestsPerSecond: Invalid value: 0: must be greater than 0",
            ]
        );
    }

    #[test]
    fn synced_quota_quantities() {
        let s = VirtualClusterSpec {
            limits: LimitsSpec {
                synced_quota: Some(ResourceQuotaSpec {
                    hard: Some(
                        [
                            ("cpu", "abc"),
                            ("memory", "-1Gi"),
                            ("pods", "1.2.3"),
                            ("x", "1Ki2"),
                        ]
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            messages(&s),
            vec![
                format!(r#"spec.limits.syncedQuota.hard[cpu]: Invalid value: "abc": {QUANTITY_ERROR}"#),
                r#"spec.limits.syncedQuota.hard[memory]: Invalid value: "-1Gi": must be greater than or equal to 0"#.to_string(),
                format!(r#"spec.limits.syncedQuota.hard[pods]: Invalid value: "1.2.3": {QUANTITY_ERROR}"#),
                format!(r#"spec.limits.syncedQuota.hard[x]: Invalid value: "1Ki2": {QUANTITY_ERROR}"#),
            ]
        );
    }

    #[test]
    fn quantity_syntax() {
        for ok in [
            "0", "1", "+1", "1.", ".5", "100m", "1Gi", "2E", "1e-3", "1E+9", "12n",
        ] {
            assert_eq!(parse_quantity_sign(ok), Some(false), "{ok}");
        }
        assert_eq!(parse_quantity_sign("-1"), Some(true));
        for bad in ["", "-", ".", "1..0", "1e", "1KiB", "ki", "1 Gi", "e3"] {
            assert_eq!(parse_quantity_sign(bad), None, "{bad}");
        }
    }

    #[test]
    fn allowed_host_escapes_are_bounded_sets() {
        let s = spec(IsolationSpec {
            allowed_host_escapes: HostEscapesSpec {
                capabilities: vec!["NET_ADMIN".into(), "NET_ADMIN".into()],
                sysctls: vec![" ".into()],
                tolerations: vec!["t".into(); MAX_ALLOWED_HOST_ESCAPES + 1],
                ..Default::default()
            },
            ..Default::default()
        });
        let m = messages(&s);
        assert_eq!(
            m[..3],
            [
                "spec.isolation.allowedHostEscapes.capabilities[1]: Duplicate value: \"NET_ADMIN\"",
                "spec.isolation.allowedHostEscapes.sysctls[0]: Invalid value: \" \": must not be empty",
                "spec.isolation.allowedHostEscapes.tolerations: Too many: 65: must have at most 64 items",
            ]
        );
    }

    #[test]
    fn host_namespace_is_a_label() {
        let s = VirtualClusterSpec {
            host_namespace: Some("Team_A".into()),
            ..Default::default()
        };
        let m = messages(&s);
        assert_eq!(m.len(), 1);
        assert!(m[0].starts_with(
            r#"spec.hostNamespace: Invalid value: "Team_A": a lowercase RFC 1123 label"#
        ));
        let s = VirtualClusterSpec {
            host_namespace: Some("a".repeat(64)),
            ..Default::default()
        };
        assert_eq!(
            messages(&s)[0],
            format!(
                "spec.hostNamespace: Invalid value: \"{}\": must be no more than 63 characters",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn network_lists_are_checked() {
        let spec: VirtualClusterSpec = serde_json::from_value(serde_json::json!({"network": {
            "allowedServiceTypes": ["NodePort", "NodePort"],
            "allowedCIDRs": ["203.0.113.0/24", "10.0.0.1", "::/0"],
            "ingress": {
                "allowedHosts": ["*", "*.example.com", "shop.example.com", "*.Bad_Host", "*.example.com"],
                "allowedClasses": ["nginx", "Not A Class"],
            },
        }}))
        .unwrap();
        assert_eq!(
            messages(&spec),
            vec![
                "spec.network.allowedServiceTypes[1]: Duplicate value: \"NodePort\"".to_string(),
                "spec.network.allowedCIDRs[1]: Invalid value: \"10.0.0.1\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".into(),
                format!("spec.network.ingress.allowedHosts[3]: Invalid value: \"Bad_Host\": {DNS1123_SUBDOMAIN_ERROR}"),
                "spec.network.ingress.allowedHosts[4]: Duplicate value: \"*.example.com\"".into(),
                format!("spec.network.ingress.allowedClasses[1]: Invalid value: \"Not A Class\": {DNS1123_SUBDOMAIN_ERROR}"),
            ]
        );
        let unknown = serde_json::from_value::<VirtualClusterSpec>(
            serde_json::json!({"network": {"allowedServiceTypes": ["ExternalName"]}}),
        );
        assert!(
            unknown.is_err(),
            "only NodePort and LoadBalancer can be allowed"
        );
    }
}
