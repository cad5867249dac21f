//! `metadata.managedFields`: who owns which field of an object, maintained
//! on every write as kube-apiserver's field manager
//! (`k8s.io/apimachinery/pkg/util/managedfields/internal`) does.
//!
//! Owns the entries (manager, operation, apiVersion, time, subresource,
//! `FieldsV1`), their identifiers and order, the manager name of a request
//! ([`manager_or_user_agent`], [`with_manager`]), the `Update` step the store
//! runs on every create and update ([`record_update`]), and the `Apply` of a
//! server-side apply request ([`apply`]) with the client-side-apply interplay
//! of `kubectl` (`last-applied-configuration`). The field sets, merge and
//! conflicts themselves are `nestkube_patch::apply`'s.
//!
//! It must never read or write storage, and never hold a rule for one kind:
//! types come from the OpenAPI schema ([`FieldSchema`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use nestkube_patch::PatchSchema;
use nestkube_patch::apply::{
    self as ssa, ApplyError, ManagedFields, OpenApiTypes, PathElement, Set, TypeResolver, Typing,
    VersionedSet,
};
use serde_json::{Map, Value, json};

use crate::catalog::ResourceInfo;
use crate::error::ApiError;
use crate::meta;

/// `kubectl`'s client-side apply annotation.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upstream's `FieldManagerMaxLength`.
pub const MAX_MANAGER_LENGTH: usize = 128;
/// Upstream's `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The bucket older update entries are merged into.
const ANCIENT_CHANGES: &str = "ancient-changes";
/// The manager of writes made in process without a request (controllers,
/// the syncer's bindings): the name upstream's controllers appear under.
pub const IN_PROCESS_MANAGER: &str = "kube-controller-manager";
/// The manager upstream gives what an object held before its first apply.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The temporary manager of the update being recorded.
const CURRENT_OPERATION: &str = "current-operation";

/// The schema field ownership is computed with: the OpenAPI index of the
/// built-in types (shared, built once per process).
pub type FieldSchema = Arc<PatchSchema>;

tokio::task_local! {
    static MANAGER: Arc<str>;
}

/// Runs `fut` (one request) with `manager` as the field manager of its writes.
pub async fn with_manager<F: Future>(manager: Arc<str>, fut: F) -> F::Output {
    MANAGER.scope(manager, fut).await
}

/// The field manager of the write being served on this task.
pub fn current_manager() -> Arc<str> {
    MANAGER
        .try_with(Arc::clone)
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| Arc::from(IN_PROCESS_MANAGER))
}

/// Upstream's `managerOrUserAgent`: `?fieldManager=`, else the User-Agent
/// up to its first `/`, without unprintable characters, cut at 128 bytes.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let prefix = user_agent.unwrap_or("").split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_MANAGER_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// Upstream's `ValidateFieldManager` (`None`: valid).
pub fn validate_manager(manager: &str) -> Option<crate::error::FieldError> {
    if manager.len() > MAX_MANAGER_LENGTH {
        return Some(crate::error::FieldError::too_long(
            "fieldManager",
            MAX_MANAGER_LENGTH,
        ));
    }
    if manager.chars().any(char::is_control) {
        return Some(crate::error::FieldError::invalid(
            "fieldManager",
            Value::String(manager.to_string()),
            "invalid characters",
        ));
    }
    None
}

/// One manager's identity (upstream's `BuildManagerIdentifier`): the JSON of
/// its entry without fields and time, and without apiVersion for appliers.
fn identifier(manager: &str, applied: bool, api_version: &str, subresource: &str) -> String {
    let mut m = Map::new();
    if !manager.is_empty() {
        m.insert("manager".into(), manager.into());
    }
    m.insert(
        "operation".into(),
        if applied { "Apply" } else { "Update" }.into(),
    );
    if !applied && !api_version.is_empty() {
        m.insert("apiVersion".into(), api_version.into());
    }
    if !subresource.is_empty() {
        m.insert("subresource".into(), subresource.into());
    }
    Value::Object(m).to_string()
}

/// The parts of an identifier.
struct Identity {
    manager: String,
    operation: String,
    subresource: String,
}

fn parse_identifier(id: &str) -> Identity {
    let v: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Identity {
        manager: s("manager"),
        operation: s("operation"),
        subresource: s("subresource"),
    }
}

