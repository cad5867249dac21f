//! NetworkPolicies (when the VirtualCluster's `spec.sync.networkPolicies`
//! is on): a virtual NetworkPolicy is copied to the parent so its network
//! plugin enforces it on the copies of the tenant's pods.
//!
//! Every copy of a virtual cluster lands in one host namespace, so the
//! selectors are translated to keep a policy inside its tenant and its
//! virtual namespace ([`translate`]):
//! - `spec.podSelector`: label keys moved as for Services
//!   ([`names::host_label_key`]), AND'ed with the managed-by, VirtualCluster
//!   uid and virtual namespace labels every pod copy carries;
//! - a peer with only a `podSelector` (the policy's own namespace): the
//!   same;
//! - a peer with a `namespaceSelector`: evaluated here against the labels
//!   of the virtual cluster's namespaces, and expressed as a pod selector
//!   on the copies (uid label, and `namespace label In [the namespaces that
//!   match]`, omitted for an empty selector, which matches every
//!   namespace). When no namespace matches, the peer becomes a selector
//!   that matches no pod at all ([`nothing`]): dropping the peer could leave
//!   an empty `from`/`to`, which allows everyone.
//! - ports (named ones too) and `policyTypes` are kept: a policy only
//!   restricts the pods it selects, which are the tenant's own;
//! - an `ipBlock` peer is kept (its `cidr` and `except`) when its `cidr`
//!   lies inside the VirtualCluster's `spec.network.allowedCIDRs` (none by
//!   default): policies only add allowances, so a tenant's
//!   `ipBlock: 0.0.0.0/0` would re-open egress the platform's own policies
//!   close. Any other becomes a peer that matches nothing ([`nothing`]; the
//!   policy still isolates the pods it selects) and a Warning `SyncError`
//!   Event on the virtual policy names it.
//!
//! A copied policy adds to the cluster's default isolation policy
//! ([`super::isolation`]): NetworkPolicies selecting a pod are a union.
//!
//! The namespace labels are read at each reconcile; the policies of a
//! cluster are reconciled again when its namespaces change
//! ([`crate::Item::NetworkPolicies`]).
//!
//! This module never touches a parent NetworkPolicy that is not a copy
//! owned by the reconciled cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use nestkube_apiserver::registry::kinds::labelselector;
use serde_json::{Map, Value, json};

use nestkube_tenant_crds::{Cidr, parse_cidrs};

use super::refusal::{self, Refusals, Refused};
use super::{api, create, delete, exposure, get, host_meta, is_ours, meta, replace};
use crate::kinds::Translate;
use crate::{Ctx, Kind, SyncError, Syncer, names};

