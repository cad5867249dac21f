//! Adversarial tests of the syncer: a tenant (or an unauthenticated client)
//! that tries to reach the parent cluster, another tenant, or the syncer's
//! DNS through what it has synced down or sends. One module per class of
//! finding, against real servers and sockets on 127.0.0.1 (standalone mode:
//! `root` is the parent), each failing if the hole reopens.

use crate::common;

mod dns_connection_exhaustion;
mod network_exposure;
mod pod_reference_translation;
mod tenant_network_isolation;

use k8s_openapi::api::core::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

/// Creates `obj` (JSON) of `K` in namespace `default` of `client`.
pub async fn create<K>(client: &Client, obj: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    common::create(client, "default", obj).await
}

/// Waits for the syncer's `SyncError` Warning about `kind` `name` of
/// namespace `default` of `client`; returns its message.
pub async fn sync_error(client: &Client, kind: &str, name: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = common::wait_for(
        &format!("the SyncError Warning on {kind} {name}"),
        || async {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.involved_object.kind.as_deref() == Some(kind)
                        && e.reason.as_deref() == Some("SyncError")
                })
        },
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    event.message.unwrap_or_default()
}