/// Decoded managed fields: sets by identifier and their times.
#[derive(Debug, Default, Clone)]
struct Managed {
    fields: ManagedFields,
    times: BTreeMap<String, Option<String>>,
}

/// Upstream's `DecodeManagedFields`.
fn decode(entries: &Value) -> Result<Managed, String> {
    let mut out = Managed::default();
    let Some(list) = entries.as_array() else {
        return if entries.is_null() {
            Ok(out)
        } else {
            Err("managedFields must be a list".into())
        };
    };
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("");
        if s("fieldsType") != "FieldsV1" {
            return Err(format!(
                "error decoding fields type: can only decode FieldsV1 formatted managedFields entries, got {:?}",
                s("fieldsType")
            ));
        }
        let applied = match s("operation") {
            "Apply" => true,
            "Update" => false,
            other => return Err(format!("unknown operation {other:?}")),
        };
        let set = match e.get("fieldsV1") {
            None | Some(Value::Null) => Set::new(),
            Some(f) => Set::from_fields_v1(f).map_err(|e| e.to_string())?,
        };
        let id = identifier(s("manager"), applied, s("apiVersion"), s("subresource"));
        let time = e.get("time").and_then(Value::as_str).map(String::from);
        let vs = out.fields.entry(id.clone()).or_insert(VersionedSet {
            set: Set::new(),
            api_version: s("apiVersion").to_string(),
            applied,
        });
        vs.set = vs.set.union(&set);
        out.times.insert(id, time);
    }
    Ok(out)
}

/// Upstream's `EncodeObjectManagedFields` with `sortEncodedManagedFields`.
fn encode(managed: &Managed) -> Vec<Value> {
    struct E {
        id: Identity,
        api_version: String,
        time: Option<String>,
        fields: Value,
    }
    let mut entries: Vec<E> = managed
        .fields
        .iter()
        .filter(|(_, vs)| !vs.set.is_empty())
        .map(|(id, vs)| E {
            id: parse_identifier(id),
            api_version: vs.api_version.clone(),
            time: managed.times.get(id).cloned().flatten(),
            fields: vs.set.to_fields_v1(),
        })
        .collect();
    let secs = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    };
    entries.sort_by(|p, q| {
        p.id.operation
            .cmp(&q.id.operation)
            .then_with(|| secs(&p.time).cmp(&secs(&q.time)))
            .then_with(|| p.id.manager.cmp(&q.id.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.id.subresource.cmp(&q.id.subresource))
    });
    entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            if !e.id.manager.is_empty() {
                m.insert("manager".into(), e.id.manager.into());
            }
            m.insert("operation".into(), e.id.operation.into());
            if !e.api_version.is_empty() {
                m.insert("apiVersion".into(), e.api_version.into());
            }
            if let Some(t) = e.time {
                m.insert("time".into(), t.into());
            }
            m.insert("fieldsType".into(), "FieldsV1".into());
            m.insert("fieldsV1".into(), e.fields);
            if !e.id.subresource.is_empty() {
                m.insert("subresource".into(), e.id.subresource.into());
            }
            Value::Object(m)
        })
        .collect()
}

fn set_managed(obj: &mut Value, managed: &Managed) {
    let encoded = encode(managed);
    meta::set(
        obj,
        "managedFields",
        (!encoded.is_empty()).then_some(Value::Array(encoded)),
    );
}

/// `obj` without `metadata.managedFields`.
fn without_managed(obj: &Value) -> Value {
    let mut o = obj.clone();
    meta::set(&mut o, "managedFields", None);
    o
}

/// Upstream's `stripMetaManager` set: fields nobody owns.
fn strip_set() -> Set {
    let mut s = Set::new();
    for top in ["apiVersion", "kind", "metadata"] {
        s.insert(&[PathElement::field(top)]);
    }
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[PathElement::field("metadata"), PathElement::field(f)]);
    }
    s
}

