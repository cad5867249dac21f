//! Building responses: a value in the negotiated representation, `Status`
//! errors, 429 with `Retry-After`, plain text, `Warning` headers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use serde_json::{Value, json};

use super::negotiate::{self, Output};
use crate::error::ApiError;
use crate::tenancy::limits::{self, Throttled};

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// A complete body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// `value` in the representation `output`, with `status`.
pub(crate) fn respond(status: StatusCode, value: &Value, output: Output) -> Response<Body> {
    let (bytes, content_type) = negotiate::encode(value, output);
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The `Status` response for an error.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    respond(status, &e.to_status(), Output::Json)
}

/// 429 for a request refused by its cluster's limits: a `Status` with
/// upstream's message and a `Retry-After` header.
pub(crate) fn too_many_requests(throttled: Throttled) -> Response<Body> {
    let seconds = throttled.retry_after_seconds;
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": limits::TOO_MANY_REQUESTS,
        "reason": "TooManyRequests",
        "details": {"retryAfterSeconds": seconds},
        "code": 429,
    });
    let mut resp = respond(StatusCode::TOO_MANY_REQUESTS, &status, Output::Json);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    resp
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Adds `Warning: 299` headers, one per text.
pub(crate) fn add_warnings(resp: &mut Response<Body>, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
}

/// Responses of subresources and statuses are plain objects even when a
/// table was asked for.
pub(crate) fn output_plain(output: Output) -> Output {
    match output {
        Output::Yaml => Output::Yaml,
        _ => Output::Json,
    }
}
