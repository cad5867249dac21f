//! Conversion webhooks of custom resources: the registry's
//! [`Converter`] calling a CRD's `spec.conversion.webhook` with a
//! `ConversionReview`, as upstream's
//! `apiextensions-apiserver/pkg/apiserver/conversion/webhook_converter.go`.
//!
//! - **Review**: `apiextensions.k8s.io/v1` (or `v1beta1`, the first of
//!   `conversionReviewVersions` this server knows), request `{uid,
//!   desiredAPIVersion, objects}`, one review per batch the store asks for.
//! - **Answer checks**, worded as upstream: the same `uid` (v1), `result.status
//!   == Success`, as many objects as were sent, each at the desired
//!   apiVersion with the same kind, name, namespace and UID; the original
//!   metadata is restored but for labels and annotations, which must be
//!   valid (`restoreObjectMeta`).
//! - **Transport**: the admission webhooks' ([`super::Webhooks::post`]):
//!   `url` webhooks only to addresses the cluster's VirtualCluster allows,
//!   `service` webhooks through the cluster's parent, `caBundle`, the
//!   cluster's bound on calls in flight, and upstream's fixed 30 s timeout.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Webhooks;
use super::config;
use crate::registry::conversion_hook::{ConversionError, ConversionRequest, Converter, gvk_string};
use crate::registry::validation;
use crate::tenancy::Clusters;

/// Upstream's conversion timeout (not configurable per CRD).
pub const CONVERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of objects in one review: a larger batch is split, so the
/// answer stays within what is read of a webhook's response
/// ([`super::transport::MAX_RESPONSE_BYTES`]).
pub const MAX_REVIEW_BYTES: usize = 1024 * 1024;

/// Calls CRDs' conversion webhooks for the store.
pub struct WebhookConverter {
    webhooks: Arc<Webhooks>,
    clusters: Arc<Clusters>,
}

impl std::fmt::Debug for WebhookConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookConverter")
    }
}

impl WebhookConverter {
    /// A converter over the admission webhooks' transport.
    pub fn new(webhooks: Arc<Webhooks>, clusters: Arc<Clusters>) -> Self {
        Self { webhooks, clusters }
    }
}

#[async_trait]
impl Converter for WebhookConverter {
    async fn convert(
        &self,
        request: ConversionRequest<'_>,
        objects: Vec<Value>,
    ) -> Result<Vec<Value>, ConversionError> {
        if objects.is_empty() {
            return Ok(objects);
        }
        let review_version = request
            .webhook
            .review_versions
            .iter()
            .find(|v| *v == "v1" || *v == "v1beta1")
            .ok_or_else(|| ConversionError("no supported conversion review versions".into()))?;
        let mut placements: Vec<_> = self
            .clusters
            .get(request.cluster)
            .and_then(|c| c.placement())
            .into_iter()
            .collect();
        placements.extend(crate::ancestor_placements(&self.clusters, request.cluster));
        // One review per batch, split only where a review would outgrow
        // what a webhook's answer may be (objects are serialized once).
        let encoded: Vec<Vec<u8>> = objects
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap_or_default())
            .collect();
        let mut out = Vec::with_capacity(objects.len());
        let mut start = 0;
        while start < objects.len() {
            let mut end = start + 1;
            let mut size = encoded[start].len();
            while end < objects.len() && size + encoded[end].len() <= MAX_REVIEW_BYTES {
                size += encoded[end].len();
                end += 1;
            }
            let review = Review {
                request: &request,
                version: review_version,
                placements: &placements,
            };
            out.extend(
                self.review(&review, &objects[start..end], &encoded[start..end])
                    .await?,
            );
            start = end;
        }
        Ok(out)
    }
}

/// What every review of one conversion shares.
struct Review<'a> {
    request: &'a ConversionRequest<'a>,
    /// The `ConversionReview` version (`v1`, `v1beta1`).
    version: &'a str,
    /// The VirtualClusters bounding what the cluster's webhook may reach.
    placements: &'a [Arc<crate::tenancy::Placement>],
}

