//! `RequestInfo`: which virtual cluster and which API a request addresses,
//! parsed from the path alone (as `k8s.io/apiserver`'s `RequestInfoFactory`).
//!
//! Parsing never touches storage or the catalog; the handler resolves the
//! parsed names against the catalog.

use std::collections::HashMap;

/// The cluster served on paths without a `/clusters/<path>` prefix.
pub const ROOT_CLUSTER: &str = "root";

/// What a request addresses.
#[derive(Clone, Debug, PartialEq)]
pub enum Api {
    /// `/api` (legacy versions) or `/apis` (group list), or `/apis/<group>`.
    Root {
        /// `true` for `/api`.
        legacy: bool,
        /// For `/apis/<group>`.
        group: Option<String>,
    },
    /// `/api/v1` or `/apis/<group>/<version>`: the resource list.
    GroupVersion {
        /// Group ("" = core).
        group: String,
        /// Version.
        version: String,
    },
    /// A resource request.
    Resource(ResourceRequest),
    /// `/version`, `/healthz`, `/openapi/...` etc.: the path itself.
    NonResource(String),
}

/// A request for a resource, a named object or a subresource.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ResourceRequest {
    /// Group ("" = core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace in the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
    /// For the `proxy` subresource, the path after it (`/healthz`; `/`
    /// when none), as upstream's proxy handlers take it.
    pub proxy_path: Option<String>,
    /// Verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: &'static str,
}

/// Parsed request line: cluster, API target and query parameters.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    /// Virtual cluster path (`root` for the bare path).
    pub cluster: String,
    /// Whether the path named the cluster explicitly (`/clusters/<path>/...`).
    pub explicit_cluster: bool,
    /// The API target.
    pub api: Api,
    /// Decoded query parameters (last value wins).
    pub query: HashMap<String, String>,
}

impl RequestInfo {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// Decodes `%XX` escapes, as in a path segment (`+` stays `+`). Invalid
/// escapes are kept as they are.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a query component: `+` is a space, then `%XX` escapes.
fn decode_query_component(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Parses a query string (a repeated parameter: the last value).
pub fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    query_pairs(q).into_iter().collect()
}

/// Every decoded `(name, value)` of a query string, in order, repeats kept.
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode_query_component(k), decode_query_component(v)),
            None => (decode_query_component(p), String::new()),
        })
        .collect()
}

/// The one value of single-valued parameter `name` in `pairs`; a second
/// value is refused (400) rather than resolved. Upstream's conversion keeps
/// the first; whatever a request passes on is rebuilt from checked values,
/// and an ambiguous request is never one a real client sends.
pub fn single_param<'a>(
    pairs: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, crate::error::ApiError> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(crate::error::ApiError::BadRequest(format!(
            "query parameter {name:?} may be given only once"
        )));
    }
    Ok(first.map(String::as_str))
}

/// Errors that make a path unroutable (404).
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("the server could not find the requested resource")]
pub struct NotRoutable;