/// What a write through `subresource` may not own (upstream's reset
/// fields): `status` through the main resource when a status subresource
/// exists; everything but `status` through the status subresource.
fn ignored(r: &ResourceInfo, subresource: Option<&str>, objects: &[&Value]) -> Set {
    let mut s = Set::new();
    match subresource {
        None if r.has_status() => s.insert(&[PathElement::field("status")]),
        Some("status") => {
            let keys: BTreeSet<&String> = objects
                .iter()
                .filter_map(|o| o.as_object())
                .flat_map(|m| m.keys())
                .filter(|k| *k != "status")
                .collect();
            for k in keys {
                s.insert(&[PathElement::field(k)]);
            }
        }
        _ => {}
    }
    s
}

/// Field ownership of one resource: the schema of its kind and what the
/// endpoint may not own.
///
/// Through the `scale` subresource the objects are the resource's
/// `autoscaling/v1` Scale, not the resource, as upstream's field manager of
/// that endpoint sees them; [`ScaleFields`] maps their entries to and from
/// the resource's.
pub struct Context<'a> {
    /// The OpenAPI index (`None`: every value is deduced).
    pub schema: Option<&'a PatchSchema>,
    /// The resource written.
    pub resource: &'a ResourceInfo,
    /// The subresource written through (`status`, `scale`, ...).
    pub subresource: Option<&'a str>,
}

/// The group, version and kind of a Scale.
const SCALE_GVK: (&str, &str, &str) = ("autoscaling", "v1", "Scale");

/// The structural schema (`openAPIV3Schema`) of a resource nestkube defines
/// by a CustomResourceDefinition (the VirtualCluster resource), built once.
fn crd_schema(r: &ResourceInfo) -> Option<&'static Value> {
    static SCHEMAS: std::sync::OnceLock<Vec<(String, String, String, Value)>> =
        std::sync::OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        let Ok(crd) = serde_json::to_value(nestkube_tenant_crds::crd()) else {
            return Vec::new();
        };
        let spec = &crd["spec"];
        let (group, kind) = (
            spec["group"].as_str().unwrap_or("").to_string(),
            spec["names"]["kind"].as_str().unwrap_or("").to_string(),
        );
        spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let schema = v["schema"]["openAPIV3Schema"].clone();
                (!schema.is_null()).then(|| {
                    (
                        group.clone(),
                        v["name"].as_str().unwrap_or("").to_string(),
                        kind.clone(),
                        schema,
                    )
                })
            })
            .collect()
    });
    schemas
        .iter()
        .find(|(g, v, k, _)| *g == r.group && *v == r.version && *k == r.kind)
        .map(|(_, _, _, s)| s)
}

/// Runs `$body` with `$t` bound to the [`Typing`] of `$ctx` (the OpenAPI
/// types of the resource, or deduced types without a schema).
macro_rules! with_typing {
    ($ctx:expr, $objects:expr, |$t:ident| $body:expr) => {{
        let r = $ctx.resource;
        let ignored = ignored(r, $ctx.subresource, $objects);
        // A custom resource's own schema, nestkube's CRD-defined API, or the
        // built-in OpenAPI (always for a Scale).
        let structural = if $ctx.is_scale() {
            None
        } else {
            r.custom
                .as_ref()
                .and_then(|c| c.schema.as_ref())
                .or_else(|| crd_schema(r))
        };
        let (group, version, kind) = $ctx.gvk();
        match (structural, $ctx.schema) {
            (Some(root), _) => {
                let types = ssa::schema::JsonSchemaTypes::new();
                let $t = &Typing {
                    resolver: &types,
                    root: Some(root),
                    ignored,
                };
                $body
            }
            (None, Some(schema)) => {
                let types = OpenApiTypes::new(schema);
                let root = types.root(group, version, kind);
                let $t = &Typing {
                    resolver: &types,
                    root,
                    ignored,
                };
                $body
            }
            (None, None) => {
                let $t = &Typing {
                    resolver: &ssa::Untyped,
                    root: None,
                    ignored,
                };
                $body
            }
        }
    }};
}

impl Context<'_> {
    fn subresource_name(&self) -> &str {
        self.subresource.unwrap_or("")
    }

    /// The objects are the resource's Scale.
    fn is_scale(&self) -> bool {
        self.subresource == Some("scale")
    }

    /// Group, version and kind of the objects.
    fn gvk(&self) -> (&str, &str, &str) {
        if self.is_scale() {
            SCALE_GVK
        } else {
            let r = self.resource;
            (&r.group, &r.version, &r.kind)
        }
    }

    /// `apiVersion` of the objects.
    fn api_version(&self) -> String {
        match self.gvk() {
            ("", v, _) => v.to_string(),
            (g, v, _) => format!("{g}/{v}"),
        }
    }
}