impl WebhookConverter {
    /// Sends one review of `objects` (serialized as `encoded`) and checks
    /// the answer.
    async fn review(
        &self,
        review: &Review<'_>,
        objects: &[Value],
        encoded: &[Vec<u8>],
    ) -> Result<Vec<Value>, ConversionError> {
        let request = review.request;
        let gvk = gvk_string(&objects[0]);
        let failed =
            |why: String| ConversionError(format!("conversion webhook for {gvk} failed: {why}"));
        let Some((endpoint, ca_bundle)) = config::client_config(&request.webhook.client_config)
        else {
            return Err(failed("the webhook has no clientConfig".into()));
        };
        let uid = uuid::Uuid::new_v4().to_string();
        let head = json!({
            "apiVersion": format!("apiextensions.k8s.io/{}", review.version),
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": request.desired_api_version},
        });
        let body = review_body(&head, encoded);
        let answer = self
            .webhooks
            .post(
                request.cluster,
                review.placements,
                &endpoint,
                ca_bundle.as_deref(),
                CONVERSION_TIMEOUT,
                body,
            )
            .await
            .map_err(failed)?;
        let converted = converted_objects(review.version, &uid, &answer).map_err(failed)?;
        verify(
            &gvk,
            request.desired_api_version,
            objects.to_vec(),
            converted,
        )
    }
}

/// The review `head` with `request.objects` spliced in from the objects'
/// JSON (each serialized once, for sizing and sending).
fn review_body(head: &Value, encoded: &[Vec<u8>]) -> Bytes {
    let mut body = serde_json::to_vec(head).unwrap_or_default();
    // `head` ends with `}}`: reopen `request` for its objects.
    body.truncate(body.len().saturating_sub(2));
    body.extend_from_slice(b",\"objects\":[");
    for (i, o) in encoded.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(o);
    }
    body.extend_from_slice(b"]}}");
    Bytes::from(body)
}

/// The converted objects of a webhook's answer (upstream's
/// `getConvertedObjectsFromResponse`); the error is what follows
/// `conversion webhook for <gvk> failed: `.
pub fn converted_objects(
    review_version: &str,
    uid: &str,
    answer: &[u8],
) -> Result<Vec<Value>, String> {
    let review: Value = serde_json::from_slice(answer)
        .map_err(|e| format!("failed to decode the webhook's response: {e}"))?;
    if review_version == "v1" {
        let (api_version, kind) = (
            review["apiVersion"].as_str().unwrap_or_default(),
            review["kind"].as_str().unwrap_or_default(),
        );
        if api_version != "apiextensions.k8s.io/v1" || kind != "ConversionReview" {
            return Err(format!(
                "expected webhook response of apiextensions.k8s.io/v1, Kind=ConversionReview, got {api_version}, Kind={kind}"
            ));
        }
    }
    let r = &review["response"];
    if !r.is_object() {
        return Err("no response provided".into());
    }
    // v1beta1 answers were never checked for their uid (upstream keeps
    // that for compatibility).
    let got = r["uid"].as_str().unwrap_or_default();
    if review_version == "v1" && got != uid {
        return Err(format!("expected response.uid=\"{uid}\", got \"{got}\""));
    }
    let status = r["result"]["status"].as_str().unwrap_or_default();
    if status != "Success" {
        return Err(match r["result"]["message"].as_str() {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => format!("response.result.status was '{status}', not 'Success'"),
        });
    }
    match &r["convertedObjects"] {
        Value::Array(objects) => Ok(objects.clone()),
        Value::Null => Ok(Vec::new()),
        _ => Err("response.convertedObjects is not a list".into()),
    }
}