/// Parses method + path + query into a [`RequestInfo`].
pub fn parse(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Result<RequestInfo, NotRoutable> {
    let query = parse_query(query);
    let mut segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let (cluster, explicit_cluster) = if segments.first().map(String::as_str) == Some("clusters") {
        if segments.len() < 2 {
            return Err(NotRoutable);
        }
        let c = segments[1].clone();
        segments.drain(..2);
        (c, true)
    } else {
        (ROOT_CLUSTER.to_string(), false)
    };
    let api = parse_api(method, &segments, &query)?;
    Ok(RequestInfo {
        cluster,
        explicit_cluster,
        api,
        query,
    })
}

fn is_watch(query: &HashMap<String, String>) -> bool {
    matches!(
        query.get("watch").map(String::as_str),
        Some("true") | Some("1")
    )
}

fn parse_api(
    method: &http::Method,
    seg: &[String],
    query: &HashMap<String, String>,
) -> Result<Api, NotRoutable> {
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match s.as_slice() {
        ["api"] => {
            return Ok(Api::Root {
                legacy: true,
                group: None,
            });
        }
        ["apis"] => {
            return Ok(Api::Root {
                legacy: false,
                group: None,
            });
        }
        ["apis", g] => {
            return Ok(Api::Root {
                legacy: false,
                group: Some(g.to_string()),
            });
        }
        ["api", v] => {
            return Ok(Api::GroupVersion {
                group: String::new(),
                version: v.to_string(),
            });
        }
        ["apis", g, v] => {
            return Ok(Api::GroupVersion {
                group: g.to_string(),
                version: v.to_string(),
            });
        }
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(Api::NonResource(format!("/{}", s.join("/")))),
    };
    let (mut watch_prefix, mut rest) = (false, rest);
    if rest.first() == Some(&"watch") {
        watch_prefix = true;
        rest = &rest[1..];
    }
    let mut req = ResourceRequest {
        group: group.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    // namespaces/<ns>/<resource>/... ; a bare namespaces/<name>[/<sub>] is the namespace itself.
    let rest = match rest {
        ["namespaces", ns, r, tail @ ..] => {
            req.namespace = Some(ns.to_string());
            req.resource = r.to_string();
            tail
        }
        [r, tail @ ..] => {
            req.resource = r.to_string();
            tail
        }
        [] => return Err(NotRoutable),
    };
    match rest {
        [] => {}
        [name] => req.name = Some(name.to_string()),
        [name, sub] => {
            req.name = Some(name.to_string());
            req.subresource = Some(sub.to_string());
            if *sub == "proxy" {
                req.proxy_path = Some("/".into());
            }
        }
        // `services/<name>/proxy/<path...>` (and pods, nodes): the rest is
        // the path to proxy to.
        [name, "proxy", path @ ..] => {
            req.name = Some(name.to_string());
            req.subresource = Some("proxy".into());
            req.proxy_path = Some(format!("/{}", path.join("/")));
        }
        _ => return Err(NotRoutable),
    }
    if req.resource == "namespaces" && req.namespace.is_some() && req.name.is_none() {
        // /api/v1/namespaces/<name>: the namespace object, not a collection in it.
        req.name = req.namespace.take();
    } else if req.resource == "namespaces" {
        // /api/v1/namespaces/<name>/<sub> was parsed as namespace + resource.
    }
    req.verb = match *method {
        http::Method::GET | http::Method::HEAD => {
            if watch_prefix || is_watch(query) {
                "watch"
            } else if req.name.is_some() {
                "get"
            } else {
                "list"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => {
            if req.name.is_some() {
                "delete"
            } else {
                "deletecollection"
            }
        }
        _ => "unknown",
    };
    Ok(Api::Resource(req))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn res(method: Method, path: &str, q: Option<&str>) -> (String, ResourceRequest) {
        let info = parse(&method, path, q).unwrap();
        match info.api {
            Api::Resource(r) => (info.cluster, r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn proxy_paths_keep_the_rest() {
        let (_, r) = res(
            Method::GET,
            "/api/v1/namespaces/ns/services/https:web:443/proxy/a/b",
            None,
        );
        assert_eq!(
            (
                r.name.as_deref(),
                r.subresource.as_deref(),
                r.proxy_path.as_deref(),
                r.verb
            ),
            (Some("https:web:443"), Some("proxy"), Some("/a/b"), "get")
        );
        let (_, r) = res(Method::POST, "/api/v1/namespaces/ns/pods/p/proxy", None);
        assert_eq!((r.proxy_path.as_deref(), r.verb), (Some("/"), "create"));
        assert!(parse(&Method::GET, "/api/v1/namespaces/ns/pods/p/log/x", None).is_err());
    }

    #[test]
    fn paths() {
        let (c, r) = res(Method::GET, "/api/v1/namespaces/default/pods/web", None);
        assert_eq!(
            (
                c.as_str(),
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.verb
            ),
            ("root", Some("default"), "pods", Some("web"), "get")
        );
        let (c, r) = res(
            Method::GET,
            "/clusters/team-a:dev/apis/apps/v1/deployments",
            Some("watch=true"),
        );
        assert_eq!(
            (c.as_str(), r.group.as_str(), r.verb),
            ("team-a:dev", "apps", "watch")
        );
        let (_, r) = res(Method::GET, "/api/v1/namespaces/kube-system", None);
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.namespace),
            ("namespaces", Some("kube-system"), None)
        );
        let (_, r) = res(
            Method::PUT,
            "/api/v1/namespaces/default/pods/web/status",
            None,
        );
        assert_eq!(
            (r.subresource.as_deref(), r.verb),
            (Some("status"), "update")
        );
        let (_, r) = res(Method::GET, "/api/v1/watch/namespaces/default/pods", None);
        assert_eq!(r.verb, "watch");
        let (_, r) = res(Method::DELETE, "/api/v1/namespaces/default/pods", None);
        assert_eq!(r.verb, "deletecollection");
        assert!(
            matches!(parse(&Method::GET, "/version", None).unwrap().api, Api::NonResource(p) if p == "/version")
        );
    }

    #[test]
    fn path_segments_keep_plus_signs() {
        assert_eq!(percent_decode("a+b%3Ac%zz"), "a+b:c%zz");
        assert_eq!(decode_query_component("a+b%2B"), "a b+");
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&limit=5"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "5");
    }
}