/// An `Update` by `manager` from `live` (None: a create) to `new` within
/// `managed`, as upstream's `managedFieldsUpdater` + `stripMetaManager`:
/// the fields the write changed join the manager's entry (time now), and
/// leave everyone else's.
fn update_managed<R: TypeResolver>(
    t: &Typing<'_, R>,
    live: &Value,
    new: &Value,
    api_version: &str,
    managed: &mut Managed,
    manager_id: &str,
) -> Result<(), ApplyError> {
    let mut fields = ssa::update(
        t,
        live,
        new,
        api_version,
        std::mem::take(&mut managed.fields),
        CURRENT_OPERATION,
    )?;
    if let Some(mut current) = fields.remove(CURRENT_OPERATION) {
        current.set = current.set.difference(&strip_set());
        if !current.set.is_empty() {
            let merged = match fields.remove(manager_id) {
                Some(prev) => prev.set.union(&current.set),
                None => current.set,
            };
            fields.insert(
                manager_id.to_string(),
                VersionedSet {
                    set: merged,
                    api_version: api_version.to_string(),
                    applied: false,
                },
            );
            managed
                .times
                .insert(manager_id.to_string(), Some(meta::now()));
        }
    }
    managed.fields = fields;
    managed
        .times
        .retain(|id, _| managed.fields.contains_key(id));
    Ok(())
}

/// Upstream's `capManagersManager`: at most ten `Update` entries; the
/// oldest merge into an `ancient-changes` entry per API version.
fn cap_update_managers(managed: &mut Managed) {
    let mut updaters: Vec<String> = managed
        .fields
        .iter()
        .filter(|(_, vs)| !vs.applied)
        .map(|(id, _)| id.clone())
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let secs = |id: &String| {
        managed
            .times
            .get(id)
            .cloned()
            .flatten()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0)
    };
    updaters.sort_by(|a, b| secs(a).cmp(&secs(b)).then_with(|| a.cmp(b)));
    let mut first_of_version: BTreeMap<String, String> = BTreeMap::new();
    let mut length = updaters.len();
    for id in updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let Some(vs) = managed.fields.get(&id).cloned() else {
            continue;
        };
        let time = managed.times.get(&id).cloned().flatten();
        let bucket = identifier(ANCIENT_CHANGES, false, &vs.api_version, "");
        match first_of_version.get(&vs.api_version) {
            Some(first) => {
                if !managed.fields.contains_key(&bucket)
                    && let Some(s) = managed.fields.remove(first)
                {
                    managed.fields.insert(bucket.clone(), s);
                }
                let merged = managed.fields[&bucket].set.union(&vs.set);
                managed.fields.insert(
                    bucket.clone(),
                    VersionedSet {
                        set: merged,
                        api_version: vs.api_version.clone(),
                        applied: false,
                    },
                );
                managed.fields.remove(&id);
                managed.times.insert(bucket, time);
                length -= 1;
            }
            None => {
                first_of_version.insert(vs.api_version.clone(), id);
            }
        }
    }
    managed
        .times
        .retain(|id, _| managed.fields.contains_key(id));
}