/// Checks the converted objects against the originals and restores their
/// metadata, as upstream's `webhookConverter.Convert`: a single object's
/// errors say `returned invalid object`, a batch's name the (1-based, as
/// upstream counts) index.
pub fn verify(
    gvk: &str,
    desired: &str,
    originals: Vec<Value>,
    converted: Vec<Value>,
) -> Result<Vec<Value>, ConversionError> {
    let fail = |why: String| ConversionError(format!("conversion webhook for {gvk} {why}"));
    if converted.len() != originals.len() {
        return Err(fail(format!(
            "returned {} objects, expected {}",
            converted.len(),
            originals.len()
        )));
    }
    let single = originals.len() == 1;
    let mut out = Vec::with_capacity(converted.len());
    for (i, (original, mut obj)) in originals.into_iter().zip(converted).enumerate() {
        let (invalid, metadata) = if single {
            (
                "returned invalid object at index 0".to_string(),
                "returned invalid metadata".to_string(),
            )
        } else {
            (
                format!("returned invalid converted object at index {}", i + 1),
                format!("returned invalid metadata in object at index {}", i + 1),
            )
        };
        if !obj.is_object() {
            return Err(fail(format!("{invalid}: the object is not a JSON object")));
        }
        let got = obj["apiVersion"].as_str().unwrap_or_default();
        if got != desired {
            return Err(fail(format!(
                "{invalid}: invalid groupVersion (expected {desired}, received {got})"
            )));
        }
        let (want_kind, got_kind) = (
            original["kind"].as_str().unwrap_or_default(),
            obj["kind"].as_str().unwrap_or_default(),
        );
        if want_kind != got_kind {
            return Err(fail(format!(
                "{invalid}: invalid kind (expected {want_kind}, received {got_kind})"
            )));
        }
        if let Err(why) = validate_converted(&original, &obj) {
            let what = if single {
                "returned invalid object".to_string()
            } else {
                format!("returned invalid converted object at index {}", i + 1)
            };
            return Err(fail(format!("{what}: {why}")));
        }
        if let Err(why) = restore_object_meta(&original, &mut obj) {
            return Err(fail(format!("{metadata}: {why}")));
        }
        out.push(obj);
    }
    Ok(out)
}

/// Upstream's `validateConvertedObject`: kind, name, namespace and UID
/// unchanged.
fn validate_converted(original: &Value, converted: &Value) -> Result<(), String> {
    let field = |o: &Value, f: &str| o[f].as_str().unwrap_or_default().to_string();
    let meta = |o: &Value, f: &str| o["metadata"][f].as_str().unwrap_or_default().to_string();
    let checks = [
        ("kind", field(original, "kind"), field(converted, "kind")),
        ("name", meta(original, "name"), meta(converted, "name")),
        (
            "namespace",
            meta(original, "namespace"),
            meta(converted, "namespace"),
        ),
        ("UID", meta(original, "uid"), meta(converted, "uid")),
    ];
    for (what, want, got) in checks {
        if want != got {
            return Err(format!("must have the same {what}: {want} != {got}"));
        }
    }
    Ok(())
}

