//! Which cluster a request may reach with the caller's credential: one pure
//! function over the request path, decided before any cluster is looked up.
//!
//! A credential is valid for exactly the cluster whose client CA issued it,
//! or whose key signed it: a request's credential is its bearer token if it
//! has one (the cluster the token names, unverified here: the handler then
//! verifies it with that cluster's key), else the connection's certificate.
//! This module must never consult storage or the set of served clusters: its
//! answer depends on the path and the credential alone, so the response to a
//! foreign cluster is the same whether that cluster exists or not, and a
//! tenant cannot probe other tenants' names.

use super::is_public_path;
use nestkube_api::request::ROOT_CLUSTER;
use nestkube_api::request::percent_decode;

/// What the caller proved at the TLS handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No client certificate.
    Anonymous,
    /// A certificate issued by this cluster's client CA.
    Cluster(&'a str),
    /// A certificate no served cluster issued (or expired, or not for client
    /// authentication). It never falls back to anonymous.
    Invalid,
}

/// The bearer token of a request (`Authorization: Bearer <token>`), if its
/// `Authorization` header uses that scheme. An empty token is returned as
/// such (and is then invalid, never anonymous); other schemes are ignored,
/// as upstream's bearer authenticator does.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The credential of one request: a bearer token's claimed cluster
/// (`bearer` is `Some(claimed)` when the request has a token; a token that
/// names no cluster is invalid), else the connection's credential.
pub fn request_credential<'a>(
    bearer: Option<Option<&'a str>>,
    connection: Credential<'a>,
) -> Credential<'a> {
    match bearer {
        Some(Some(cluster)) => Credential::Cluster(cluster),
        Some(None) => Credential::Invalid,
        None => connection,
    }
}

/// The cluster a request is served from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Cluster path.
    pub cluster: String,
    /// Whether the path named the cluster (`/clusters/<path>/...`).
    pub explicit: bool,
}

/// Why a request may not proceed. Deliberately carries no cluster name: the
/// caller answers every denial with the same `401 Unauthorized`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Unauthorized")]
pub struct Denied;

