//! `spec.network`: what of the parent cluster's network a tenant's synced
//! objects may reach or claim (Service types, Ingress hosts and classes,
//! address ranges), with the pure checks both the syncer (what is copied)
//! and the nesting policy (a child never wider than its parent) use.
//!
//! Every list is an allow-list and empty by default: a new VirtualCluster
//! exposes nothing of the parent beyond ClusterIP Services.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most entries accepted in each list of `spec.network`.
pub const MAX_NETWORK_ENTRIES: usize = 64;

/// What of the parent cluster's network the tenant's synced objects may use.
/// Objects asking for more are not copied to the parent cluster (a Warning
/// event on them says why). A nested VirtualCluster may not allow more than
/// the cluster it is created in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Service types copied besides ClusterIP (always allowed; headless
    /// too): NodePort and LoadBalancer (which also opens node ports).
    /// Empty: only ClusterIP Services are copied. ExternalName Services are
    /// never copied (the tenant's DNS answers them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2), extend("x-kubernetes-list-type" = "set"))]
    pub allowed_service_types: Vec<ExposedServiceType>,

    /// Address ranges (CIDRs, e.g. `203.0.113.0/24`) the tenant may name:
    /// the addresses of Endpoints of selector-less Services and the
    /// `ipBlock` peers of NetworkPolicies must lie inside one of them.
    /// Empty: none. Loopback, link-local, unspecified and multicast
    /// addresses, and the parent's API Service address, are refused whatever
    /// this says.
    #[serde(
        default,
        rename = "allowedCIDRs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 64), inner(length(min = 3, max = 43)))]
    pub allowed_cidrs: Vec<String>,

    /// What copied Ingresses may claim on the parent's ingress controllers.
    #[serde(default)]
    pub ingress: IngressPolicy,

    /// The default network isolation of the tenant's pods on the parent
    /// cluster: `Tenant` (the default) gives them a NetworkPolicy that
    /// admits traffic only from the tenant's own pods and lets them reach
    /// only their own pods, nestkube's DNS and API, and allowedCIDRs;
    /// `None` leaves them to the parent's own policies.
    #[serde(default)]
    pub isolation: NetworkIsolation,
}

/// The default network isolation of a tenant's pods on the parent cluster.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum NetworkIsolation {
    /// One NetworkPolicy selecting the tenant's pods: ingress from the
    /// tenant's pods (and allowedCIDRs), egress to them, nestkube's DNS and
    /// API (and allowedCIDRs).
    #[default]
    Tenant,
    /// No default policy.
    None,
}

/// A Service type that exposes a Service outside the cluster network.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ExposedServiceType {
    /// A port on every node of the parent cluster.
    NodePort,
    /// A load balancer of the parent cluster's provider (and node ports).
    LoadBalancer,
}

impl ExposedServiceType {
    /// The type as written in a Service's `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Hosts and classes a copied Ingress may use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressPolicy {
    /// Hosts the tenant's Ingresses may serve (rules and TLS): an exact host
    /// (`shop.example.com`), `*.example.com` for every host below
    /// example.com (wildcard hosts too), or `*` for every host including
    /// the catch-all (rules without a host, `defaultBackend`). Empty: none,
    /// so no Ingress is copied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_hosts: Vec<String>,

    /// IngressClasses of the parent cluster the tenant's Ingresses may name
    /// in `ingressClassName`. An Ingress that names no class gets the
    /// parent's default class, always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_classes: Vec<String>,
}

