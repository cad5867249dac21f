//! `pods/binding`: assigning a pod to a node, as upstream's `BindingREST`
//! (`pkg/registry/core/pod/storage`, `assignPod`): a pod gets `spec.nodeName` once, and
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

/// Binds pod `name` of `t` as `binding` (a `v1 Binding`) says, with
/// upstream's answers: 400 when the names differ; 500 (upstream returns its
/// validation as a plain error) for a bad target; 409 on `pods` when the
/// binding's uid or resourceVersion precondition fails; 409 on
/// `pods/binding` when the pod is bound already, is being deleted or has
/// scheduling gates.
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
        // `ValidatePodBinding(...).ToAggregate()`: not a Status upstream,
        // so a 500 with the aggregate's message.
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let message = match messages.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        return Err(ApiError::Other {
            code: 500,
            reason: "",
            message,
            causes: Vec::new(),
        });
    }
    let uid = meta::uid(binding).to_string();
    let rv = meta::resource_version(binding).to_string();
    let on = |resource: &str, message: String| ApiError::Conflict {
        subject: Subject {
            group: String::new(),
            kind: resource.into(),
            name: name.into(),
        },
        message,
    };
    store
        .update_with(t, name, Some("binding"), opts, |old| {
            // The binding's uid and resourceVersion are preconditions
            // (`PreserveRequestObjectMetaSystemFieldsOnSubresourceCreate`).
            if !uid.is_empty() && uid != meta::uid(old) {
                return Err(on(
                    "pods",
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(old)
                    ),
                ));
            }
            if !rv.is_empty() && rv != meta::resource_version(old) {
                return Err(on(
                    "pods",
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        meta::resource_version(old)
                    ),
                ));
            }
            if meta::is_deleting(old) {
                return Err(on(
                    "pods/binding",
                    format!("pod {name} is being deleted, cannot be assigned to a host"),
                ));
            }
            let bound = old["spec"]["nodeName"].as_str().unwrap_or("");
            if !bound.is_empty() {
                return Err(on(
                    "pods/binding",
                    format!("pod {name} is already assigned to node {bound:?}"),
                ));
            }
            if old["spec"]["schedulingGates"]
                .as_array()
                .is_some_and(|g| !g.is_empty())
            {
                return Err(on(
                    "pods/binding",
                    format!("pod {name} has non-empty .spec.schedulingGates"),
                ));
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
            // The pod's own resourceVersion: the store checks it against the
            // one it read, so a concurrent write retries this function.
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