/// Upstream's `restoreObjectMeta`: `converted` gets `original`'s metadata
/// but for labels and annotations, which it keeps (validated when they
/// changed).
fn restore_object_meta(original: &Value, converted: &mut Value) -> Result<(), String> {
    let response = match converted.get("metadata") {
        None => return Err("missing metadata in converted object".into()),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(format!(
                "invalid metadata of type {} in converted object",
                go_type(other)
            ));
        }
    };
    let mut restored = match original.get("metadata") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for (field, path) in [
        ("labels", "metadata.labels"),
        ("annotations", "metadata.annotation"),
    ] {
        let answered = match response.get(field) {
            None | Some(Value::Null) => {
                restored.remove(field);
                continue;
            }
            Some(Value::Object(m)) => m,
            Some(other) => {
                return Err(format!(
                    "invalid metadata.{field} of type {} in converted object",
                    go_type(other)
                ));
            }
        };
        for (k, v) in answered {
            if !v.is_string() {
                return Err(format!(
                    "metadata.{field}[{k}] must be a string, but is {} in converted object",
                    go_type(v)
                ));
            }
        }
        let before = restored.get(field).and_then(Value::as_object);
        if before != Some(answered) {
            let errors = if field == "labels" {
                validation::validate_labels(answered, path)
            } else {
                validation::validate_annotations(answered, path)
            };
            match errors.as_slice() {
                [] => {}
                [one] => return Err(one.to_string()),
                many => {
                    return Err(format!(
                        "[{}]",
                        many.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        restored.insert(field.to_string(), Value::Object(answered.clone()));
    }
    converted["metadata"] = Value::Object(restored);
    Ok(())
}

/// How Go's `%T` names a JSON value decoded into `interface{}` by the
/// unstructured decoder.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GVK: &str = "stable.example.com/v1, Kind=CronTab";

    fn crontab(name: &str, version: &str) -> Value {
        json!({"apiVersion": format!("stable.example.com/{version}"), "kind": "CronTab",
               "metadata": {"name": name, "namespace": "default", "uid": "u-1",
                            "resourceVersion": "7", "labels": {"a": "b"}},
               "spec": {"cronSpec": "* * * * *"}})
    }

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview", "response": response}))
        .unwrap()
    }

    #[test]
    fn review_bodies_carry_the_objects() {
        let head = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "u", "desiredAPIVersion": "stable.example.com/v2"}});
        let objects = [crontab("a", "v1"), crontab("b", "v1")];
        let encoded: Vec<Vec<u8>> = objects
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap())
            .collect();
        let body: Value = serde_json::from_slice(&review_body(&head, &encoded)).unwrap();
        assert_eq!(body["request"]["uid"], "u");
        assert_eq!(
            body["request"]["desiredAPIVersion"],
            "stable.example.com/v2"
        );
        assert_eq!(body["request"]["objects"], json!(objects));
        assert_eq!(body["kind"], "ConversionReview");
    }

    #[test]
    fn answers_are_checked_as_upstream() {
        let ok = answer(json!({"uid": "u", "result": {"status": "Success"},
            "convertedObjects": [crontab("a", "v2")]}));
        assert_eq!(converted_objects("v1", "u", &ok).unwrap().len(), 1);
        assert_eq!(
            converted_objects("v1", "other", &ok).unwrap_err(),
            "expected response.uid=\"other\", got \"u\""
        );
        // v1beta1 answers are not checked for their uid.
        let beta = serde_json::to_vec(&json!({"apiVersion": "apiextensions.k8s.io/v1beta1",
            "kind": "ConversionReview", "response": {"uid": "x", "result": {"status": "Success"}}}))
        .unwrap();
        assert!(converted_objects("v1beta1", "u", &beta).is_ok());
        let failed =
            answer(json!({"uid": "u", "result": {"status": "Failure", "message": "no can do"}}));
        assert_eq!(
            converted_objects("v1", "u", &failed).unwrap_err(),
            "no can do"
        );
        let failed = answer(json!({"uid": "u", "result": {"status": "Failure"}}));
        assert_eq!(
            converted_objects("v1", "u", &failed).unwrap_err(),
            "response.result.status was 'Failure', not 'Success'"
        );
    }

    #[test]
    fn converted_objects_keep_their_identity_and_metadata() {
        let desired = "stable.example.com/v2";
        let mut out = crontab("a", "v2");
        out["metadata"]["resourceVersion"] = json!("99");
        out["metadata"]["labels"] = json!({"converted": "yes"});
        out["metadata"]["annotations"] = json!({"note": "x"});
        let done = verify(GVK, desired, vec![crontab("a", "v1")], vec![out]).unwrap();
        // Metadata is the original's, but for labels and annotations.
        assert_eq!(done[0]["metadata"]["resourceVersion"], "7");
        assert_eq!(done[0]["metadata"]["labels"], json!({"converted": "yes"}));
        assert_eq!(done[0]["metadata"]["annotations"], json!({"note": "x"}));

        let err = |converted: Value| {
            verify(GVK, desired, vec![crontab("a", "v1")], vec![converted])
                .unwrap_err()
                .0
        };
        assert_eq!(
            err(crontab("other", "v2")),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid object: must have the same name: a != other"
        );
        assert_eq!(
            err(crontab("a", "v9")),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid object at index 0: invalid groupVersion (expected stable.example.com/v2, received stable.example.com/v9)"
        );
        let mut other_kind = crontab("a", "v2");
        other_kind["kind"] = json!("Other");
        assert_eq!(
            err(other_kind),
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid object at index 0: invalid kind (expected CronTab, received Other)"
        );
        let mut bad_label = crontab("a", "v2");
        bad_label["metadata"]["labels"] = json!({"bad key!": "v"});
        assert!(
            err(bad_label).starts_with(
                "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid metadata: metadata.labels: Invalid value: \"bad key!\": name part must consist of"
            )
        );
        let mut no_labels = crontab("a", "v2");
        no_labels["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let done = verify(GVK, desired, vec![crontab("a", "v1")], vec![no_labels]).unwrap();
        assert!(done[0]["metadata"].get("labels").is_none());
        assert_eq!(
            verify(GVK, desired, vec![crontab("a", "v1")], vec![])
                .unwrap_err()
                .0,
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned 0 objects, expected 1"
        );
        // A batch names the (1-based) index, as upstream does.
        assert_eq!(
            verify(
                GVK,
                desired,
                vec![crontab("a", "v1"), crontab("b", "v1")],
                vec![crontab("a", "v2"), crontab("c", "v2")]
            )
            .unwrap_err()
            .0,
            "conversion webhook for stable.example.com/v1, Kind=CronTab returned invalid converted object at index 2: must have the same name: b != c"
        );
    }
}
