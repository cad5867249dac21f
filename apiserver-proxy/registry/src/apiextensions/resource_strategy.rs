//! The generic store's strategy for custom resources, after upstream's
//! `apiextensions-apiserver/pkg/registry/customresource/strategy.go` and
//! `tableconvertor`: the CRD version's schema (pruning, defaulting,
//! validation) through [`ResourceSchema`], generation on any change outside
//! `metadata` and `status`, printer columns from `additionalPrinterColumns`,
//! field selectors from `selectableFields`, and the scale subresource's paths.

use std::sync::Arc;

use serde_json::{Value, json};

use super::jsonpath::JsonPath;
use crate::error::FieldError;
use crate::strategy::{Column, Strategy};

/// What a CRD version's structural schema does to its custom resources.
/// Implemented by the schema compiler; a version without a schema (or one
/// that preserves unknown fields everywhere) does nothing.
pub trait ResourceSchema: Send + Sync + 'static {
    /// Drops fields the schema does not know; returns their paths
    /// (`spec.foo`) for `fieldValidation`.
    fn prune(&self, obj: &mut Value) -> Vec<String>;
    /// Applies the schema's `default`s.
    fn apply_defaults(&self, obj: &mut Value);
    /// OpenAPI and CEL validation; `old` is the current object on update.
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError>;
}

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `number`, `boolean`, `date`).
    pub type_: String,
    /// OpenAPI format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = always shown, more = `-o wide`.
    pub priority: i64,
    /// Where the value is.
    pub path: JsonPath,
}

/// The scale subresource's paths (`subresources.scale`).
#[derive(Clone, Debug)]
pub struct ScalePaths {
    /// `specReplicasPath`: where `Scale.spec.replicas` is read and written.
    pub spec_replicas: JsonPath,
    /// `statusReplicasPath`: `Scale.status.replicas`.
    pub status_replicas: JsonPath,
    /// `labelSelectorPath`: `Scale.status.selector` (a serialized selector).
    pub label_selector: Option<JsonPath>,
}

/// The strategy of one served version of a CRD (shared by every cluster
/// with an identical CRD).
pub struct CustomResourceStrategy {
    /// Whether the version has the status subresource.
    pub has_status: bool,
    /// Printer columns (after the Name column).
    pub columns: Vec<PrinterColumn>,
    /// `selectableFields`: (field selector label, path).
    pub selectable_fields: Vec<(String, JsonPath)>,
    /// The scale subresource, if served.
    pub scale: Option<ScalePaths>,
    /// The version's schema.
    pub schema: Option<Arc<dyn ResourceSchema>>,
}

impl CustomResourceStrategy {
    /// Prunes `obj` by the schema; the pruned paths.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        self.schema
            .as_ref()
            .map(|s| s.prune(obj))
            .unwrap_or_default()
    }
}

/// `obj` without `metadata` (and without `status` when it has its own
/// subresource): what a change of bumps the generation.
fn desired_state(obj: &Value, has_status: bool) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        if has_status {
            map.remove("status");
        }
    }
    copy
}

/// A cell as upstream's table convertor renders a JSON value of a column type.
fn cell(type_: &str, value: &Value) -> Value {
    match type_ {
        "string" => match value {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
        "integer" => match value {
            Value::Number(n) if n.is_i64() => value.clone(),
            Value::Number(n) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(_) => value.clone(),
            _ => Value::Null,
        },
        // `ConvertToHumanReadableDateType`: the age, as kubectl shows it.
        "date" => match value {
            Value::String(_) => json!(crate::kinds::printing::since(value)),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

impl Strategy for CustomResourceStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(s) = &self.schema {
            s.apply_defaults(obj);
        }
    }

    fn validate(&self, obj: &Value) -> Vec<FieldError> {
        self.schema
            .as_ref()
            .map(|s| s.validate(obj, None))
            .unwrap_or_default()
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        self.schema
            .as_ref()
            .map(|s| s.validate(new, Some(old)))
            .unwrap_or_default()
    }

    fn tracks_generation(&self) -> bool {
        true
    }

    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        desired_state(new, self.has_status) != desired_state(old, self.has_status)
    }

    fn columns(&self) -> Vec<Column> {
        // Dynamic names: the definitions come from `column_definitions`.
        Vec::new()
    }

    fn column_definitions(&self) -> Value {
        let name = Column::NAME;
        let mut defs = vec![json!({
            "name": name.name, "type": name.type_, "format": name.format,
            "description": name.description, "priority": 0,
        })];
        defs.extend(self.columns.iter().map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format,
                   "description": c.description, "priority": c.priority})
        }));
        Value::Array(defs)
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        let mut cells = vec![obj["metadata"]["name"].clone()];
        cells.extend(
            self.columns
                .iter()
                .map(|c| c.path.first(obj).map_or(Value::Null, |v| cell(&c.type_, v))),
        );
        cells
    }

    fn field_label(&self, obj: &Value, field: &str) -> Option<String> {
        let (_, path) = self.selectable_fields.iter().find(|(f, _)| f == field)?;
        Some(match path.first(obj) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        })
    }

    fn scale_paths(&self) -> Option<&ScalePaths> {
        self.scale.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy() -> CustomResourceStrategy {
        CustomResourceStrategy {
            has_status: true,
            columns: vec![PrinterColumn {
                name: "Ready".into(),
                type_: "string".into(),
                format: String::new(),
                description: String::new(),
                priority: 0,
                path: JsonPath::parse(".status.conditions[?(@.type==\"Ready\")].status").unwrap(),
            }],
            selectable_fields: vec![("spec.color".into(), JsonPath::parse(".spec.color").unwrap())],
            scale: None,
            schema: None,
        }
    }

    #[test]
    fn generation_follows_everything_but_metadata_and_status() {
        let s = strategy();
        let old = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"y": 1}});
        let mut new = old.clone();
        new["metadata"]["labels"]["a"] = json!("2");
        new["status"]["y"] = json!(2);
        assert!(!s.spec_changed(&new, &old));
        new["other"] = json!(true);
        assert!(s.spec_changed(&new, &old));
    }

    #[test]
    fn rows_and_field_labels_come_from_the_paths() {
        let s = strategy();
        let obj = json!({"metadata": {"name": "w"}, "spec": {"color": "red"},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(s.row(&obj), [json!("w"), json!("True")]);
        assert_eq!(
            s.row(&json!({"metadata": {"name": "v"}})),
            [json!("v"), Value::Null]
        );
        assert_eq!(s.field_label(&obj, "spec.color").as_deref(), Some("red"));
        assert_eq!(s.field_label(&obj, "spec.size"), None);
        assert_eq!(s.column_definitions()[1]["name"], "Ready");
    }
}
