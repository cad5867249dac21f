//! The default network isolation of a tenant on its parent: one
//! NetworkPolicy per VirtualCluster in its host namespace (unless its
//! `spec.network.isolation` is `None`), selecting exactly the copies of the
//! VirtualCluster's pods (managed-by and vc-uid labels), with policy types
//! Ingress and Egress:
//! - ingress only from pods of the same VirtualCluster, and from
//!   `spec.network.allowedCIDRs`;
//! - egress only to pods of the same VirtualCluster, to nestkube's DNS (when
//!   it serves one: [`crate::Settings::dns`]) on port 53 UDP and TCP, to
//!   nestkube's API (the endpoint pods are given, [`super::pod::Endpoint`],
//!   when it is an address) on its port, and to
//!   `spec.network.allowedCIDRs`.
//!
//! Synced tenant NetworkPolicies ([`super::network_policy`]) add to this
//! one: NetworkPolicies that select a pod are a union.
//!
//! The policy carries the owner labels and annotations of a copy of a
//! virtual object that cannot exist ([`is_key`]: the namespace
//! [`NAMESPACE`] is not a valid namespace name), so the resync, the parent
//! watch and the sweep treat it as the cluster's own copy, and the cleanup
//! by vc-uid label deletes it with the rest. Its reconcile is keyed as a
//! NetworkPolicy of that namespace.
//!
//! This module never touches a parent NetworkPolicy it does not own.

use std::net::IpAddr;
use std::time::Duration;

use nestkube_apiserver::tenancy::Placement;
use nestkube_tenant_crds::NetworkIsolation;
use serde_json::{Value, json};

use super::pod::Endpoint;
use super::{api, create, delete, get, is_current, is_ours, meta, replace, stamp_spec};
use crate::{Ctx, Kind, SyncError, Syncer, names};

/// The virtual namespace the policy's owner annotations name: not a valid
/// namespace name (a DNS label has no dots), so never a tenant's.
pub const NAMESPACE: &str = "tenancy.nestkube.io";
/// The virtual name the policy's owner annotations name.
pub const NAME: &str = "isolation";

/// Whether a NetworkPolicy reconcile of virtual `ns/name` is the isolation
/// policy's.
pub fn is_key(ns: &str, name: &str) -> bool {
    ns == NAMESPACE && name == NAME
}

/// The parent name of `cluster`'s isolation policy.
pub fn policy_name(cluster: &str) -> String {
    names::host_name(cluster, NAMESPACE, NAME)
}