/// Decides which cluster serves `path` for `credential`:
///
/// | path | credential | result |
/// |---|---|---|
/// | `/clusters/X/...` | issued by X | X |
/// | `/clusters/X/...` | issued by another cluster | denied (whether X exists or not) |
/// | `/clusters/X/<public>` | anonymous | X (health and version only) |
/// | `/clusters/X/...` | anonymous | denied |
/// | bare path | issued by C | C (in-cluster clients only know the address) |
/// | bare `<public>` | anonymous | root |
/// | bare path | anonymous | denied |
/// | anything | invalid certificate | denied |
/// | `/clusters` (no name) | anything | denied |
///
/// Public paths are those of [`is_public_path`]. The handler must still
/// check that the parsed request agrees with this decision and that an
/// issuing cluster still exists.
pub fn decide(path: &str, credential: Credential<'_>) -> Result<Access, Denied> {
    let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
    let explicit = if segments.peek() == Some(&"clusters") {
        segments.next();
        // A client may send `team-a%3Adev`; any disagreement with the request
        // parser is caught by the handler's agreement check.
        Some(percent_decode(segments.next().ok_or(Denied)?))
    } else {
        None
    };
    let rest = format!("/{}", segments.collect::<Vec<_>>().join("/"));
    match (credential, explicit) {
        (Credential::Invalid, _) => Err(Denied),
        (Credential::Cluster(own), Some(named)) if own == named => Ok(Access {
            cluster: named,
            explicit: true,
        }),
        (Credential::Cluster(_), Some(_)) => Err(Denied),
        (Credential::Cluster(own), None) => Ok(Access {
            cluster: own.to_string(),
            explicit: false,
        }),
        (Credential::Anonymous, named) if is_public_path(&rest) => Ok(Access {
            explicit: named.is_some(),
            cluster: named.unwrap_or_else(|| ROOT_CLUSTER.to_string()),
        }),
        (Credential::Anonymous, _) => Err(Denied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cluster: &str, explicit: bool) -> Result<Access, Denied> {
        Ok(Access {
            cluster: cluster.into(),
            explicit,
        })
    }

    const A: Credential<'static> = Credential::Cluster("team-a");

    #[test]
    fn own_cluster_explicit() {
        assert_eq!(
            decide("/clusters/team-a/api/v1/pods", A),
            ok("team-a", true)
        );
        assert_eq!(decide("/clusters/team-a/version", A), ok("team-a", true));
        assert_eq!(decide("//clusters//team-a/api", A), ok("team-a", true));
        assert_eq!(
            decide(
                "/clusters/team-a:dev/api",
                Credential::Cluster("team-a:dev")
            ),
            ok("team-a:dev", true)
        );
        assert_eq!(
            decide(
                "/clusters/team-a%3Adev/api",
                Credential::Cluster("team-a:dev")
            ),
            ok("team-a:dev", true)
        );
    }

    #[test]
    fn foreign_cluster_is_denied_even_on_public_paths() {
        for path in [
            "/clusters/team-b/api/v1/namespaces",
            "/clusters/nonexistent/api/v1/namespaces",
            "/clusters/team-b/version",
            "/clusters/root/api",
            // A parent is not its child, nor a child its parent.
            "/clusters/team-a:dev/api",
        ] {
            assert_eq!(decide(path, A), Err(Denied), "{path}");
        }
        assert_eq!(
            decide("/clusters/team-a/api", Credential::Cluster("root")),
            Err(Denied)
        );
        assert_eq!(
            decide("/clusters/team-a/api", Credential::Cluster("team-a:dev")),
            Err(Denied)
        );
    }

    #[test]
    fn bare_path_goes_to_the_credentials_cluster() {
        assert_eq!(decide("/api/v1/namespaces", A), ok("team-a", false));
        assert_eq!(decide("/", A), ok("team-a", false));
        assert_eq!(
            decide("/apis", Credential::Cluster("root")),
            ok("root", false)
        );
    }

    #[test]
    fn anonymous_reaches_public_paths_only() {
        use Credential::Anonymous;
        assert_eq!(decide("/version", Anonymous), ok("root", false));
        assert_eq!(decide("/healthz/ping", Anonymous), ok("root", false));
        assert_eq!(
            decide("/clusters/team-a/readyz", Anonymous),
            ok("team-a", true)
        );
        for path in [
            "/api/v1/namespaces",
            "/",
            "/openapi/v2",
            "/clusters/team-a/api/v1/namespaces",
            "/clusters/team-a",
            "/clusters/team-a/versionx",
        ] {
            assert_eq!(decide(path, Anonymous), Err(Denied), "{path}");
        }
    }

    #[test]
    fn invalid_certificate_is_always_denied() {
        for path in ["/version", "/clusters/team-a/version", "/api", "/"] {
            assert_eq!(decide(path, Credential::Invalid), Err(Denied), "{path}");
        }
    }

    #[test]
    fn a_bearer_token_replaces_the_connections_credential() {
        let root = Credential::Cluster("root");
        let token_a = request_credential(Some(Some("team-a")), root);
        assert_eq!(token_a, A);
        assert_eq!(decide("/api/v1/pods", token_a), ok("team-a", false));
        assert_eq!(decide("/clusters/root/api", token_a), Err(Denied));
        // A token naming no cluster never falls back to the certificate.
        let bad = request_credential(Some(None), root);
        assert_eq!(decide("/version", bad), Err(Denied));
        assert_eq!(request_credential(None, root), root);
    }

    #[test]
    fn bearer_token_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc.def.ghi"));
        h.insert("authorization", "bearer  x ".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("x"));
        h.insert("authorization", "Bearer".parse().unwrap());
        assert_eq!(bearer_token(&h), Some(""));
        h.insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn clusters_without_a_name_is_denied() {
        for credential in [A, Credential::Anonymous] {
            assert_eq!(decide("/clusters", credential), Err(Denied));
            assert_eq!(decide("/clusters/", credential), Err(Denied));
        }
    }
}
