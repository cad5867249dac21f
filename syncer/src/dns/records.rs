//! The records of one virtual cluster's `cluster.local` zone, read from
//! that cluster's store: `<svc>.<ns>.svc` (a ClusterIP Service's addresses,
//! a headless Service's ready endpoint addresses, an ExternalName
//! Service's CNAME), `<host>.<svc>.<ns>.svc` (an endpoint of a headless
//! Service, by hostname or dashed address), `_<port>._<proto>.<svc>.<ns>.svc`
//! (SRV) and `<dashed-ip>.<ns>.pod` (a pod of that namespace, checked
//! against the pod index as CoreDNS's `pods verified`).
//!
//! Every read is one `get` of one object by key (never a listing), behind
//! a small cache of [`CACHE_TTL`]. This module answers for the cluster it
//! is given only; which cluster that is, is the server's decision.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::rdata::{CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nestkube_apiserver::error::ApiError;
use nestkube_apiserver::registry::store::Target;
use nestkube_apiserver::server::ApiServer;
use serde_json::Value;

use super::index::PodIndex;

/// The cluster domain of every virtual cluster.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// TTL of every answer (CoreDNS's `kubernetes` plugin default).
pub const TTL: u32 = 5;
/// How long an object read from the store is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
/// Cached objects at most (the cache starts over when full).
const CACHE_MAX: usize = 4096;

/// What the zone says about a name.
#[derive(Debug)]
pub enum Answer {
    /// The name exists; these records (possibly none of the asked type).
    Records {
        /// Answer section.
        answers: Vec<Record>,
        /// Additional section (addresses of SRV targets).
        additionals: Vec<Record>,
    },
    /// The name does not exist in the zone.
    NxDomain,
    /// Not in `cluster.local`: for the upstream resolver.
    Outside,
    /// The store could not be read.
    ServFail,
}

impl Answer {
    fn records(answers: Vec<Record>) -> Self {
        Answer::Records {
            answers,
            additionals: Vec::new(),
        }
    }
}

