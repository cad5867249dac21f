//! Watches of the generic store over HTTP: a chunked stream of watch
//! events in the negotiated representation, with bookmarks, a timeout, and
//! the initial events an endpoint serves without storing them.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::RestRequest;
use super::options::{bool_param, list_options};
use crate::error::ApiError;
use crate::registry::meta;
use crate::registry::table;
use crate::registry::watch::{Event, Watch, WatchOptions};
use crate::server::handler::Body;
use crate::server::negotiate::Output;

/// How often a watch with `allowWatchBookmarks` gets a bookmark.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

/// Serves a watch of `req`'s target; `initial` objects (served without
/// being stored) join the initial events.
pub(crate) async fn watch(
    req: &RestRequest<'_>,
    initial: Vec<Value>,
) -> Result<Response<Body>, ApiError> {
    let (info, output) = (req.info, req.output);
    let target = &req.target();
    let r = req.resource.clone();
    let server = req.server;
    let list = list_options(info)?;
    let send_initial_events = bool_param(info, "sendInitialEvents")?;
    let allow_bookmarks = bool_param(info, "allowWatchBookmarks")?.unwrap_or(false);
    let timeout = match info.param("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds: {t:?}")))?,
        ),
        // Upstream picks a random duration in [minRequestTimeout, 2x]; 30-60 minutes.
        None => Duration::from_secs(1800 + u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * 7),
    };
    // Objects served without being stored join the initial events.
    let mut defaults: std::collections::VecDeque<Event> =
        initial.into_iter().map(Event::Added).collect();
    let mut watch = Watch::open(
        &server.store,
        target,
        r.clone(),
        WatchOptions {
            label_selector: list.label_selector,
            field_selector: list.field_selector,
            resource_version: list.resource_version,
            send_initial_events,
            allow_bookmarks,
            oldest_revision: server
                .clusters
                .get(target.cluster)
                .map_or(0, |c| c.created_revision()),
        },
    )
    .await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmarks = tokio::time::interval_at(
            tokio::time::Instant::now() + BOOKMARK_INTERVAL,
            BOOKMARK_INTERVAL,
        );
        let mut first_table = true;
        loop {
            let event = if let Some(added) = defaults.pop_front() {
                Some(added)
            } else {
                tokio::select! {
                _ = tx.closed() => break,
                _ = &mut deadline => break,
                _ = bookmarks.tick(), if allow_bookmarks => { watch.request_bookmark(); continue; }
                event = watch.next() => event,
                }
            };
            let Some(event) = event else { break };
            if matches!(event, Event::Bookmark { .. }) && !allow_bookmarks {
                continue;
            }
            let is_error = matches!(event, Event::Error(_));
            let json = event.to_json(&r, |obj| match output {
                Output::Table(include) => {
                    let rv = meta::resource_version(obj).to_string();

                    table::table(
                        &r,
                        std::slice::from_ref(obj),
                        json!({"resourceVersion": rv}),
                        include,
                        first_table,
                    )
                }
                Output::PartialMetadata => {
                    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                                  "metadata": obj["metadata"]})
                }
                _ => obj.clone(),
            });
            if matches!(output, Output::Table(_))
                && !matches!(event, Event::Bookmark { .. } | Event::Error(_))
            {
                first_table = false;
            }
            let mut line = match output {
                Output::Yaml => serde_yaml::to_string(&json)
                    .unwrap_or_default()
                    .into_bytes(),
                _ => serde_json::to_vec(&json).unwrap_or_default(),
            };
            line.push(b'\n');
            if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() || is_error {
                break;
            }
        }
    });
    let stream = tokio_stream_from(rx);
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let ct = if output == Output::Yaml {
        "application/yaml"
    } else {
        "application/json"
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
