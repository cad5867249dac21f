//! Addresses a tenant may point the parent at (the check itself,
//! [`nestkube_tenant_crds::refused_address`], is shared with the url
//! webhooks of admission): the addresses of copied
//! Endpoints and the `ipBlock` peers of copied NetworkPolicies must lie
//! inside the VirtualCluster's `spec.network.allowedCIDRs`; an endpoint
//! address must also pass upstream's `ValidateEndpointIP` (not unspecified,
//! loopback, link-local or multicast, IPv4-mapped forms included) and may
//! not be one of the parent's own API addresses ([`parent_api_addresses`]),
//! whatever the allow-list says.
//!
//! The checks are pure; only [`parent_api_addresses`] reads the parent.

use std::net::IpAddr;

use nestkube_tenant_crds::Cidr;
use serde_json::Value;

use super::{api, get};
use crate::{Ctx, Kind};

/// Why `ip` may not be an endpoint address in the parent (`None`: it may).
/// `allowed`: the VirtualCluster's ranges; `reserved`: the parent's API
/// addresses.
pub(crate) fn endpoint_ip(ip: &str, allowed: &[Cidr], reserved: &[IpAddr]) -> Option<String> {
    nestkube_tenant_crds::refused_address(ip, allowed, reserved)
}

/// Why `cidr` may not be an `ipBlock` of a copied NetworkPolicy (`None`:
/// it lies inside one of `allowed`).
pub(crate) fn ip_block(cidr: &str, allowed: &[Cidr]) -> Option<String> {
    let Ok(parsed) = cidr.parse::<Cidr>() else {
        return Some("must be a valid CIDR".into());
    };
    (!allowed.iter().any(|a| a.contains(&parsed))).then(not_allowed)
}

fn not_allowed() -> String {
    nestkube_tenant_crds::NOT_IN_ALLOWED_CIDRS.into()
}

/// The parent's own API addresses: the cluster IPs of its `default/kubernetes`
/// Service and the addresses of its Endpoints (the API servers). What
/// cannot be read (no right to, or the parent has none) is not known, and
/// then only the allow-list protects those addresses.
pub(crate) async fn parent_api_addresses(ctx: &Ctx) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let ips = |v: &Value| -> Vec<IpAddr> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str()?.parse().ok())
            .collect()
    };
    match get(&api(&ctx.parent, Kind::Service, "default"), "kubernetes").await {
        Ok(Some(svc)) => {
            out.extend(ips(&svc["spec"]["clusterIPs"]));
            if let Some(ip) = svc["spec"]["clusterIP"]
                .as_str()
                .and_then(|s| s.parse().ok())
            {
                out.push(ip);
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(cluster = %ctx.cluster, error = %e, "could not read the parent's kubernetes Service")
        }
    }
    match get(&api(&ctx.parent, Kind::Endpoints, "default"), "kubernetes").await {
        Ok(Some(ep)) => {
            for s in ep["subsets"].as_array().into_iter().flatten() {
                for a in s["addresses"].as_array().into_iter().flatten() {
                    if let Some(ip) = a["ip"].as_str().and_then(|s| s.parse().ok()) {
                        out.push(ip);
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(cluster = %ctx.cluster, error = %e, "could not read the parent's kubernetes Endpoints")
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(l: &[&str]) -> Vec<Cidr> {
        l.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn endpoint_addresses_as_upstream_and_inside_the_allow_list() {
        let all = cidrs(&["0.0.0.0/0", "::/0"]);
        let api: Vec<IpAddr> = vec!["10.96.0.1".parse().unwrap()];
        for bad in [
            "0.0.0.0",
            "::",
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "ff02::1",
            "239.1.2.3",
            "255.255.255.255",
            "10.96.0.1",
            "::ffff:10.96.0.1",
            "not-an-ip",
        ] {
            assert!(endpoint_ip(bad, &all, &api).is_some(), "{bad}");
        }
        assert_eq!(endpoint_ip("203.0.113.7", &all, &api), None);
        let narrow = cidrs(&["203.0.113.0/24"]);
        assert_eq!(endpoint_ip("203.0.113.7", &narrow, &api), None);
        assert!(endpoint_ip("10.0.0.7", &narrow, &api).is_some());
        assert!(
            endpoint_ip("203.0.113.7", &[], &api).is_some(),
            "nothing allowed by default"
        );
    }

    #[test]
    fn ip_blocks_lie_inside_the_allow_list() {
        let allowed = cidrs(&["10.0.0.0/8"]);
        assert_eq!(ip_block("10.0.0.0/8", &allowed), None);
        assert_eq!(ip_block("10.1.0.0/16", &allowed), None);
        assert!(ip_block("0.0.0.0/0", &allowed).is_some());
        assert!(ip_block("169.254.169.254/32", &allowed).is_some());
        assert!(ip_block("10.0.0.0/8", &[]).is_some());
        assert!(ip_block("bogus", &allowed).is_some());
    }
}