/// The isolation policy of `cluster` placed by `placement`, whose pods
/// reach nestkube's API at `endpoint` and its DNS at `dns`; `None` when its
/// `spec.network.isolation` is `None`.
pub fn policy(
    cluster: &str,
    placement: &Placement,
    endpoint: &Endpoint,
    dns: Option<IpAddr>,
) -> Option<Value> {
    if placement.spec.network.isolation == NetworkIsolation::None {
        return None;
    }
    let uid = &placement.uid;
    let tenant = json!({"podSelector": {"matchLabels": {
        names::MANAGED_BY_LABEL: names::MANAGED_BY_VALUE,
        names::VC_UID_LABEL: names::label_value(uid),
    }}});
    let allowed: Vec<Value> =
        nestkube_tenant_crds::parse_cidrs(&placement.spec.network.allowed_cidrs)
            .iter()
            .map(|c| json!({"ipBlock": {"cidr": c.to_string()}}))
            .collect();
    let mut ingress = vec![json!({"from": [tenant.clone()]})];
    let mut egress = vec![json!({"to": [tenant.clone()]})];
    if let Some(ip) = dns {
        egress.push(json!({
            "to": [{"ipBlock": {"cidr": host_cidr(ip)}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }));
    }
    let api_host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    if let (Ok(ip), Ok(port)) = (api_host.parse::<IpAddr>(), endpoint.port.parse::<u16>()) {
        egress.push(json!({
            "to": [{"ipBlock": {"cidr": host_cidr(ip)}}],
            "ports": [{"protocol": "TCP", "port": port}],
        }));
    }
    if !allowed.is_empty() {
        ingress.push(json!({ "from": allowed }));
        egress.push(json!({ "to": allowed }));
    }
    let mut p = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {
            "name": policy_name(cluster),
            "namespace": placement.host_namespace,
            "labels": names::owner_labels(uid, NAMESPACE, NAME),
            "annotations": names::owner_annotations(cluster, NAMESPACE, NAME, uid),
        },
        "spec": {
            "podSelector": tenant["podSelector"],
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    });
    stamp_spec(&mut p);
    Some(p)
}

/// `ip` as a one-address CIDR (`/32` or `/128`).
fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

/// Creates, updates or deletes (isolation switched off) `ctx`'s isolation
/// policy in its parent.
pub(crate) async fn sync(s: &Syncer, ctx: &Ctx) -> Result<Option<Duration>, SyncError> {
    let hapi = api(
        &ctx.parent,
        Kind::NetworkPolicy,
        &ctx.placement.host_namespace,
    );
    let hname = policy_name(&ctx.cluster);
    let have = match get(&hapi, &hname).await {
        Ok(h) => h,
        Err(SyncError::Kube(kube::Error::Api(e))) if e.code == 403 => {
            tracing::warn!(cluster = %ctx.cluster, message = %e.message,
                "syncer: may not manage NetworkPolicies in the parent (grant it to isolate tenants); the tenant's pods are not isolated");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if let Some(h) = &have
        && !is_ours(ctx, h)
    {
        tracing::warn!(cluster = %ctx.cluster, policy = %hname,
            "a parent NetworkPolicy of the isolation policy's name belongs to someone else; not isolating");
        return Ok(None);
    }
    let want = policy(
        &ctx.cluster,
        &ctx.placement,
        &s.endpoint,
        s.dns.as_ref().map(|d| d.nameserver),
    );
    let retry = Some(Duration::from_millis(200));
    match (have, want) {
        (None, None) => Ok(None),
        (Some(h), None) => delete(&hapi, &hname, meta(&h, "uid"), None)
            .await
            .map(|()| None),
        (None, Some(want)) => Ok(create(&hapi, &want)
            .await?
            .is_none()
            .then_some(retry)
            .flatten()),
        (Some(h), Some(want)) if is_current(&h, &want) => Ok(None),
        (Some(mut h), Some(want)) => {
            h["spec"] = want["spec"].clone();
            h["metadata"]["labels"] = want["metadata"]["labels"].clone();
            h["metadata"]["annotations"] = want["metadata"]["annotations"].clone();
            Ok((!replace(&hapi, &h).await?).then_some(retry).flatten())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nestkube_apiserver::registry::kinds::labelselector;
    use nestkube_apiserver::tenancy::Parent;

    fn placement(network: Value) -> Placement {
        Placement {
            parent: Parent::Host,
            namespace: "tenants".into(),
            name: "team-a".into(),
            uid: "uid-a".into(),
            host_namespace: "tenants".into(),
            spec: serde_json::from_value(json!({ "network": network })).unwrap(),
        }
    }

    fn endpoint() -> Endpoint {
        Endpoint::from_url("https://192.0.2.1:6443")
    }

    fn copy_labels(uid: &str) -> Value {
        json!({names::MANAGED_BY_LABEL: "nestkube", names::VC_UID_LABEL: uid, "app": "x"})
    }

    #[test]
    fn selects_exactly_the_tenants_copies() {
        let ns: IpAddr = "10.96.0.53".parse().unwrap();
        let p = policy("team-a", &placement(json!({})), &endpoint(), Some(ns)).unwrap();
        assert_eq!(p["metadata"]["namespace"], "tenants");
        assert_eq!(p["metadata"]["name"], policy_name("team-a"));
        assert_eq!(
            p["metadata"]["labels"][names::VC_UID_LABEL],
            "uid-a",
            "cleaned up with the VirtualCluster's copies"
        );
        assert_eq!(
            p["metadata"]["annotations"][names::CLUSTER_ANNOTATION],
            "team-a"
        );
        let spec = &p["spec"];
        assert!(labelselector::matches(
            &spec["podSelector"],
            &copy_labels("uid-a")
        ));
        assert!(!labelselector::matches(
            &spec["podSelector"],
            &copy_labels("uid-b")
        ));
        assert!(!labelselector::matches(&spec["podSelector"], &json!({})));
        assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]));
        // Ingress: the tenant's pods only.
        assert_eq!(
            spec["ingress"],
            json!([{"from": [{"podSelector": spec["podSelector"]}]}])
        );
        // Egress: the tenant's pods, DNS on 53 UDP and TCP, the API.
        assert_eq!(
            spec["egress"],
            json!([
                {"to": [{"podSelector": spec["podSelector"]}]},
                {"to": [{"ipBlock": {"cidr": "10.96.0.53/32"}}],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"ipBlock": {"cidr": "192.0.2.1/32"}}],
                 "ports": [{"protocol": "TCP", "port": 6443}]},
            ])
        );
    }

    #[test]
    fn allowed_cidrs_are_reachable_both_ways() {
        let p = placement(json!({"allowedCIDRs": ["203.0.113.0/24", "2001:db8::/64"]}));
        let v6 = Endpoint::from_url("https://[2001:db8::1]");
        let spec = policy("a:b", &p, &v6, None).unwrap()["spec"].clone();
        let blocks = json!([{"ipBlock": {"cidr": "203.0.113.0/24"}}, {"ipBlock": {"cidr": "2001:db8::/64"}}]);
        assert_eq!(spec["ingress"][1], json!({ "from": blocks }));
        let egress = spec["egress"].as_array().unwrap();
        assert_eq!(egress.len(), 3, "no DNS rule without nestkube's DNS");
        assert_eq!(
            egress[1],
            json!({"to": [{"ipBlock": {"cidr": "2001:db8::1/128"}}], "ports": [{"protocol": "TCP", "port": 443}]})
        );
        assert_eq!(egress[2], json!({ "to": blocks }));
    }

    #[test]
    fn a_named_api_host_gets_no_rule_and_none_means_no_policy() {
        let named = Endpoint::from_url("https://nestkube.example.com:443");
        let spec = policy("a", &placement(json!({})), &named, None).unwrap()["spec"].clone();
        assert_eq!(spec["egress"].as_array().unwrap().len(), 1);
        assert!(policy("a", &placement(json!({"isolation": "None"})), &named, None).is_none());
        assert!(
            policy(
                "a",
                &placement(json!({"isolation": "Tenant"})),
                &named,
                None
            )
            .is_some()
        );
    }

    #[test]
    fn its_key_is_no_tenant_object() {
        assert!(is_key(NAMESPACE, NAME));
        // A tenant namespace is a DNS label: no dots.
        assert!(NAMESPACE.contains('.'));
        assert!(!is_key("default", NAME));
        assert_ne!(policy_name("a"), names::host_name("a", "default", NAME));
    }
}
