//! `pods/binding`: assigning a pod to a node, as upstream's `BindingREST`
//! (`pkg/registry/core/pod/storage`): a pod gets `spec.nodeName` once, and
//! never again; the write also merges the binding's annotations and sets
//! the `PodScheduled` condition. It goes through the generic store's update
//! loop (admission included, as subresource `binding`), never around it.
//!
//! This module must never change anything of a pod but its node, its
//! annotations and its `PodScheduled` condition.

use serde_json::{Value, json};

use super::meta;
use super::store::{Store, Target, WriteOptions, Written};
use crate::error::{ApiError, FieldError, Subject};

/// Binds pod `name` of `t` as `binding` (a `v1 Binding`) says. Errors as
/// upstream: 400 when the names differ, 422 for a bad target, 409 when
/// the pod is bound already (or its uid is not the binding's), 500 when it
/// is being deleted.
pub async fn bind(
    store: &Store,
    t: &Target<'_>,
    name: &str,
    binding: &Value,
    opts: WriteOptions,
) -> Result<Written, ApiError> {
    if meta::name(binding) != name {
        return Err(ApiError::BadRequest(
            "name in URL does not match name in Binding object".into(),
        ));
    }
    let kind = binding["target"]["kind"].as_str().unwrap_or("");
    let node = binding["target"]["name"].as_str().unwrap_or("");
    let mut errors = Vec::new();
    if !kind.is_empty() && kind != "Node" {
        errors.push(FieldError::not_supported(
            "target.kind",
            json!(kind),
            &["Node", "<empty>"],
        ));
    }
    if node.is_empty() {
        errors.push(FieldError::required("target.name", ""));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid {
            subject: Subject {
                group: String::new(),
                kind: "Binding".into(),
                name: name.into(),
            },
            errors,
        });
    }
    let uid = meta::uid(binding).to_string();
    let conflict = |message: String| ApiError::Conflict {
        subject: Subject {
            group: String::new(),
            kind: "pods/binding".into(),
            name: name.into(),
        },
        message,
    };
    store
        .update_with(t, name, Some("binding"), opts, |old| {
            if meta::is_deleting(old) {
                return Err(ApiError::Internal(format!(
                    "pod {name} is being deleted, cannot be assigned to a host"
                )));
            }
            if !uid.is_empty() && uid != meta::uid(old) {
                return Err(conflict(format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(old)
                )));
            }
            let bound = old["spec"]["nodeName"].as_str().unwrap_or("");
            if !bound.is_empty() {
                return Err(conflict(format!(
                    "pod {name} is already assigned to node {bound:?}"
                )));
            }
            let mut pod = old.clone();
            pod["spec"]["nodeName"] = json!(node);
            if let Some(extra) = binding["metadata"]["annotations"].as_object() {
                let annotations = &mut pod["metadata"]["annotations"];
                if !annotations.is_object() {
                    *annotations = json!({});
                }
                for (k, v) in extra {
                    annotations[k] = v.clone();
                }
            }
            set_scheduled(&mut pod);
            Ok((pod, Vec::new()))
        })
        .await
}

/// Upstream's `podutil.UpdatePodCondition` with `PodScheduled=True`.
fn set_scheduled(pod: &mut Value) {
    let now = meta::now();
    let conditions = &mut pod["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("an array");
    match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(c) if c["status"] == "True" => {}
        Some(c) => {
            c["status"] = json!("True");
            c["lastTransitionTime"] = json!(now);
            c["reason"] = Value::Null;
            c["message"] = Value::Null;
        }
        None => list.push(json!({"type": "PodScheduled", "status": "True",
                                 "lastProbeTime": null, "lastTransitionTime": now})),
    }
}