/// Records an `Update` (every create, update, patch and subresource write
/// that is not an apply): `new` gets the managedFields of `live` (or the
/// ones the client sent, on the main resource) with the changes owned by
/// `manager`. A client's `managedFields: []` clears them; an invalid list
/// falls back to the live object's. Objects that track no managed fields
/// (never written since, or cleared) stay untracked, as upstream.
pub fn record_update(ctx: &Context<'_>, live: Option<&Value>, new: &mut Value, manager: &str) {
    let live_fields = live
        .map(|l| l["metadata"]["managedFields"].clone())
        .unwrap_or(Value::Null);
    let sent = new
        .get("metadata")
        .and_then(|m| m.get("managedFields"))
        .cloned();
    let mut managed = if ctx.subresource.is_some() {
        decode(&live_fields).unwrap_or_default()
    } else {
        match &sent {
            // Upstream's isResetManagedFields: `[]` or `[{}]`.
            Some(Value::Array(a))
                if a.is_empty()
                    || (a.len() == 1 && a[0].as_object().is_some_and(Map::is_empty)) =>
            {
                meta::set(new, "managedFields", None);
                return;
            }
            Some(v) => match decode(v) {
                Ok(m) if !m.fields.is_empty() => m,
                _ => decode(&live_fields).unwrap_or_default(),
            },
            None => decode(&live_fields).unwrap_or_default(),
        }
    };
    meta::set(new, "managedFields", None);
    if managed.fields.is_empty() && live.is_some() {
        // skipNonAppliedManager: an existing untracked object stays so.
        return;
    }
    let empty = json!({});
    let live_plain = live.map(without_managed).unwrap_or_else(|| empty.clone());
    let api_version = ctx.api_version();
    let id = identifier(manager, false, &api_version, ctx.subresource_name());
    let result = with_typing!(ctx, &[&live_plain, new], |t| update_managed(
        t,
        &live_plain,
        new,
        &api_version,
        &mut managed,
        &id
    ));
    if result.is_err() {
        // An object the schema cannot walk keeps its previous ownership
        // (upstream's UpdateNoErrors logs and moves on).
        set_managed(new, &decode(&live_fields).unwrap_or_default());
        return;
    }
    cap_update_managers(&mut managed);
    set_managed(new, &managed);
}

/// Upstream's `ScaleHandler`: the entries of a resource as its `scale`
/// subresource sees them and back. An entry owning the resource's replicas
/// field is, through `scale`, an entry owning the Scale's `spec.replicas`;
/// whoever the scale write took the field from loses it in the resource.
pub struct ScaleFields {
    /// The resource's group (entries of its other versions map too).
    group: String,
    /// The resource's `apiVersion`.
    api_version: String,
    /// The replicas field (`spec.replicas`, or a CRD's `specReplicasPath`).
    replicas: Vec<PathElement>,
}

impl ScaleFields {
    /// The handler of `resource`, whose desired replicas are at `replicas`.
    pub fn new(resource: &ResourceInfo, replicas: &[&str]) -> Self {
        ScaleFields {
            group: resource.group.clone(),
            api_version: resource.api_version(),
            replicas: replicas.iter().map(|f| PathElement::field(f)).collect(),
        }
    }

    /// The replicas path of entries of `api_version` (`None`: a version
    /// the handler does not know; upstream skips or drops such entries).
    fn path(&self, api_version: &str) -> Option<&[PathElement]> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        (group == self.group).then_some(self.replicas.as_slice())
    }

    fn scale_path() -> [PathElement; 2] {
        [PathElement::field("spec"), PathElement::field("replicas")]
    }

    /// Upstream's `ToSubresource`: the resource's entries owning replicas,
    /// as entries of the Scale owning `spec.replicas`.
    pub fn to_scale(&self, parent: &Value) -> Result<Value, ApiError> {
        let parent = decode(parent).map_err(scale_fields_error)?;
        let mut out = Managed::default();
        for (id, vs) in &parent.fields {
            if self.path(&vs.api_version).is_some_and(|p| vs.set.has(p)) {
                let mut set = Set::new();
                set.insert(&Self::scale_path());
                out.fields.insert(
                    id.clone(),
                    VersionedSet {
                        set,
                        api_version: ssa_scale_api_version(),
                        applied: vs.applied,
                    },
                );
                out.times
                    .insert(id.clone(), parent.times.get(id).cloned().flatten());
            }
        }
        Ok(Value::Array(encode(&out)))
    }

    /// Upstream's `ToParent`: the resource's entries after a write of its
    /// Scale whose entries are now `scale`. An entry keeps replicas only if
    /// its manager still owns them in the Scale; a Scale manager new to
    /// them gets an entry of the resource's version owning the replicas
    /// field (with the time the resource's entries hold for it, as
    /// upstream's).
    pub fn to_parent(&self, parent: &Value, scale: &Value) -> Result<Value, ApiError> {
        let parent = decode(parent).map_err(scale_fields_error)?;
        let mut scale = decode(scale).map_err(scale_fields_error)?;
        let mut out = Managed::default();
        for (id, vs) in &parent.fields {
            let Some(path) = self.path(&vs.api_version) else {
                continue;
            };
            let time = parent.times.get(id).cloned().flatten();
            // Kept as is: no replicas, or its manager still owns them in
            // the Scale.
            if !vs.set.has(path) || scale.fields.remove(id).is_some() {
                out.fields.insert(id.clone(), vs.clone());
                out.times.insert(id.clone(), time);
            } else {
                let mut taken = Set::new();
                taken.insert(path);
                let set = vs.set.difference(&taken);
                if !set.is_empty() {
                    out.fields.insert(
                        id.clone(),
                        VersionedSet {
                            set,
                            api_version: vs.api_version.clone(),
                            applied: vs.applied,
                        },
                    );
                    out.times.insert(id.clone(), time);
                }
            }
        }
        for (id, vs) in scale.fields {
            if !vs.set.has(&Self::scale_path()) {
                continue;
            }
            let mut set = Set::new();
            set.insert(&self.replicas);
            out.times
                .insert(id.clone(), parent.times.get(&id).cloned().flatten());
            out.fields.insert(
                id,
                VersionedSet {
                    set,
                    api_version: self.api_version.clone(),
                    applied: vs.applied,
                },
            );
        }
        let encoded = encode(&out);
        Ok(if encoded.is_empty() {
            Value::Null
        } else {
            Value::Array(encoded)
        })
    }
}

