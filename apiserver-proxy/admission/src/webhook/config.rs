//! The webhooks of a cluster's `ValidatingWebhookConfiguration`s and
//! `MutatingWebhookConfiguration`s, read from their stored JSON (defaults
//! applied by the storage strategy) into what the dispatcher needs.

use std::time::Duration;

use serde_json::Value;

use crate::matching::{MatchPolicy, Rule};

/// Which of the two configuration kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `mutatingwebhookconfigurations`: called in order, may patch.
    Mutating,
    /// `validatingwebhookconfigurations`: called in parallel, judge only.
    Validating,
}

impl Kind {
    /// The resource holding this kind of webhook.
    pub fn resource(self) -> &'static str {
        match self {
            Self::Mutating => "mutatingwebhookconfigurations",
            Self::Validating => "validatingwebhookconfigurations",
        }
    }
}

/// Where a webhook is reached (`clientConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `url`: an address outside the cluster.
    Url(String),
    /// `service`: a Service of the same cluster.
    Service(ServiceRef),
}

/// `clientConfig.service`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// URL path (`/` when absent).
    pub path: String,
    /// Service port (443 by default).
    pub port: u16,
}

impl ServiceRef {
    /// The host name the webhook's certificate must carry (upstream's
    /// `<name>.<namespace>.svc`).
    pub fn server_name(&self) -> String {
        format!("{}.{}.svc", self.name, self.namespace)
    }
}

/// `failurePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailurePolicy {
    /// A failed call refuses the request (the default).
    Fail,
    /// A failed call is ignored.
    Ignore,
}

/// One webhook of a configuration.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// The webhook's name (`v.example.com`).
    pub name: String,
    /// The configuration it belongs to.
    pub configuration: String,
    /// Where it is reached.
    pub endpoint: Endpoint,
    /// PEM CA bundle to verify its serving certificate (`None`: the
    /// system's roots).
    pub ca_bundle: Option<Vec<u8>>,
    /// What it is called for.
    pub rules: Vec<Rule>,
    /// `matchPolicy`.
    pub match_policy: MatchPolicy,
    /// `namespaceSelector` (a `metav1.LabelSelector`).
    pub namespace_selector: Value,
    /// `objectSelector`.
    pub object_selector: Value,
    /// `matchConditions` (`{name, expression}`), as stored.
    pub match_conditions: Vec<Value>,
    /// `failurePolicy`.
    pub failure_policy: FailurePolicy,
    /// `sideEffects` (`None`, `NoneOnDryRun`, or a v1beta1 value).
    pub side_effects: String,
    /// `timeoutSeconds` (1–30, 10 by default).
    pub timeout: Duration,
    /// `reinvocationPolicy: IfNeeded` (mutating only).
    pub reinvoke_if_needed: bool,
}

impl Webhook {
    /// Whether the webhook may be called for a dry-run request.
    pub fn dry_run_safe(&self) -> bool {
        matches!(self.side_effects.as_str(), "None" | "NoneOnDryRun")
    }
}

/// The webhooks of one stored configuration, in order; webhooks whose
/// `clientConfig` names neither a URL nor a Service are skipped (the
/// strategy's validation refuses them on write).
pub fn webhooks_of(configuration: &Value) -> Vec<Webhook> {
    let name = configuration["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    configuration["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| webhook(name, w))
        .collect()
}

/// A `clientConfig` (of an admission webhook or a CRD's conversion
/// webhook): where it is reached and the CA bundle verifying it; `None`
/// when it names neither a URL nor a Service.
pub fn client_config(cc: &Value) -> Option<(Endpoint, Option<Vec<u8>>)> {
    let endpoint = if let Some(url) = cc["url"].as_str() {
        Endpoint::Url(url.to_string())
    } else {
        let s = &cc["service"];
        Endpoint::Service(ServiceRef {
            namespace: s["namespace"].as_str()?.to_string(),
            name: s["name"].as_str()?.to_string(),
            path: s["path"].as_str().unwrap_or("/").to_string(),
            port: s["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(443),
        })
    };
    let ca_bundle = cc["caBundle"].as_str().and_then(|b| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b).ok()
    });
    Some((endpoint, ca_bundle.filter(|b| !b.is_empty())))
}

fn webhook(configuration: &str, w: &Value) -> Option<Webhook> {
    let (endpoint, ca_bundle) = client_config(&w["clientConfig"])?;
    Some(Webhook {
        name: w["name"].as_str().unwrap_or_default().to_string(),
        configuration: configuration.to_string(),
        endpoint,
        ca_bundle,
        rules: Rule::list(&w["rules"]),
        match_policy: MatchPolicy::from_json(&w["matchPolicy"]),
        namespace_selector: w["namespaceSelector"].clone(),
        object_selector: w["objectSelector"].clone(),
        match_conditions: w["matchConditions"].as_array().cloned().unwrap_or_default(),
        failure_policy: match w["failurePolicy"].as_str() {
            Some("Ignore") => FailurePolicy::Ignore,
            _ => FailurePolicy::Fail,
        },
        side_effects: w["sideEffects"].as_str().unwrap_or_default().to_string(),
        timeout: Duration::from_secs(w["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30)),
        reinvoke_if_needed: w["reinvocationPolicy"] == "IfNeeded",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_service_and_a_url_webhook() {
        let cfg = json!({"metadata": {"name": "cfg"}, "webhooks": [
            {"name": "a.example.com", "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/v", "port": 8443}, "caBundle": "Y2E="},
             "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
             "sideEffects": "None", "timeoutSeconds": 3, "failurePolicy": "Ignore"},
            {"name": "b.example.com", "clientConfig": {"url": "https://hooks.example.com/x"}, "sideEffects": "Some"},
            {"name": "broken", "clientConfig": {}}
        ]});
        let hooks = webhooks_of(&cfg);
        assert_eq!(hooks.len(), 2);
        let a = &hooks[0];
        assert_eq!(a.configuration, "cfg");
        assert_eq!(
            a.endpoint,
            Endpoint::Service(ServiceRef {
                namespace: "ns".into(),
                name: "svc".into(),
                path: "/v".into(),
                port: 8443
            })
        );
        assert_eq!(a.ca_bundle.as_deref(), Some(&b"ca"[..]));
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.failure_policy, FailurePolicy::Ignore);
        assert!(a.dry_run_safe());
        assert_eq!(
            hooks[1].endpoint,
            Endpoint::Url("https://hooks.example.com/x".into())
        );
        assert!(!hooks[1].dry_run_safe());
        assert_eq!(hooks[1].failure_policy, FailurePolicy::Fail);
    }
}
