//! `AdmissionReview` (admission.k8s.io/v1): the request a webhook is sent
//! and the checks on its answer, as upstream's
//! `admission/plugin/webhook/request` (`CreateAdmissionObjects`,
//! `VerifyAdmissionResponse`).

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::Attributes;
use crate::registry::catalog::ResourceInfo;

/// The review sent for one call.
pub struct ReviewRequest {
    /// The request's `uid`, which the answer must repeat.
    pub uid: String,
    /// The whole `AdmissionReview`.
    pub body: Value,
}

/// `group`/`version`/`kind` as an `metav1.GroupVersionKind`.
fn gvk(r: &ResourceInfo) -> Value {
    json!({"group": r.group, "version": r.version, "kind": r.kind})
}

/// `group`/`version`/`resource` as an `metav1.GroupVersionResource`.
fn gvr(r: &ResourceInfo) -> Value {
    json!({"group": r.group, "version": r.version, "resource": r.resource})
}

/// Rewrites a custom resource's `apiVersion` to the version the webhook
/// matched (conversion `None` is exactly that).
fn in_version(obj: Option<&Value>, version: &ResourceInfo) -> Value {
    match obj {
        Some(o) if o.is_object() => {
            let mut o = o.clone();
            if version.custom.is_some() {
                o["apiVersion"] = json!(version.api_version());
            }
            o
        }
        _ => Value::Null,
    }
}

/// The `AdmissionReview` for `attrs`, with the objects in the matched
/// `version` of the resource (`object` is null on delete; `oldObject` null
/// on create).
pub fn request(
    attrs: &Attributes<'_>,
    version: &ResourceInfo,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ReviewRequest {
    let uid = uuid::Uuid::new_v4().to_string();
    let user = attrs.user.as_deref();
    let (object, old_object) = match attrs.operation {
        crate::Operation::Delete => (Value::Null, in_version(old.or(obj), version)),
        crate::Operation::Create => (in_version(obj, version), Value::Null),
        crate::Operation::Update => (in_version(obj, version), in_version(old, version)),
        crate::Operation::Connect => (obj.cloned().unwrap_or_default(), Value::Null),
    };
    let name = match attrs.operation {
        crate::Operation::Connect => attrs.name,
        _ => object["metadata"]["name"]
            .as_str()
            .or(old_object["metadata"]["name"].as_str())
            .unwrap_or_default(),
    };
    let options_kind = match attrs.operation {
        crate::Operation::Create => "CreateOptions",
        crate::Operation::Update => "UpdateOptions",
        crate::Operation::Delete => "DeleteOptions",
        crate::Operation::Connect => "",
    };
    let mut options = json!({"apiVersion": "meta.k8s.io/v1", "kind": options_kind});
    if attrs.dry_run {
        options["dryRun"] = json!(["All"]);
    }
    let mut request = Map::new();
    request.insert("uid".into(), json!(uid));
    // A connection's kind is its options' (`PodExecOptions`), as upstream.
    let kind = match attrs.operation {
        crate::Operation::Connect => {
            json!({"group": "", "version": "v1", "kind": object["kind"].as_str().unwrap_or_default()})
        }
        _ => gvk(version),
    };
    request.insert("kind".into(), kind.clone());
    request.insert("resource".into(), gvr(version));
    if let Some(sub) = attrs.subresource {
        request.insert("subResource".into(), json!(sub));
        request.insert("requestSubResource".into(), json!(sub));
    }
    request.insert(
        "requestKind".into(),
        match attrs.operation {
            crate::Operation::Connect => kind,
            _ => gvk(attrs.resource),
        },
    );
    request.insert("requestResource".into(), gvr(attrs.resource));
    if !name.is_empty() {
        request.insert("name".into(), json!(name));
    }
    if let Some(ns) = attrs.namespace {
        request.insert("namespace".into(), json!(ns));
    }
    request.insert("operation".into(), json!(attrs.operation.as_str()));
    request.insert(
        "userInfo".into(),
        match user {
            Some(u) => {
                let mut info = json!({"username": u.name, "groups": u.groups});
                if !u.uid.is_empty() {
                    info["uid"] = json!(u.uid);
                }
                if !u.extra.is_empty() {
                    info["extra"] = json!(u.extra);
                }
                info
            }
            // In-process controllers write as the controller manager does upstream.
            None => json!({"username": "system:kube-controller-manager", "groups": ["system:authenticated"]}),
        },
    );
    request.insert("object".into(), object);
    request.insert("oldObject".into(), old_object);
    request.insert("dryRun".into(), json!(attrs.dry_run));
    if !options_kind.is_empty() {
        request.insert("options".into(), options);
    }
    ReviewRequest {
        body: json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}),
        uid,
    }
}

/// A webhook's verified answer.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// `response.status` (a `metav1.Status`), when sent.
    pub status: Option<Value>,
    /// The decoded JSON patch (mutating webhooks only).
    pub patch: Option<Vec<u8>>,
    /// `response.warnings`.
    pub warnings: Vec<String>,
    /// `response.auditAnnotations` (kept for an audit log).
    pub audit_annotations: Map<String, Value>,
}

