//! `meta.k8s.io/v1 Table` responses (`Accept: application/json;as=Table`),
//! built from a strategy's printer columns and rows.

use serde_json::{Value, json};

use super::catalog::ResourceInfo;

/// What each row carries in `object` (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the query parameter (default Metadata).
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn column_definitions(r: &ResourceInfo) -> Value {
    r.strategy.column_definitions()
}

fn row(r: &ResourceInfo, obj: &Value, include: IncludeObject) -> Value {
    let mut row = json!({"cells": r.strategy.row(obj)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj.clone(),
        IncludeObject::Metadata => {
            row["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
            })
        }
    }
    row
}

/// A Table for a list of objects; `list_meta` is the list's `metadata`.
pub fn table(
    r: &ResourceInfo,
    items: &[Value],
    list_meta: Value,
    include: IncludeObject,
    headers: bool,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if headers { column_definitions(r) } else { json!([]) },
        "rows": items.iter().map(|o| row(r, o, include)).collect::<Vec<_>>(),
    })
}