type CacheKey = (String, &'static str, String, String);
/// When an object was read, and what it was (`None`: absent).
type Cached = (Instant, Option<Arc<Value>>);

/// Reads of Services and Endpoints of served clusters, cached briefly.
pub struct Zone {
    api: Arc<ApiServer>,
    cache: Mutex<HashMap<CacheKey, Cached>>,
}

impl Zone {
    /// The zones of the clusters `api` serves.
    pub fn new(api: Arc<ApiServer>) -> Self {
        Self {
            api,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The answer of `cluster`'s zone to `name`/`qtype`.
    pub async fn answer(
        &self,
        cluster: &str,
        index: &PodIndex,
        name: &Name,
        qtype: RecordType,
    ) -> Answer {
        let lower = name.to_lowercase().to_ascii();
        let fqdn = lower.trim_end_matches('.');
        if fqdn == CLUSTER_DOMAIN {
            return Answer::records(if qtype == RecordType::SOA {
                vec![soa()]
            } else {
                Vec::new()
            });
        }
        let Some(rest) = fqdn.strip_suffix(&format!(".{CLUSTER_DOMAIN}")) else {
            return Answer::Outside;
        };
        let labels: Vec<&str> = rest.split('.').collect();
        // Only names a Kubernetes object can have reach the store (a label
        // with `/` or an escaped byte never addresses a key).
        if !labels.iter().all(|l| is_label(l)) {
            return Answer::NxDomain;
        }
        let result = match labels.as_slice() {
            ["svc" | "pod"] | [_, "svc" | "pod"] => Ok(Answer::records(Vec::new())),
            [svc, ns, "svc"] => self.service(cluster, ns, svc, name, qtype).await,
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                self.srv(cluster, ns, svc, &port[1..], &proto[1..], name, qtype)
                    .await
            }
            [host, svc, ns, "svc"] => self.endpoint(cluster, ns, svc, host, name, qtype).await,
            [ip, ns, "pod"] => Ok(match undash(ip) {
                Some(ip) if index.has_pod_in(ip, cluster, ns) => {
                    Answer::records(address(name, ip, qtype).into_iter().collect())
                }
                _ => Answer::NxDomain,
            }),
            _ => Ok(Answer::NxDomain),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(cluster, error = %e, "DNS: reading the store failed");
            Answer::ServFail
        })
    }

    async fn service(
        &self,
        cluster: &str,
        ns: &str,
        svc: &str,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Answer, ApiError> {
        let Some(service) = self.get(cluster, "services", ns, svc).await? else {
            return Ok(Answer::NxDomain);
        };
        let spec = &service["spec"];
        if spec["type"] == "ExternalName" {
            // The client's resolver follows the CNAME itself.
            let target = spec["externalName"]
                .as_str()
                .and_then(|n| Name::from_ascii(format!("{}.", n.trim_end_matches('.'))).ok());
            return Ok(Answer::records(
                target
                    .map(|t| Record::from_rdata(name.clone(), TTL, RData::CNAME(CNAME(t))))
                    .into_iter()
                    .collect(),
            ));
        }
        let ips = if is_headless(&service) {
            let endpoints = self.get(cluster, "endpoints", ns, svc).await?;
            ready_addresses(endpoints.as_deref())
                .filter_map(|(ip, _)| ip.parse().ok())
                .collect()
        } else {
            cluster_ips(&service)
        };
        Ok(Answer::records(
            ips.into_iter()
                .filter_map(|ip| address(name, ip, qtype))
                .collect(),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn srv(
        &self,
        cluster: &str,
        ns: &str,
        svc: &str,
        port_name: &str,
        proto: &str,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Answer, ApiError> {
        let Some(service) = self.get(cluster, "services", ns, svc).await? else {
            return Ok(Answer::NxDomain);
        };
        let matches = |p: &Value| {
            p["name"].as_str().unwrap_or("") == port_name
                && p["protocol"].as_str().unwrap_or("TCP").to_lowercase() == proto
        };
        let Some(port) = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| matches(p))
        else {
            return Ok(Answer::NxDomain);
        };
        if qtype != RecordType::SRV && qtype != RecordType::ANY {
            return Ok(Answer::records(Vec::new()));
        }
        let service_name = service_fqdn(svc, ns);
        let (mut answers, mut additionals) = (Vec::new(), Vec::new());
        if is_headless(&service) {
            let endpoints = self.get(cluster, "endpoints", ns, svc).await?;
            for subset in each(&endpoints.as_deref().unwrap_or(&Value::Null)["subsets"]) {
                let Some(p) = each(&subset["ports"]).find(|p| matches(p)) else {
                    continue;
                };
                for a in each(&subset["addresses"]) {
                    let Some(ip) = a["ip"].as_str().and_then(|i| i.parse::<IpAddr>().ok()) else {
                        continue;
                    };
                    let host = a["hostname"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| dash(ip));
                    let Ok(target) = Name::from_ascii(format!("{host}.{service_name}")) else {
                        continue;
                    };
                    answers.push(srv_record(name, p["port"].as_u64(), &target));
                    additionals.extend(address(&target, ip, RecordType::ANY));
                }
            }
        } else {
            let Ok(target) = Name::from_ascii(&service_name) else {
                return Ok(Answer::NxDomain);
            };
            answers.push(srv_record(name, port["port"].as_u64(), &target));
            for ip in cluster_ips(&service) {
                additionals.extend(address(&target, ip, RecordType::ANY));
            }
        }
        Ok(Answer::Records {
            answers,
            additionals,
        })
    }

    async fn endpoint(
        &self,
        cluster: &str,
        ns: &str,
        svc: &str,
        host: &str,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Answer, ApiError> {
        let Some(endpoints) = self.get(cluster, "endpoints", ns, svc).await? else {
            return Ok(Answer::NxDomain);
        };
        let ips: Vec<IpAddr> = ready_addresses(Some(&endpoints))
            .filter_map(|(ip, hostname)| {
                let ip: IpAddr = ip.parse().ok()?;
                (hostname == Some(host) || dash(ip) == host).then_some(ip)
            })
            .collect();
        if ips.is_empty() {
            return Ok(Answer::NxDomain);
        }
        Ok(Answer::records(
            ips.into_iter()
                .filter_map(|ip| address(name, ip, qtype))
                .collect(),
        ))
    }

    /// Object `ns/name` of `resource` (core group) in `cluster`, cached.
    async fn get(
        &self,
        cluster: &str,
        resource: &'static str,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Value>>, ApiError> {
        let key = (
            cluster.to_string(),
            resource,
            ns.to_string(),
            name.to_string(),
        );
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, v)) = cache.get(&key)
                && at.elapsed() < CACHE_TTL
            {
                return Ok(v.clone());
            }
        }
        let Some(info) = self.api.catalog.get("", "v1", resource) else {
            return Ok(None);
        };
        let target = Target {
            cluster,
            resource: info,
            namespace: Some(ns),
        };
        let value = match self.api.store.get(&target, name).await {
            Ok(v) => Some(Arc::new(v)),
            Err(ApiError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(key, (Instant::now(), value.clone()));
        Ok(value)
    }
}

/// The SOA of `cluster.local` (negative answers carry it; its minimum is
/// how long a resolver may remember that a name does not exist).
pub fn soa() -> Record {
    let zone = Name::from_ascii(format!("{CLUSTER_DOMAIN}.")).expect("valid");
    let ns = Name::from_ascii(format!("ns.dns.{CLUSTER_DOMAIN}.")).expect("valid");
    let mbox = Name::from_ascii(format!("hostmaster.{CLUSTER_DOMAIN}.")).expect("valid");
    Record::from_rdata(
        zone,
        TTL,
        RData::SOA(SOA::new(ns, mbox, 1, 7200, 1800, 86400, TTL)),
    )
}

fn srv_record(name: &Name, port: Option<u64>, target: &Name) -> Record {
    let port = port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0);
    Record::from_rdata(
        name.clone(),
        TTL,
        RData::SRV(SRV::new(0, 100, port, target.clone())),
    )
}

/// An A or AAAA record for `ip` if `qtype` asks for its family.
fn address(name: &Name, ip: IpAddr, qtype: RecordType) -> Option<Record> {
    let wanted = match ip {
        IpAddr::V4(_) => matches!(qtype, RecordType::A | RecordType::ANY),
        IpAddr::V6(_) => matches!(qtype, RecordType::AAAA | RecordType::ANY),
    };
    wanted.then(|| Record::from_rdata(name.clone(), TTL, RData::from(ip)))
}

fn service_fqdn(svc: &str, ns: &str) -> String {
    format!("{svc}.{ns}.svc.{CLUSTER_DOMAIN}.")
}

fn is_headless(service: &Value) -> bool {
    service["spec"]["clusterIP"] == "None"
}

fn cluster_ips(service: &Value) -> Vec<IpAddr> {
    let spec = &service["spec"];
    let mut ips: Vec<IpAddr> = each(&spec["clusterIPs"])
        .filter_map(|i| i.as_str()?.parse().ok())
        .collect();
    if let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.push(ip);
    }
    ips
}

/// `(ip, hostname)` of every ready address of an Endpoints object.
fn ready_addresses(endpoints: Option<&Value>) -> impl Iterator<Item = (&str, Option<&str>)> {
    endpoints
        .into_iter()
        .flat_map(|e| each(&e["subsets"]))
        .flat_map(|s| each(&s["addresses"]))
        .filter_map(|a| Some((a["ip"].as_str()?, a["hostname"].as_str())))
}

fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// Whether `label` is a DNS-1123 label, or `_` and one (SRV's
/// `_port._proto`).
fn is_label(label: &str) -> bool {
    let l = label.strip_prefix('_').unwrap_or(label);
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `10-244-0-5` for 10.244.0.5 (`fd00--5` for fd00::5), as pod and
/// endpoint names spell addresses.
pub fn dash(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address a dashed label spells.
pub fn undash(label: &str) -> Option<IpAddr> {
    label
        .replace('-', ".")
        .parse()
        .ok()
        .or_else(|| label.replace('-', ":").parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_addresses() {
        for ip in ["10.244.0.5", "fd00::5", "2001:db8::1:2"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(undash(&dash(ip)), Some(ip));
        }
        assert_eq!(undash("web"), None);
    }

    #[test]
    fn labels() {
        for ok in ["web", "_http", "_tcp", "10-1-0-7", "fd00--5", "a1"] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in ["", "_", "a/b", "a\\.b", "Web", "a b", &"x".repeat(64)] {
            assert!(!is_label(bad), "{bad}");
        }
    }
}