/// Upstream's `VerifyAdmissionResponse`: the answer must be an
/// `admission.k8s.io/v1` `AdmissionReview` with a response for `uid`, and
/// only a mutating webhook may send a `JSONPatch`.
/// Its errors are worded as upstream's call sites report them: `received
/// invalid webhook response: ...`.
pub fn verify(uid: &str, mutating: bool, answer: &[u8]) -> Result<Verdict, String> {
    let review: Value = serde_json::from_slice(answer).map_err(|e| {
        format!("failed to call webhook: failed to decode the webhook's response: {e}")
    })?;
    verify_review(uid, mutating, &review)
        .map_err(|e| format!("received invalid webhook response: {e}"))
}

fn verify_review(uid: &str, mutating: bool, review: &Value) -> Result<Verdict, String> {
    let (api_version, kind) = (
        review["apiVersion"].as_str().unwrap_or_default(),
        review["kind"].as_str().unwrap_or_default(),
    );
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let r = &review["response"];
    if !r.is_object() {
        return Err("webhook response was absent".into());
    }
    let got = r["uid"].as_str().unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid=\"{uid}\", got \"{got}\""));
    }
    let patch = match r["patch"].as_str().filter(|p| !p.is_empty()) {
        None => None,
        Some(_) if !mutating => {
            return Err("validating webhook may not return response.patch".into());
        }
        Some(p) => {
            match r["patchType"].as_str() {
                None => {
                    return Err("webhook returned response.patch but not response.patchType".into());
                }
                Some("JSONPatch") => {}
                Some(other) => {
                    return Err(format!(
                        "webhook returned invalid response.patchType of \"{other}\""
                    ));
                }
            }
            Some(
                base64::engine::general_purpose::STANDARD
                    .decode(p)
                    .map_err(|e| format!("failed to decode the webhook's patch: {e}"))?,
            )
        }
    };
    Ok(Verdict {
        allowed: r["allowed"].as_bool().unwrap_or(false),
        status: r.get("status").filter(|s| s.is_object()).cloned(),
        patch,
        warnings: r["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_string))
            .collect(),
        audit_annotations: r["auditAnnotations"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
}

/// Upstream's `ToStatusErr`: the webhook's own status (code at least 400,
/// status `Failure`) with its message prefixed by who denied the request.
pub fn denial(webhook: &str, status: Option<&Value>) -> Value {
    let mut s = status.cloned().unwrap_or_else(|| json!({}));
    let denied_by = format!("admission webhook \"{webhook}\" denied the request");
    let code = s["code"].as_u64().filter(|c| *c >= 400).unwrap_or(400);
    s["code"] = json!(code);
    if matches!(s["status"].as_str(), None | Some("") | Some("Success")) {
        s["status"] = json!("Failure");
    }
    let message = match (s["message"].as_str(), s["reason"].as_str()) {
        (Some(m), _) if !m.is_empty() => format!("{denied_by}: {m}"),
        (_, Some(r)) if !r.is_empty() => format!("{denied_by}: {r}"),
        _ => format!("{denied_by} without explanation"),
    };
    s["message"] = json!(message);
    s["kind"] = json!("Status");
    s["apiVersion"] = json!("v1");
    if !s["metadata"].is_object() {
        s["metadata"] = json!({});
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})).unwrap()
    }

    #[test]
    fn verifies_as_upstream() {
        let ok = verify(
            "u1",
            false,
            &answer(json!({"uid": "u1", "allowed": true, "warnings": ["w"]})),
        )
        .unwrap();
        assert!(ok.allowed);
        assert_eq!(ok.warnings, ["w"]);
        assert_eq!(
            verify("u1", false, &answer(json!({"uid": "u2", "allowed": true}))).unwrap_err(),
            "received invalid webhook response: expected response.uid=\"u1\", got \"u2\""
        );
        let patch = base64::engine::general_purpose::STANDARD.encode(b"[]");
        assert_eq!(
            verify(
                "u",
                false,
                &answer(
                    json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"})
                )
            )
            .unwrap_err(),
            "received invalid webhook response: validating webhook may not return response.patch"
        );
        assert_eq!(
            verify(
                "u",
                true,
                &answer(json!({"uid": "u", "allowed": true, "patch": patch}))
            )
            .unwrap_err(),
            "received invalid webhook response: webhook returned response.patch but not response.patchType"
        );
        let m = verify(
            "u",
            true,
            &answer(json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"})),
        )
        .unwrap();
        assert_eq!(m.patch.as_deref(), Some(&b"[]"[..]));
        let wrong = serde_json::to_vec(
            &json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}),
        )
        .unwrap();
        assert!(verify("u", true, &wrong).unwrap_err().starts_with(
            "received invalid webhook response: expected webhook response of admission.k8s.io/v1"
        ));
    }

    #[test]
    fn denials_keep_the_webhooks_status() {
        let d = denial(
            "v.example.com",
            Some(&json!({"code": 403, "reason": "Forbidden", "message": "no"})),
        );
        assert_eq!(d["code"], 403);
        assert_eq!(
            d["message"],
            "admission webhook \"v.example.com\" denied the request: no"
        );
        assert_eq!(d["status"], "Failure");
        let d = denial("v", Some(&json!({"code": 200})));
        assert_eq!(d["code"], 400);
        assert_eq!(
            d["message"],
            "admission webhook \"v\" denied the request without explanation"
        );
        let d = denial("v", Some(&json!({"reason": "Because"})));
        assert_eq!(
            d["message"],
            "admission webhook \"v\" denied the request: Because"
        );
    }
}
