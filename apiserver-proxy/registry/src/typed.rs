//! Typed decoding: every built-in kind goes through its k8s-openapi type, as
//! kube-apiserver decodes into Go structs.
//!
//! Decoding a body into the typed struct and encoding it again yields the
//! object upstream would store: wrong JSON types are rejected, unknown fields
//! are dropped (and reported, for `fieldValidation`), nulls vanish. This module
//! only knows types; it never defaults or validates semantics.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Round-trips a JSON object through one k8s-openapi type.
pub type TypedCodec = fn(Value) -> Result<Value, String>;

/// How a resource's request bodies are decoded: through a built-in type, or
/// by a function built at run time (a custom resource's structural schema,
/// which prunes unknown fields as the typed decode drops them).
#[derive(Clone)]
pub enum Codec {
    /// A built-in k8s-openapi type.
    Typed(TypedCodec),
    /// A custom resource's pruning decoder.
    Dynamic(std::sync::Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>),
}

impl Codec {
    /// Decodes `v`: the object as it would be stored, or the decode error.
    pub fn decode(&self, v: Value) -> Result<Value, String> {
        match self {
            Self::Typed(f) => f(v),
            Self::Dynamic(f) => f(v),
        }
    }
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Typed(_) => "Codec::Typed",
            Self::Dynamic(_) => "Codec::Dynamic",
        })
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(v: Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

macro_rules! codecs {
    ($( $group:literal $version:literal $kind:literal => $ty:ty ;)*) => {
        /// The codec for a group/version/kind, if it is a built-in type we serve.
        pub fn codec(group: &str, version: &str, kind: &str) -> Option<TypedCodec> {
            match (group, version, kind) {
                $( ($group, $version, $kind) => Some(roundtrip::<$ty>), )*
                _ => None,
            }
        }
    };
}

use k8s_openapi::api as a;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;

codecs! {
    "" "v1" "ConfigMap" => a::core::v1::ConfigMap;
    "" "v1" "Endpoints" => a::core::v1::Endpoints;
    "" "v1" "Event" => a::core::v1::Event;
    "" "v1" "LimitRange" => a::core::v1::LimitRange;
    "" "v1" "Namespace" => a::core::v1::Namespace;
    "" "v1" "Node" => a::core::v1::Node;
    "" "v1" "PersistentVolume" => a::core::v1::PersistentVolume;
    "" "v1" "PersistentVolumeClaim" => a::core::v1::PersistentVolumeClaim;
    "" "v1" "Pod" => a::core::v1::Pod;
    "" "v1" "PodTemplate" => a::core::v1::PodTemplate;
    "" "v1" "ReplicationController" => a::core::v1::ReplicationController;
    "" "v1" "ResourceQuota" => a::core::v1::ResourceQuota;
    "" "v1" "Secret" => a::core::v1::Secret;
    "" "v1" "Service" => a::core::v1::Service;
    "" "v1" "ServiceAccount" => a::core::v1::ServiceAccount;
    "apps" "v1" "ControllerRevision" => a::apps::v1::ControllerRevision;
    "apps" "v1" "DaemonSet" => a::apps::v1::DaemonSet;
    "apps" "v1" "Deployment" => a::apps::v1::Deployment;
    "apps" "v1" "ReplicaSet" => a::apps::v1::ReplicaSet;
    "apps" "v1" "StatefulSet" => a::apps::v1::StatefulSet;
    "batch" "v1" "CronJob" => a::batch::v1::CronJob;
    "batch" "v1" "Job" => a::batch::v1::Job;
    "rbac.authorization.k8s.io" "v1" "ClusterRole" => a::rbac::v1::ClusterRole;
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => a::rbac::v1::ClusterRoleBinding;
    "rbac.authorization.k8s.io" "v1" "Role" => a::rbac::v1::Role;
    "rbac.authorization.k8s.io" "v1" "RoleBinding" => a::rbac::v1::RoleBinding;
    "coordination.k8s.io" "v1" "Lease" => a::coordination::v1::Lease;
    "discovery.k8s.io" "v1" "EndpointSlice" => a::discovery::v1::EndpointSlice;
    "networking.k8s.io" "v1" "Ingress" => a::networking::v1::Ingress;
    "networking.k8s.io" "v1" "IngressClass" => a::networking::v1::IngressClass;
    "networking.k8s.io" "v1" "IPAddress" => a::networking::v1::IPAddress;
    "networking.k8s.io" "v1" "NetworkPolicy" => a::networking::v1::NetworkPolicy;
    "networking.k8s.io" "v1" "ServiceCIDR" => a::networking::v1::ServiceCIDR;
    "policy" "v1" "PodDisruptionBudget" => a::policy::v1::PodDisruptionBudget;
    "storage.k8s.io" "v1" "CSIDriver" => a::storage::v1::CSIDriver;
    "storage.k8s.io" "v1" "CSINode" => a::storage::v1::CSINode;
    "storage.k8s.io" "v1" "CSIStorageCapacity" => a::storage::v1::CSIStorageCapacity;
    "storage.k8s.io" "v1" "StorageClass" => a::storage::v1::StorageClass;
    "storage.k8s.io" "v1" "VolumeAttachment" => a::storage::v1::VolumeAttachment;
    "storage.k8s.io" "v1" "VolumeAttributesClass" => a::storage::v1::VolumeAttributesClass;
    "scheduling.k8s.io" "v1" "PriorityClass" => a::scheduling::v1::PriorityClass;
    "node.k8s.io" "v1" "RuntimeClass" => a::node::v1::RuntimeClass;
    "autoscaling" "v1" "HorizontalPodAutoscaler" => a::autoscaling::v1::HorizontalPodAutoscaler;
    "autoscaling" "v1" "Scale" => a::autoscaling::v1::Scale;
    "autoscaling" "v2" "HorizontalPodAutoscaler" => a::autoscaling::v2::HorizontalPodAutoscaler;
    "admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration" => a::admissionregistration::v1::MutatingWebhookConfiguration;
    "admissionregistration.k8s.io" "v1" "ValidatingWebhookConfiguration" => a::admissionregistration::v1::ValidatingWebhookConfiguration;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicy" => a::admissionregistration::v1::ValidatingAdmissionPolicy;
    "admissionregistration.k8s.io" "v1" "ValidatingAdmissionPolicyBinding" => a::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicy" => a::admissionregistration::v1::MutatingAdmissionPolicy;
    "admissionregistration.k8s.io" "v1" "MutatingAdmissionPolicyBinding" => a::admissionregistration::v1::MutatingAdmissionPolicyBinding;
    "certificates.k8s.io" "v1" "CertificateSigningRequest" => a::certificates::v1::CertificateSigningRequest;
    "events.k8s.io" "v1" "Event" => a::events::v1::Event;
    "apiextensions.k8s.io" "v1" "CustomResourceDefinition" => apiext::CustomResourceDefinition;
    "tenancy.nestkube.io" "v1alpha1" "VirtualCluster" => nestkube_tenant_crds::VirtualCluster;
}

/// Paths of fields present (and non-null) in `input` that `decoded` lost:
/// the unknown fields of a typed decode, in upstream notation (`spec.foo`,
/// `spec.containers[0].bar`).
pub fn unknown_fields(input: &Value, decoded: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(input, decoded, String::new(), &mut out);
    out
}

fn walk(input: &Value, decoded: &Value, path: String, out: &mut Vec<String>) {
    match (input, decoded) {
        (Value::Object(i), Value::Object(d)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match d.get(k) {
                    Some(dv) => walk(v, dv, p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(d)) => {
            for (n, (iv, dv)) in i.iter().zip(d).enumerate() {
                walk(iv, dv, format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_and_reports_unknown_fields() {
        let input = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1},
            "data": {"k": "v"}, "extra": {"x": 1}});
        let out = codec("", "v1", "ConfigMap").unwrap()(input.clone()).unwrap();
        assert_eq!(
            unknown_fields(&input, &out),
            vec!["metadata.bogus", "extra"]
        );
        assert!(out.get("extra").is_none());
    }

    #[test]
    fn rejects_wrong_types_with_a_path() {
        let input = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}});
        let err = codec("apps", "v1", "Deployment").unwrap()(input).unwrap_err();
        assert!(err.starts_with("spec.replicas"), "{err}");
    }
}