/// Reconciles virtual NetworkPolicy `ns/name` with its copy.
pub(crate) async fn sync(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<Duration>, SyncError> {
    let hapi = api(
        &ctx.parent,
        Kind::NetworkPolicy,
        &ctx.placement.host_namespace,
    );
    let hname = names::host_name(&ctx.cluster, ns, name);
    let hnp = match get(&hapi, &hname).await? {
        Some(h) if !is_ours(ctx, &h) => {
            tracing::warn!(cluster = %ctx.cluster, policy = %format!("{ns}/{name}"),
                "a parent NetworkPolicy of that name belongs to someone else; not syncing");
            return Ok(None);
        }
        h => h,
    };
    let vnp = match ctx.placement.spec.sync.network_policies {
        true => get(&api(&ctx.virt, Kind::NetworkPolicy, ns), name)
            .await?
            .filter(|v| !super::pod::is_deleting(v)),
        false => None,
    };
    let Some(vnp) = vnp else {
        if let Some(h) = hnp {
            delete(&hapi, &hname, meta(&h, "uid"), None).await?;
        }
        return Ok(None);
    };
    let namespaces = namespace_labels(ctx).await?;
    let (desired, narrowed) = translate(ctx, &vnp, &namespaces);
    if let Some(why) = narrowed {
        refusal::report(ctx, &vnp, "NetworkPolicy", "networking.k8s.io/v1", &why).await;
    }
    let retry = Some(Duration::from_millis(200));
    match hnp {
        None => Ok(create(&hapi, &desired)
            .await?
            .is_none()
            .then_some(retry)
            .flatten()),
        Some(h) if super::is_current(&h, &desired) => Ok(None),
        Some(mut h) => {
            h["spec"] = desired["spec"].clone();
            h["metadata"]["labels"] = desired["metadata"]["labels"].clone();
            h["metadata"]["annotations"] = desired["metadata"]["annotations"].clone();
            Ok((!replace(&hapi, &h).await?).then_some(retry).flatten())
        }
    }
}

/// The labels of every namespace of the virtual cluster, by name.
async fn namespace_labels(ctx: &Ctx) -> Result<BTreeMap<String, Value>, SyncError> {
    let list = kube::Api::<Namespace>::all(ctx.virt.clone())
        .list(&Default::default())
        .await?;
    let mut out = BTreeMap::new();
    for n in list.items {
        let n = serde_json::to_value(n)?;
        let labels = n["metadata"]["labels"].clone();
        out.insert(meta(&n, "name").to_string(), labels);
    }
    Ok(out)
}

/// The parent copy of virtual NetworkPolicy `vnp`, given the labels of the
/// virtual cluster's namespaces (see the module docs), and the `ipBlock`
/// peers that were narrowed to nothing.
pub(crate) fn translate(
    ctx: &Ctx,
    vnp: &Value,
    namespaces: &BTreeMap<String, Value>,
) -> (Value, Option<Refused>) {
    let ns = meta(vnp, "namespace");
    let hname = names::host_name(&ctx.cluster, ns, meta(vnp, "name"));
    let uid = &ctx.placement.uid;
    let allowed = parse_cidrs(&ctx.placement.spec.network.allowed_cidrs);
    let mut errs = Refusals::default();
    let v = &vnp["spec"];
    let mut spec = json!({
        "podSelector": pod_selector(&v["podSelector"], uid, Some(ns)),
    });
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        let Some(list) = v[rules].as_array() else {
            continue;
        };
        let out: Vec<Value> = list
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let mut r = Map::new();
                if let Some(ports) = rule.get("ports").filter(|p| !p.is_null()) {
                    r.insert("ports".into(), ports.clone());
                }
                if let Some(list) = rule[peers].as_array() {
                    let translated = list
                        .iter()
                        .enumerate()
                        .map(|(j, p)| match peer(p, uid, ns, namespaces, &allowed) {
                            Ok(p) => p,
                            Err(why) => {
                                errs.push(
                                    format!("spec.{rules}[{i}].{peers}[{j}].ipBlock.cidr"),
                                    why,
                                );
                                json!({ "podSelector": nothing(uid) })
                            }
                        })
                        .collect();
                    r.insert(peers.into(), Value::Array(translated));
                }
                Value::Object(r)
            })
            .collect();
        spec[rules] = Value::Array(out);
    }
    if let Some(types) = v.get("policyTypes").filter(|t| !t.is_null()) {
        spec["policyTypes"] = types.clone();
    }
    let mut copy = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": host_meta(ctx, vnp, &hname),
        "spec": spec,
    });
    super::stamp_spec(&mut copy);
    (copy, errs.finish(()).err())
}

/// One peer of an ingress or egress rule of a policy in virtual namespace
/// `ns`; an `ipBlock` outside `allowed` is refused (why).
fn peer(
    p: &Value,
    uid: &str,
    ns: &str,
    namespaces: &BTreeMap<String, Value>,
    allowed: &[Cidr],
) -> Result<Value, String> {
    if !p["ipBlock"].is_null() {
        let cidr = p["ipBlock"]["cidr"].as_str().unwrap_or("");
        if let Some(why) = exposure::ip_block(cidr, allowed) {
            return Err(format!("{cidr:?}: {why}"));
        }
        let mut block = json!({ "cidr": cidr });
        if let Some(except) = p["ipBlock"].get("except").filter(|e| !e.is_null()) {
            block["except"] = except.clone();
        }
        return Ok(json!({ "ipBlock": block }));
    }
    let ns_selector = &p["namespaceSelector"];
    if ns_selector.is_null() {
        return Ok(json!({"podSelector": pod_selector(&p["podSelector"], uid, Some(ns))}));
    }
    if labelselector::is_empty(ns_selector) {
        // Every namespace of the virtual cluster.
        return Ok(json!({"podSelector": pod_selector(&p["podSelector"], uid, None)}));
    }
    let matching: Vec<String> = namespaces
        .iter()
        .filter(|(_, labels)| labelselector::matches(ns_selector, labels))
        .map(|(n, _)| names::label_value(n))
        .collect();
    if matching.is_empty() {
        return Ok(json!({"podSelector": nothing(uid)}));
    }
    let mut sel = pod_selector(&p["podSelector"], uid, None);
    push_expression(
        &mut sel,
        json!({"key": names::NAMESPACE_LABEL, "operator": "In", "values": matching}),
    );
    Ok(json!({ "podSelector": sel }))
}