/// An address range: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
pub struct CidrError;

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (addr, prefix) = s.split_once('/').ok_or(CidrError)?;
        let addr: IpAddr = addr.parse().map_err(|_| CidrError)?;
        if prefix.is_empty() || prefix.starts_with('+') || prefix.len() > 3 {
            return Err(CidrError);
        }
        let prefix: u8 = prefix.parse().map_err(|_| CidrError)?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError);
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` lies in this range (never across address families).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }

    /// Whether every address of `other` lies in this range.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains_ip(other.addr)
    }
}

/// Whether `a` and `b` (numbers of `bits` bits) agree on their first
/// `prefix` bits.
fn same_prefix(a: u128, b: u128, bits: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (a >> shift) == (b >> shift)
}

/// Why an address outside `spec.network.allowedCIDRs` is refused.
pub const NOT_IN_ALLOWED_CIDRS: &str = "not inside the VirtualCluster's spec.network.allowedCIDRs";

/// Why a tenant may not make the parent reach `ip` (`None`: it may): the
/// address of a copied Endpoints, or of a `url` webhook the tenant's
/// cluster calls. Upstream's `ValidateEndpointIP` (not unspecified,
/// loopback, link-local — the metadata service — or multicast, IPv4-mapped
/// forms included), never one of the parent's API addresses (`reserved`),
/// and inside one of the VirtualCluster's `allowed` ranges.
pub fn refused_address(ip: &str, allowed: &[Cidr], reserved: &[IpAddr]) -> Option<String> {
    let Ok(parsed) = ip.parse::<IpAddr>() else {
        return Some("must be a valid IP address".into());
    };
    let plain = match parsed {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(parsed, IpAddr::V4),
        v4 => v4,
    };
    // Upstream's ValidateEndpointIP, and multicast as a whole.
    let upstream = match plain {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("may not be unspecified (0.0.0.0)"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("may not be unspecified (::)"),
        ip if ip.is_loopback() => Some("may not be in the loopback range (127.0.0.0/8, ::1/128)"),
        IpAddr::V4(v4) if v4.is_link_local() => {
            Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        }
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
        }
        ip if ip.is_multicast() => Some("may not be a multicast address (224.0.0.0/4, ff00::/8)"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("may not be the broadcast address"),
        _ => None,
    };
    if let Some(why) = upstream {
        return Some(why.into());
    }
    if reserved.contains(&plain) || reserved.contains(&parsed) {
        return Some("may not be an address of the parent cluster's API".into());
    }
    if !allowed
        .iter()
        .any(|c| c.contains_ip(plain) || c.contains_ip(parsed))
    {
        return Some(NOT_IN_ALLOWED_CIDRS.into());
    }
    None
}

/// The parsed ranges of `allowed` (entries that do not parse are skipped:
/// validation refuses them at admission).
pub fn parse_cidrs(allowed: &[String]) -> Vec<Cidr> {
    allowed.iter().filter_map(|c| c.parse().ok()).collect()
}

/// Whether host `host` (possibly a wildcard host, `*.example.com`) is
/// allowed by the patterns of [`IngressPolicy::allowed_hosts`]. The empty
/// host (a rule for every host, or a default backend) is allowed only by
/// `*`, and so is `*` itself.
pub fn host_allowed(patterns: &[String], host: &str) -> bool {
    patterns.iter().any(|p| {
        if p == "*" {
            return true;
        }
        if host.is_empty() || host == "*" {
            return false;
        }
        match p.strip_prefix('*') {
            Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
            None => p.eq_ignore_ascii_case(host),
        }
    })
}

impl NetworkSpec {
    /// Whether a copied Service may have `spec.type` `type_` (absent means
    /// ClusterIP).
    pub fn allows_service_type(&self, type_: &str) -> bool {
        type_.is_empty()
            || type_ == "ClusterIP"
            || self
                .allowed_service_types
                .iter()
                .any(|t| t.as_str() == type_)
    }

    /// Every way this (a nested VirtualCluster's) spec allows more than
    /// `parent`'s, as `spec.network...: ...` messages naming `parent_path`.
    pub fn wider_than(&self, parent: &NetworkSpec, parent_path: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, t) in self.allowed_service_types.iter().enumerate() {
            if !parent.allowed_service_types.contains(t) {
                out.push(format!(
                    "spec.network.allowedServiceTypes[{i}]: {:?} is not allowed by the parent cluster {parent_path:?}",
                    t.as_str()
                ));
            }
        }
        let theirs = parse_cidrs(&parent.allowed_cidrs);
        for (i, c) in self.allowed_cidrs.iter().enumerate() {
            let inside = c
                .parse::<Cidr>()
                .is_ok_and(|c| theirs.iter().any(|p| p.contains(&c)));
            if !inside {
                out.push(format!(
                    "spec.network.allowedCIDRs[{i}]: {c:?} is not inside the parent cluster {parent_path:?}'s allowedCIDRs"
                ));
            }
        }
        for (i, h) in self.ingress.allowed_hosts.iter().enumerate() {
            if !host_allowed(&parent.ingress.allowed_hosts, h) {
                out.push(format!(
                    "spec.network.ingress.allowedHosts[{i}]: {h:?} is not allowed by the parent cluster {parent_path:?}"
                ));
            }
        }
        for (i, c) in self.ingress.allowed_classes.iter().enumerate() {
            if !parent.ingress.allowed_classes.contains(c) {
                out.push(format!(
                    "spec.network.ingress.allowedClasses[{i}]: {c:?} is not allowed by the parent cluster {parent_path:?}"
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "/8",
            "10.0.0.0/",
            "::/129",
            "x/1",
            "10.0.0.0/+8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let ten = cidr("10.0.0.0/8");
        assert!(ten.contains_ip("10.255.1.2".parse().unwrap()));
        assert!(!ten.contains_ip("11.0.0.1".parse().unwrap()));
        assert!(!ten.contains_ip("::ffff:10.0.0.1".parse().unwrap()));
        assert!(ten.contains(&cidr("10.1.0.0/16")));
        assert!(!ten.contains(&cidr("0.0.0.0/0")));
        assert!(cidr("0.0.0.0/0").contains_ip("169.254.169.254".parse().unwrap()));
        assert!(cidr("fd00::/8").contains(&cidr("fd12::/16")));
        assert!(!cidr("fd00::/8").contains(&cidr("fe80::/10")));
    }

    #[test]
    fn hosts_match_exactly_or_below_a_wildcard() {
        let p = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let team = p(&["*.team-a.example.com", "shop.example.com"]);
        assert!(host_allowed(&team, "shop.example.com"));
        assert!(host_allowed(&team, "x.team-a.example.com"));
        assert!(host_allowed(&team, "*.team-a.example.com"));
        assert!(host_allowed(&team, "*.x.team-a.example.com"));
        assert!(!host_allowed(&team, "team-a.example.com"));
        assert!(!host_allowed(&team, "evilteam-a.example.com"));
        assert!(!host_allowed(&team, "bank.example.com"));
        assert!(!host_allowed(&team, ""), "the catch-all needs *");
        assert!(!host_allowed(&team, "*"));
        assert!(host_allowed(&p(&["*"]), ""));
        assert!(!host_allowed(&[], "a.example.com"));
    }

    #[test]
    fn a_child_is_never_wider_than_its_parent() {
        let parent = NetworkSpec {
            allowed_service_types: vec![ExposedServiceType::NodePort],
            allowed_cidrs: vec!["203.0.113.0/24".into()],
            ingress: IngressPolicy {
                allowed_hosts: vec!["*.example.com".into()],
                allowed_classes: vec!["public".into()],
            },
            ..Default::default()
        };
        let narrower = NetworkSpec {
            allowed_service_types: vec![ExposedServiceType::NodePort],
            allowed_cidrs: vec!["203.0.113.128/25".into()],
            ingress: IngressPolicy {
                allowed_hosts: vec!["*.a.example.com".into(), "b.example.com".into()],
                allowed_classes: vec!["public".into()],
            },
            ..Default::default()
        };
        assert!(narrower.wider_than(&parent, "p").is_empty());
        let wider = NetworkSpec {
            allowed_service_types: vec![ExposedServiceType::LoadBalancer],
            allowed_cidrs: vec!["0.0.0.0/0".into()],
            ingress: IngressPolicy {
                allowed_hosts: vec!["*".into()],
                allowed_classes: vec!["internal".into()],
            },
            ..Default::default()
        };
        let v = wider.wider_than(&parent, "p");
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(v[0].starts_with("spec.network.allowedServiceTypes[0]"));
        assert!(v[1].starts_with("spec.network.allowedCIDRs[0]"));
        assert!(v[2].starts_with("spec.network.ingress.allowedHosts[0]"));
        assert!(v[3].starts_with("spec.network.ingress.allowedClasses[0]"));
        assert!(NetworkSpec::default().wider_than(&parent, "p").is_empty());
    }

    #[test]
    fn only_cluster_ip_by_default() {
        let n = NetworkSpec::default();
        assert!(n.allows_service_type(""));
        assert!(n.allows_service_type("ClusterIP"));
        assert!(!n.allows_service_type("NodePort"));
        assert!(!n.allows_service_type("LoadBalancer"));
        assert!(!n.allows_service_type("Bogus"));
    }
}