/// `autoscaling/v1`.
fn ssa_scale_api_version() -> String {
    format!("{}/{}", SCALE_GVK.0, SCALE_GVK.1)
}

fn scale_fields_error(e: String) -> ApiError {
    ApiError::Internal(format!("failed to decode managed fields: {e}"))
}

/// Upstream's `printManager`: `"name"`, with the subresource and, for
/// updaters, the API version.
fn print_manager(id: &str) -> String {
    let v: Value = serde_json::from_str(id).unwrap_or(Value::Null);
    if !v.is_object() {
        return format!("{id:?}");
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut out = serde_json::to_string(&s("manager")).unwrap_or_default();
    if !s("subresource").is_empty() {
        out = format!(
            "{out} with subresource {}",
            serde_json::to_string(&s("subresource")).unwrap_or_default()
        );
    }
    if s("operation") == "Update" {
        out = format!("{out} using {}", s("apiVersion"));
    }
    out
}

/// Upstream's `NewConflictError`: 409 with one `FieldManagerConflict`
/// cause per field and the grouped message.
fn conflict_error(mut conflicts: Vec<ssa::Conflict>) -> ApiError {
    conflicts.sort_by(|a, b| a.manager.cmp(&b.manager).then_with(|| a.path.cmp(&b.path)));
    let causes = conflicts
        .iter()
        .map(|c| {
            (
                c.path.to_string(),
                format!("conflict with {}", print_manager(&c.manager)),
            )
        })
        .collect();
    let message = if let [c] = conflicts.as_slice() {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            print_manager(&c.manager),
            c.path
        )
    } else {
        let mut lines = Vec::new();
        let mut last: Option<&str> = None;
        for c in &conflicts {
            if last != Some(c.manager.as_str()) {
                lines.push(format!("conflicts with {}:", print_manager(&c.manager)));
                last = Some(&c.manager);
            }
            lines.push(format!("- {}", c.path));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::ApplyConflict { message, causes }
}

fn apply_error(gvk: &str, e: ApplyError) -> ApiError {
    match e {
        ApplyError::Conflicts(c) => conflict_error(c),
        ApplyError::Invalid(msg) => ApiError::Other {
            code: 500,
            reason: "",
            message: format!("failed to create typed patch object ({gvk}): {msg}"),
            causes: Vec::new(),
        },
    }
}

/// The fields of the live object that still hold what `kubectl`'s
/// client-side apply last applied (upstream's
/// `allowedConflictsFromLastApplied`).
fn allowed_from_last_applied<R: TypeResolver>(t: &Typing<'_, R>, live: &Value) -> Option<Set> {
    let text = live["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    if text.is_empty() {
        return None;
    }
    let last: Value = serde_json::from_str(text).ok()?;
    let set = ssa::typed::to_field_set(t.resolver, t.root, &last).ok()?;
    let cmp = ssa::typed::compare(t.resolver, t.root, &last, live).ok()?;
    Some(set.difference(&cmp.modified))
}

/// The apply with `kubectl`'s upgrade from client-side apply: conflicts on
/// fields the live object holds as last applied client-side are taken
/// (upstream's `lastAppliedManager`).
#[allow(clippy::too_many_arguments)]
fn apply_with_upgrade<R: TypeResolver>(
    t: &Typing<'_, R>,
    live: &Value,
    config: &Value,
    api_version: &str,
    managed: &Managed,
    manager: &str,
    id: &str,
    force: bool,
) -> Result<ssa::Applied, ApplyError> {
    let run = |force| {
        ssa::apply(
            t,
            live,
            config,
            api_version,
            managed.fields.clone(),
            id,
            force,
        )
    };
    match run(force) {
        Err(ApplyError::Conflicts(conflicts)) if manager == "kubectl" => {
            let Some(allowed) = allowed_from_last_applied(t, live) else {
                return Err(ApplyError::Conflicts(conflicts));
            };
            let remaining: Vec<ssa::Conflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.has(&c.path.0))
                .collect();
            if remaining.is_empty() {
                run(true)
            } else {
                Err(ApplyError::Conflicts(remaining))
            }
        }
        other => other,
    }
}

/// The typed part of [`apply`]: an existing object that tracks no fields
/// first gives what it holds to `before-first-apply` (upstream's
/// `skipNonAppliedManager`), then the configuration is applied.
#[allow(clippy::too_many_arguments)]
fn apply_typed<R: TypeResolver>(
    t: &Typing<'_, R>,
    exists: bool,
    live: &Value,
    config: &Value,
    api_version: &str,
    managed: &mut Managed,
    manager: &str,
    id: &str,
    force: bool,
) -> Result<ssa::Applied, ApplyError> {
    if managed.fields.is_empty() && exists {
        let before = identifier(BEFORE_FIRST_APPLY, false, api_version, "");
        update_managed(t, &json!({}), live, api_version, managed, &before)?;
    }
    apply_with_upgrade(t, live, config, api_version, managed, manager, id, force)
}

/// Upstream's `buildLastApplied`: the applied configuration without the
/// annotation itself, as JSON.
fn build_last_applied(config: &Value) -> String {
    let mut c = config.clone();
    if let Some(a) = c
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(Value::as_object_mut)
    {
        a.remove(LAST_APPLIED);
        if a.is_empty()
            && let Some(m) = c["metadata"].as_object_mut()
        {
            m.remove("annotations");
        }
    }
    format!("{}\n", ssa::fieldpath::canonical(&c))
}

/// A server-side apply of `config` by `manager` to `live` (`None`: the
/// object does not exist and is created): the merged object with its new
/// managedFields, or the live object unchanged when the apply changes
/// nothing. Errors are upstream's: 400 for a wrong type or managedFields
/// in the configuration, 409 with causes for conflicts.
pub fn apply(
    ctx: &Context<'_>,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let api_version = ctx.api_version();
    let (group, version, kind) = ctx.gvk();
    let (cfg_av, cfg_kind) = (
        config["apiVersion"].as_str().unwrap_or(""),
        config["kind"].as_str().unwrap_or(""),
    );
    if cfg_av != api_version || cfg_kind != kind {
        let (g, v) = cfg_av.rsplit_once('/').unwrap_or(("", cfg_av));
        return Err(ApiError::BadRequest(format!(
            "invalid object type: {g}/{v}, Kind={cfg_kind}"
        )));
    }
    if !config["metadata"]["managedFields"].is_null() {
        return Err(ApiError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let gvk = format!("{group}/{version}, Kind={kind}");
    let mut managed = match live {
        Some(l) => decode(&l["metadata"]["managedFields"])
            .map_err(|e| ApiError::Internal(format!("failed to decode managed fields: {e}")))?,
        None => Managed::default(),
    };
    let empty = json!({});
    let live_plain = live.map(without_managed).unwrap_or_else(|| empty.clone());
    let id = identifier(manager, true, &api_version, ctx.subresource_name());
    let applied = with_typing!(ctx, &[&live_plain, config], |t| apply_typed(
        t,
        live.is_some(),
        &live_plain,
        config,
        &api_version,
        &mut managed,
        manager,
        &id,
        force
    ))
    .map_err(|e| apply_error(&gvk, e))?;
    managed.fields = applied.managers;
    // stripMetaManager: nobody owns apiVersion, kind, name, namespace...
    if let Some(vs) = managed.fields.get_mut(&id) {
        vs.set = vs.set.difference(&strip_set());
        if vs.set.is_empty() {
            managed.fields.remove(&id);
        }
    }
    managed.times.retain(|k, _| managed.fields.contains_key(k));
    let mut object = match applied.object {
        Some(o) => {
            managed.times.insert(id.clone(), Some(meta::now()));
            o
        }
        None => live_plain,
    };
    // lastAppliedUpdater: kubectl's server-side apply keeps a client-side
    // apply annotation it finds in step, so a later client-side apply works.
    if manager == "kubectl"
        && object["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .is_some()
    {
        object["metadata"]["annotations"][LAST_APPLIED] = build_last_applied(config).into();
    }
    set_managed(&mut object, &managed);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_from_user_agent() {
        assert_eq!(
            manager_or_user_agent(None, Some("kubectl/v1.31.0 (linux/amd64) kubernetes/abc")),
            "kubectl"
        );
        assert_eq!(manager_or_user_agent(Some("m"), Some("kubectl/v1")), "m");
        assert_eq!(manager_or_user_agent(Some(""), None), "");
        assert_eq!(
            manager_or_user_agent(None, Some(&"x".repeat(300))).len(),
            128
        );
    }

    #[test]
    fn identifiers_and_printing() {
        let id = identifier("kubectl", false, "v1", "");
        assert_eq!(
            id,
            r#"{"manager":"kubectl","operation":"Update","apiVersion":"v1"}"#
        );
        assert_eq!(print_manager(&id), r#""kubectl" using v1"#);
        let id = identifier("m", true, "apps/v1", "status");
        assert_eq!(
            id,
            r#"{"manager":"m","operation":"Apply","subresource":"status"}"#
        );
        assert_eq!(print_manager(&id), r#""m" with subresource "status""#);
    }

    #[test]
    fn entries_round_trip_in_upstream_order() {
        let list = json!([
            {"manager": "b", "operation": "Update", "apiVersion": "v1", "time": "2024-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {".": {}, "f:x": {}}}},
            {"manager": "a", "operation": "Apply", "apiVersion": "v1", "time": "2024-01-02T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:y": {}}}},
        ]);
        let m = decode(&list).unwrap();
        let out = encode(&m);
        assert_eq!(out[0]["manager"], "a");
        assert_eq!(out[1], list[0]);
        assert!(
            decode(&json!([{"manager": "x", "operation": "Update", "fieldsType": "FieldsV2"}]))
                .is_err()
        );
    }

    #[test]
    fn scale_entries_map_replicas_both_ways() {
        let catalog = crate::catalog::Catalog::builtin().unwrap();
        let r = catalog.get("apps", "v1", "deployments").unwrap();
        let fields = ScaleFields::new(r, &["spec", "replicas"]);
        let parent = json!([
            {"manager": "author", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}},
            {"manager": "other", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
        ]);
        let scale = fields.to_scale(&parent).unwrap();
        assert_eq!(
            scale,
            json!([{"manager": "author", "operation": "Apply", "apiVersion": "autoscaling/v1",
                    "time": "2024-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}}}])
        );
        // Kept by its owner: unchanged.
        assert_eq!(fields.to_parent(&parent, &scale).unwrap(), parent);
        // Taken by a scale updater: the author keeps the rest, the updater
        // owns the replicas of the object's version.
        let taken = json!([{"manager": "s", "operation": "Update", "apiVersion": "autoscaling/v1",
                            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                            "subresource": "scale"}]);
        let out = fields.to_parent(&parent, &taken).unwrap();
        let find = |m: &str| {
            out.as_array()
                .unwrap()
                .iter()
                .find(|e| e["manager"] == m)
                .cloned()
                .unwrap()
        };
        assert_eq!(
            find("author")["fieldsV1"],
            json!({"f:spec": {"f:paused": {}}})
        );
        assert_eq!(
            find("s"),
            json!({"manager": "s", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"})
        );
    }
}