/// Virtual label selector `sel` (absent: every pod) as a selector of pod
/// copies: keys moved, restricted to the copies of VirtualCluster `uid`
/// and, with `ns`, to those of that virtual namespace.
pub(crate) fn pod_selector(sel: &Value, uid: &str, ns: Option<&str>) -> Value {
    let mut labels: BTreeMap<String, String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((names::host_label_key(k), v.as_str()?.to_string())))
        .collect();
    labels.insert(
        names::MANAGED_BY_LABEL.into(),
        names::MANAGED_BY_VALUE.into(),
    );
    labels.insert(names::VC_UID_LABEL.into(), names::label_value(uid));
    if let Some(ns) = ns {
        labels.insert(names::NAMESPACE_LABEL.into(), names::label_value(ns));
    }
    let mut out = json!({ "matchLabels": labels });
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let mut e = e.clone();
        if let Some(k) = e["key"].as_str() {
            e["key"] = json!(names::host_label_key(k));
        }
        push_expression(&mut out, e);
    }
    out
}

/// A selector of no pod at all: the VirtualCluster's uid label both
/// required and required absent (never an empty selector, which selects
/// every pod).
pub(crate) fn nothing(uid: &str) -> Value {
    json!({
        "matchLabels": {names::VC_UID_LABEL: names::label_value(uid)},
        "matchExpressions": [{"key": names::VC_UID_LABEL, "operator": "DoesNotExist"}],
    })
}

fn push_expression(sel: &mut Value, e: Value) {
    match sel["matchExpressions"].as_array_mut() {
        Some(list) => list.push(e),
        None => sel["matchExpressions"] = json!([e]),
    }
}

/// NetworkPolicies' translation ([`crate::kinds`]), the cluster's
/// isolation policy ([`super::isolation`]) included.
pub(crate) struct NetworkPolicies;

#[async_trait::async_trait]
impl Translate for NetworkPolicies {
    async fn sync(
        &self,
        s: &Syncer,
        ctx: &Ctx,
        _kind: Kind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Duration>, SyncError> {
        if super::isolation::is_key(ns, name) {
            super::isolation::sync(s, ctx).await
        } else {
            sync(ctx, ns, name).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_matches_no_labels_at_all() {
        let sel = nothing("u");
        assert!(!labelselector::is_empty(&sel));
        for labels in [
            json!({}),
            json!({names::VC_UID_LABEL: "u"}),
            json!({names::VC_UID_LABEL: "other"}),
        ] {
            assert!(!labelselector::matches(&sel, &labels), "{labels}");
        }
    }

    #[test]
    fn peers_stay_in_their_tenant() {
        let namespaces = BTreeMap::from([
            ("a".to_string(), json!({"team": "x"})),
            ("b".to_string(), json!({"team": "y"})),
            ("c".to_string(), json!({"team": "x"})),
        ]);
        let pod = json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
        let own = peer(&json!({"podSelector": pod}), "u", "a", &namespaces, &[]).unwrap();
        assert_eq!(
            own,
            json!({"podSelector": {
                "matchLabels": {
                    "label.tenancy.nestkube.io/app": "web",
                    names::MANAGED_BY_LABEL: "nestkube",
                    names::NAMESPACE_LABEL: "a",
                    names::VC_UID_LABEL: "u",
                },
                "matchExpressions": [{"key": "label.tenancy.nestkube.io/tier", "operator": "NotIn", "values": ["db"]}],
            }})
        );
        let by_ns = peer(
            &json!({"namespaceSelector": {"matchLabels": {"team": "x"}}}),
            "u",
            "a",
            &namespaces,
            &[],
        )
        .unwrap();
        assert_eq!(
            by_ns["podSelector"]["matchExpressions"],
            json!([{"key": names::NAMESPACE_LABEL, "operator": "In", "values": ["a", "c"]}])
        );
        assert_eq!(
            by_ns["podSelector"]["matchLabels"][names::VC_UID_LABEL],
            "u"
        );
        assert!(by_ns["podSelector"]["matchLabels"][names::NAMESPACE_LABEL].is_null());
        let none = peer(
            &json!({"namespaceSelector": {"matchLabels": {"team": "z"}}, "podSelector": {}}),
            "u",
            "a",
            &namespaces,
            &[],
        )
        .unwrap();
        assert_eq!(none, json!({ "podSelector": nothing("u") }));
        let all = peer(
            &json!({"namespaceSelector": {}}),
            "u",
            "a",
            &namespaces,
            &[],
        )
        .unwrap();
        assert_eq!(
            all,
            json!({"podSelector": {"matchLabels": {
                names::MANAGED_BY_LABEL: "nestkube", names::VC_UID_LABEL: "u",
            }}})
        );
        let block = json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}});
        let ten: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(peer(&block, "u", "a", &namespaces, &ten).unwrap(), block);
        let open = json!({"ipBlock": {"cidr": "0.0.0.0/0"}});
        assert!(peer(&open, "u", "a", &namespaces, &ten).is_err());
        assert!(
            peer(&block, "u", "a", &namespaces, &[]).is_err(),
            "nothing allowed by default"
        );
    }
}
