//! The per-resource `Strategy`: everything that differs between resource types.
//!
//! The generic store ([`super::store`]) implements create/update/delete/list/watch
//! once for every resource; a strategy only supplies what upstream's
//! `rest.RESTCreateStrategy`, `RESTUpdateStrategy`, table convertor and field
//! selectors supply: defaults, validation, status handling, printer columns.
//! Strategies are stateless and shared by every virtual cluster in the process.

use futures::future::BoxFuture;
use nestkube_storage::Storage;
use serde_json::Value;

use crate::error::{ApiError, FieldError};

/// A printer column (`metav1.TableColumnDefinition`).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Header, e.g. `Ready`.
    pub name: &'static str,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: &'static str,
    /// OpenAPI format; `name` for the NAME column.
    pub format: &'static str,
    /// Human description.
    pub description: &'static str,
    /// 0 = always shown, 1 = `-o wide` only.
    pub priority: i32,
}

impl Column {
    /// A priority-0 column.
    pub const fn new(name: &'static str, type_: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description: "",
            priority: 0,
        }
    }
    /// A `-o wide` column.
    pub const fn wide(name: &'static str, type_: &'static str) -> Self {
        Self {
            name,
            type_,
            format: "",
            description: "",
            priority: 1,
        }
    }
    /// The NAME column (format `name`).
    pub const NAME: Column = Column {
        name: "Name",
        type_: "string",
        format: "name",
        description: "Name must be unique within a namespace.",
        priority: 0,
    };
}

/// Which name rule metadata.name must satisfy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most resources).
    DnsSubdomain,
    /// DNS-1123 label (namespaces, services).
    DnsLabel,
    /// Path segment only (no `/`, `%`, `.` or `..`): RBAC objects and the like.
    PathSegment,
}

/// What differs between resource types. Every method has upstream's generic
/// default, so a strategy overrides only what its type needs.
pub trait Strategy: Send + Sync + 'static {
    /// Upstream defaulting (`SetDefaults_*`), applied to every decoded create
    /// or update body before validation.
    fn default(&self, _obj: &mut Value) {}

    /// Resets what a client may not set on create (after the generic store
    /// cleared `status` for resources with a status subresource), e.g. a pod's
    /// initial `status.phase`.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Adjusts an update before validation, e.g. fields only the server sets.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Type-specific validation of a new object (metadata is validated generically).
    fn validate(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Type-specific validation of an update, including immutable fields.
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate(new)
    }

    /// Whether `metadata.generation` is maintained: 1 on create, +1 whenever
    /// the object's desired state (by default `spec`) changes.
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Whether an update changed the desired state (bumps generation).
    fn spec_changed(&self, new: &Value, old: &Value) -> bool {
        new.get("spec") != old.get("spec")
    }

    /// Name validation rule for `metadata.name`.
    fn name_rule(&self) -> NameRule {
        NameRule::DnsSubdomain
    }

    /// Printer columns as kube-apiserver's table convertor for this type.
    fn columns(&self) -> Vec<Column> {
        vec![
            Column::NAME,
            Column {
                name: "Created At",
                type_: "date",
                ..Column::new("", "")
            },
        ]
    }

    /// The Table's `columnDefinitions` (from [`Strategy::columns`]; a custom
    /// resource's come from its CRD).
    fn column_definitions(&self) -> Value {
        self.columns()
            .iter()
            .map(|c| {
                serde_json::json!({"name": c.name, "type": c.type_, "format": c.format,
                       "description": c.description, "priority": c.priority})
            })
            .collect()
    }

    /// Where a custom resource keeps what its scale subresource shows;
    /// `None` for built-ins (`spec.replicas`, `status.replicas`, the
    /// `spec.selector`).
    fn scale_paths(&self) -> Option<&crate::apiextensions::resource_strategy::ScalePaths> {
        None
    }

    /// One table row; cells line up with [`Strategy::columns`].
    fn row(&self, obj: &Value) -> Vec<Value> {
        vec![
            obj["metadata"]["name"].clone(),
            obj["metadata"]
                .get("creationTimestamp")
                .cloned()
                .unwrap_or(Value::Null),
        ]
    }

    /// The value of a type-specific field selector label (`spec.nodeName`,
    /// `status.phase`, ...). `None` means the field is not supported for this
    /// type (upstream answers 400); `metadata.name` and `metadata.namespace`
    /// are handled generically.
    fn field_label(&self, _obj: &Value, _field: &str) -> Option<String> {
        None
    }

    /// Grace period for deleting this object, given the client's request.
    /// `Some(n)` with n > 0 makes deletion graceful (deletionTimestamp set,
    /// object kept until something deletes it with grace 0). Default: immediate.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> Option<i64> {
        None
    }

    /// Called when deletion of `obj` is requested and it has no finalizers
    /// left; returning true keeps the object (marked as deleting) instead,
    /// e.g. a namespace moves to `Terminating` while it still has content.
    fn begin_delete(&self, _obj: &mut Value) -> bool {
        false
    }

    /// Called just before a create of `obj` in `cluster` is written (after
    /// admission; never on dry-run), as upstream's `BeginCreate`: claims
    /// what the object takes from a pool shared within its cluster (a
    /// Service's cluster IP). What it returns is held until the write is
    /// done, then dropped.
    fn begin_create<'a>(
        &'a self,
        _storage: &'a dyn Storage,
        _cluster: &'a str,
        _obj: &'a mut Value,
    ) -> BoxFuture<'a, Result<Option<CreateHold>, ApiError>> {
        Box::pin(async { Ok(None) })
    }
}

/// What a [`Strategy::begin_create`] holds until its create is written
/// (e.g. the lock under which an address was chosen).
pub type CreateHold = Box<dyn Send>;

/// The strategy for resources with no type-specific behaviour.
pub struct DefaultStrategy;

impl Strategy for DefaultStrategy {}
