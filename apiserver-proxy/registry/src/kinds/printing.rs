//! Shared table-cell helpers, after `pkg/printers/internalversion/printers.go`
//! and `k8s.io/apimachinery/pkg/util/duration`.
//!
//! Owns formatting only (ages, label selectors, container lists, ...); it must
//! never decide which columns a type has (that is each kind's strategy).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::super::strategy::Column;

/// Upstream's Age column (`metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]`).
pub const AGE: Column = Column {
    name: "Age",
    type_: "string",
    format: "",
    description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    priority: 0,
};

/// The "Created At" column of types printed with their creation time (RBAC
/// roles, LimitRanges, and the generic default).
pub const CREATED_AT: Column = Column {
    name: "Created At",
    type_: "date",
    format: "",
    description: "",
    priority: 0,
};

/// A priority-0 column.
pub const fn col(name: &'static str, type_: &'static str) -> Column {
    Column::new(name, type_)
}

/// A `-o wide` column.
pub const fn wide(name: &'static str, type_: &'static str) -> Column {
    Column::wide(name, type_)
}

/// The string at a path of keys, or "".
pub fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

/// The value at a path of keys (`Null` when absent).
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

/// The integer at a path (0 when absent, as Go's zero value).
pub fn int(v: &Value, path: &[&str]) -> i64 {
    at(v, path).as_i64().unwrap_or(0)
}

/// The array at a path (empty when absent).
pub fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// `metadata.name` as a cell.
pub fn name_cell(obj: &Value) -> Value {
    Value::String(s(obj, &["metadata", "name"]).to_string())
}

/// `duration.HumanDuration`: ~2-3 significant figures, e.g. `90s`, `2m30s`, `5h`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// Seconds between two RFC3339 timestamps (`end - start`), if both parse.
pub fn seconds_between(start: &str, end: &str) -> Option<i64> {
    let a = DateTime::parse_from_rfc3339(start).ok()?;
    let b = DateTime::parse_from_rfc3339(end).ok()?;
    Some((b - a).num_seconds())
}

/// `translateTimestampSince`: the humanized age of an RFC3339 time relative
/// to `now`, `<unknown>` when missing or unparsable.
pub fn humanize_age(created: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(created) {
        Ok(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

/// `translateTimestampSince` for an optional JSON timestamp, now.
pub fn since(ts: &Value) -> String {
    humanize_age(ts.as_str().unwrap_or(""), Utc::now())
}

/// The Age cell of an object.
pub fn age_cell(obj: &Value) -> Value {
    Value::String(since(&obj["metadata"]["creationTimestamp"]))
}

/// The creation time as an RFC3339 cell (for "Created At" columns).
pub fn created_at_cell(obj: &Value) -> Value {
    obj["metadata"]
        .get("creationTimestamp")
        .cloned()
        .unwrap_or(Value::Null)
}

/// `layoutContainerCells`: container names and images, comma-separated.
pub fn container_cells(pod_spec: &Value) -> (Value, Value) {
    let containers = arr(pod_spec, &["containers"]);
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    (names.join(",").into(), images.join(",").into())
}

/// `labels.FormatLabels`: sorted `k=v` pairs, `<none>` when empty.
pub fn format_labels(labels: &Value) -> String {
    let mut pairs: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

/// `metav1.FormatLabelSelector`: `<none>` for a missing or empty selector.
pub fn format_label_selector(selector: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(m) = selector["matchLabels"].as_object() {
        for (k, v) in m {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in arr(selector, &["matchExpressions"]) {
        let key = s(e, &["key"]).to_string();
        let mut values: Vec<&str> = arr(e, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        let text = match s(e, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<error>".into(),
        };
        reqs.push((key, text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    if reqs.is_empty() {
        "<none>".into()
    } else {
        reqs.into_iter().map(|r| r.1).collect::<Vec<_>>().join(",")
    }
}

/// `listWithMoreString`: up to `max` items, then ` + N more...`.
pub fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let shown: Vec<&str> = list.iter().take(max).map(String::as_str).collect();
    let ret = shown.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

/// `loadBalancerStatusStringer` (server tables are always wide, so never truncated).
pub fn load_balancer_status(lb: &Value) -> String {
    arr(lb, &["ingress"])
        .iter()
        .filter_map(|i| {
            let ip = s(i, &["ip"]);
            let host = s(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip.to_string())
            } else if !host.is_empty() {
                Some(host.to_string())
            } else {
                None
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `helper.GetAccessModesAsString`.
pub fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// `printBoolPtr`: `True`/`False`, `<unset>` when missing.
pub fn bool_ptr(v: &Value) -> Value {
    match v.as_bool() {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

/// An IntOrString value as text (`25%`, `1`), or `default` when missing.
pub fn int_or_string(v: &Value, default: &str) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => default.to_string(),
    }
}

/// The owner reference with `controller: true`, as `kind.group/name`
/// (`formatResourceName`), or `<none>`.
pub fn controller_of(obj: &Value) -> String {
    for r in arr(obj, &["metadata", "ownerReferences"]) {
        if r["controller"].as_bool() == Some(true) {
            let kind = s(r, &["kind"]).to_lowercase();
            let group = s(r, &["apiVersion"])
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or("");
            let gk = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            let name = s(r, &["name"]);
            return if gk.is_empty() {
                name.to_string()
            } else {
                format!("{gk}/{name}")
            };
        }
    }
    "<none>".into()
}

/// Number of entries of an object-valued field.
pub fn map_len(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

/// Columns of upstream's `printReplicaSet` and `printReplicationController`.
pub fn replica_columns() -> Vec<Column> {
    vec![
        Column::NAME,
        col("Desired", "integer"),
        col("Current", "integer"),
        col("Ready", "integer"),
        AGE,
        wide("Containers", "string"),
        wide("Images", "string"),
        wide("Selector", "string"),
    ]
}

/// A row for [`replica_columns`]; `selector` is the formatted selector cell
/// (a `LabelSelector` for ReplicaSets, a plain map for ReplicationControllers).
pub fn replica_row(obj: &Value, selector: String) -> Vec<Value> {
    let (names, images) = container_cells(&obj["spec"]["template"]["spec"]);
    vec![
        name_cell(obj),
        Value::from(int(obj, &["spec", "replicas"])),
        Value::from(int(obj, &["status", "replicas"])),
        Value::from(int(obj, &["status", "readyReplicas"])),
        age_cell(obj),
        names,
        images,
        Value::from(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_durations_match_upstream() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (150, "2m30s"),
            (180, "3m"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600 + 60, "3h1m"),
            (5 * 3600, "5h"),
            (47 * 3600, "47h"),
            (2 * 86400 + 3600, "2d1h"),
            (10 * 86400, "10d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn ages() {
        let now = DateTime::parse_from_rfc3339("2024-01-01T00:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(humanize_age("2024-01-01T00:00:00Z", now), "5m");
        assert_eq!(humanize_age("", now), "<unknown>");
    }

    #[test]
    fn selectors() {
        assert_eq!(format_label_selector(&json!(null)), "<none>");
        let sel = json!({"matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]}, {"key": "0", "operator": "Exists"}]});
        assert_eq!(format_label_selector(&sel), "0,a=1,b=2,c in (x,y)");
        assert_eq!(format_labels(&json!({"z": "1", "a": "2"})), "a=2,z=1");
        assert_eq!(format_labels(&json!({})), "<none>");
    }
}
