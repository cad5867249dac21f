//! A real HTTPS admission webhook server for tests: it answers
//! `AdmissionReview`s by path and counts the calls per path.
//!
//! Paths: `/allow`; `/deny` (refuses with code 403, reason `Forbidden` and
//! a message); `/warn` (allows with a warning); `/label` (a `JSONPatch`
//! adding label `webhook=added`); `/slow` (answers after 5 s); `/hang`
//! (never answers); `/bad-uid`
//! (answers for another request).
//!
//! It also answers `ConversionReview`s (`apiextensions.k8s.io/v1`) of the
//! `CronTab` of upstream's examples: `spec.cronSpec` (v1) <->
//! `spec.schedule` (v2), on any path; `/convert-bad-uid` answers for
//! another request, `/convert-rename` renames the objects,
//! `/convert-extra` returns one object too many, `/convert-fail` refuses
//! with [`CONVERSION_REFUSAL`]. The number of objects of each review is
//! recorded per path ([`WebhookServer::reviews`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// The message of the `/deny` path's refusal.
pub const DENY_MESSAGE: &str = "pods named bad are not welcome";

/// The message of the `/convert-fail` path's refusal.
pub const CONVERSION_REFUSAL: &str = "this object cannot be converted";

/// Calls per path, the objects of each conversion review per path, and
/// the last `AdmissionReview` request per path.
#[derive(Default)]
struct Record {
    calls: HashMap<String, usize>,
    reviews: HashMap<String, Vec<usize>>,
    admission: HashMap<String, Value>,
}

/// A running webhook server (it stops with the runtime it was started on).
pub struct WebhookServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The CA that issued its serving certificate (PEM).
    pub ca_pem: String,
    record: Arc<Mutex<Record>>,
    connections: Arc<AtomicUsize>,
}

impl WebhookServer {
    /// Starts a server on `bind` (port 0: any) whose certificate names
    /// `dns_names` and the bound IP address.
    pub async fn start(bind: SocketAddr, dns_names: &[&str]) -> anyhow::Result<Self> {
        let cert = crate::tls::ServingCert::issue(dns_names, &[bind.ip()])?;
        let der = rustls::pki_types::CertificateDer::from(cert.cert_der.clone());
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(cert.key_der.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![der], key_der)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let record: Arc<Mutex<Record>> = Arc::default();
        let counted = record.clone();
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                // As Go's servers (most webhooks) do: no Nagle delay after
                // the TLS session tickets.
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let calls = counted.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let calls = calls.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, calls).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            ca_pem: cert.ca_pem,
            record,
            connections,
        })
    }

    /// `https://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// How many calls `path` had.
    pub fn calls(&self, path: &str) -> usize {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// How many connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The `request` of the last `AdmissionReview` `path` had.
    pub fn last_admission(&self, path: &str) -> Option<Value> {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admission
            .get(path)
            .cloned()
    }

    /// The number of objects of each conversion review `path` had, in order.
    pub fn reviews(&self, path: &str) -> Vec<usize> {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reviews
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// The CA as a webhook's `caBundle` (base64 of the PEM).
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    record: Arc<Mutex<Record>>,
) -> hyper::Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let review: Value = serde_json::from_slice(&body).unwrap_or_default();
    {
        let mut record = record.lock().unwrap_or_else(|e| e.into_inner());
        *record.calls.entry(path.clone()).or_default() += 1;
        if review["kind"] == "ConversionReview" {
            let n = review["request"]["objects"].as_array().map_or(0, Vec::len);
            record.reviews.entry(path.clone()).or_default().push(n);
        } else {
            record
                .admission
                .insert(path.clone(), review["request"].clone());
        }
    }
    if review["kind"] == "ConversionReview" {
        return json_response(&conversion(&path, &review));
    }
    let mut response = json!({"uid": review["request"]["uid"], "allowed": true});
    match path.as_str() {
        "/deny" => {
            response["allowed"] = json!(false);
            response["status"] =
                json!({"code": 403, "reason": "Forbidden", "message": DENY_MESSAGE});
        }
        "/warn" => response["warnings"] = json!(["think twice"]),
        "/label" => {
            let mut labels = review["request"]["object"]["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["webhook"] = json!("added");
            let patch = json!([{"op": "add", "path": "/metadata/labels", "value": labels}]);
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(
                base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&patch).unwrap_or_default())
            );
        }
        "/slow" => tokio::time::sleep(Duration::from_secs(5)).await,
        // A webhook that never answers.
        "/hang" => std::future::pending::<()>().await,
        "/bad-uid" => response["uid"] = json!("not-the-uid"),
        _ => {}
    }
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
    json_response(&review)
}

/// The answer to a `ConversionReview` on `path`.
fn conversion(path: &str, review: &Value) -> Value {
    let request = &review["request"];
    let desired = request["desiredAPIVersion"].as_str().unwrap_or_default();
    let mut objects: Vec<Value> = request["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| convert_crontab(o, desired))
        .collect();
    let mut response = json!({"uid": request["uid"], "result": {"status": "Success"}});
    match path {
        "/convert-bad-uid" => response["uid"] = json!("not-the-uid"),
        "/convert-rename" => {
            for o in &mut objects {
                o["metadata"]["name"] = json!("renamed");
            }
        }
        "/convert-extra" => {
            if let Some(first) = objects.first().cloned() {
                objects.push(first);
            }
        }
        "/convert-fail" => {
            response["result"] = json!({"status": "Failure", "message": CONVERSION_REFUSAL});
        }
        _ => {}
    }
    response["convertedObjects"] = json!(objects);
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "response": response})
}

/// A `CronTab` at `desired`: v1's `spec.cronSpec` is v2's `spec.schedule`;
/// a label `converted-to` records the last conversion.
fn convert_crontab(obj: &Value, desired: &str) -> Value {
    let mut out = obj.clone();
    let spec = out["spec"].as_object_mut();
    if let Some(spec) = spec {
        let (from, to) = if desired.ends_with("/v2") {
            ("cronSpec", "schedule")
        } else {
            ("schedule", "cronSpec")
        };
        if let Some(v) = spec.remove(from) {
            spec.insert(to.into(), v);
        }
    }
    out["apiVersion"] = json!(desired);
    if !out["metadata"]["labels"].is_object() {
        out["metadata"]["labels"] = json!({});
    }
    out["metadata"]["labels"]["converted-to"] =
        json!(desired.rsplit('/').next().unwrap_or_default());
    out
}

fn json_response(body: &Value) -> hyper::Response<Full<Bytes>> {
    let mut out = hyper::Response::new(Full::new(Bytes::from(
        serde_json::to_vec(body).unwrap_or_default(),
    )));
    out.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    out
}
