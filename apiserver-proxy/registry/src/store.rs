//! The generic store: create, get, list, update, patch and delete for every
//! resource, after `k8s.io/apiserver`'s `registry/generic/registry/store.go`.
//!
//! Objects are JSON. Keys are scoped by cluster at this lowest layer
//! (`/<cluster>/<group>/<resource>/[<namespace>/]<name>`), so nothing above can
//! read across virtual clusters by mistake. `metadata.resourceVersion` is never
//! stored: it is the storage revision, injected on every read.
//! Per-type behaviour comes only from the resource's [`Strategy`]; this module
//! knows no resource by name except namespaces (for namespace lifecycle).
//! Every create and every removal from storage passes the
//! [`ObjectLimits`] hook it is given, whoever writes. Custom resources of a
//! CRD converted by webhook change version through the [`Converter`] hook
//! it is given, wherever the stored and the wanted version differ (reads,
//! watches, writes at a version that is not the storage version).

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use nestkube_storage::{KeyValue, ListOptions as StorageList, Storage, StorageError};
use serde_json::{Value, json};

use super::admission_hook::{
    AdmissionHook, AdmissionRequest, AdmittedWrite, Operation, ReadOnlyStore,
};
use super::catalog::ResourceInfo;
use super::conversion_hook::{ConversionError, ConversionRequest, Converter, gvk_string};
use super::keys;
use super::managed_fields::{self, FieldSchema};
use super::meta;
use super::object_limits::{NewObject, ObjectLimits};
use super::selector::{FieldSelector, LabelSelector};
use super::strategy::Strategy;
use super::typed;
use super::validation;
use crate::error::{ApiError, FieldError, Subject};

/// Namespaces that may not be deleted (upstream's NamespaceLifecycle admission).
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// `?fieldValidation=`: what to do with unknown fields in a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop silently.
    Ignore,
    /// Drop and report in `Warning` headers (the default).
    #[default]
    Warn,
    /// Reject with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter.
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::BadRequest(format!(
                "fieldValidation parameter unsupported: {other}. Supported values: Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Options of every write.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// `?dryRun=All`: run everything but the storage write.
    pub dry_run: bool,
    /// `?fieldValidation=`.
    pub field_validation: FieldValidation,
    /// A create counted against the cluster's object limits but never
    /// refused by them (the bootstrap of a cluster's default namespaces;
    /// never set from a request).
    pub exempt_from_limits: bool,
    /// The body is the result of a server-side apply and carries its own
    /// `managedFields` ([`managed_fields::apply`]); the store records no
    /// `Update` for it.
    pub applied: bool,
}

/// What a request addresses: a cluster, a resource and, for namespaced
/// resources, a namespace (`None` = all namespaces, for list and watch).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// Virtual cluster path (`root`, `team-a`, `team-a:dev`).
    pub cluster: &'a str,
    /// The resource.
    pub resource: &'a ResourceInfo,
    /// Namespace for namespaced resources.
    pub namespace: Option<&'a str>,
}

impl Target<'_> {
    /// The namespace part of keys: only for namespaced resources.
    fn key_namespace(&self) -> Option<&str> {
        self.namespace.filter(|_| self.resource.namespaced)
    }

    /// The storage key of object `name` of the target.
    pub fn key(&self, name: &str) -> String {
        keys::object_key(
            self.cluster,
            &self.resource.storage_segment,
            self.key_namespace(),
            name,
        )
    }

    /// The storage prefix covering the target.
    pub fn prefix(&self) -> String {
        keys::collection_prefix(
            self.cluster,
            &self.resource.storage_segment,
            self.key_namespace(),
        )
    }

    fn subject(&self, name: &str) -> Subject {
        Subject {
            group: self.resource.group.clone(),
            kind: self.resource.resource.clone(),
            name: name.to_string(),
        }
    }

    fn kind_subject(&self, name: &str) -> Subject {
        Subject {
            group: self.resource.group.clone(),
            kind: self.resource.kind.clone(),
            name: name.to_string(),
        }
    }
}

/// A successful write.
#[derive(Debug)]
pub struct Written {
    /// The object as stored (with its new resourceVersion).
    pub object: Value,
    /// `Warning` header texts (unknown fields with fieldValidation=Warn).
    pub warnings: Vec<String>,
    /// True when the write created the object.
    pub created: bool,
}

/// The outcome of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// Deletion is pending (graceful, finalizers, namespace content).
    Pending(Value),
}

/// `DeleteOptions` as far as the store acts on them.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// `propagationPolicy`: `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// List parameters.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
    /// `limit` (0 = none).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
}

/// A page of a list.
#[derive(Debug)]
pub struct ListPage {
    /// Matching objects, each with its resourceVersion.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: u64,
    /// Token for the next page, if more remain.
    pub continue_token: Option<String>,
    /// Upstream's `remainingItemCount` (only for unfiltered lists).
    pub remaining: Option<u64>,
}

/// The generic store over one storage backend, shared by all clusters.
#[derive(Clone)]
pub struct Store {
    storage: Arc<dyn Storage>,
    /// The admission chain every create, update and delete passes through
    /// (none: everything admitted, e.g. in store-only tests).
    admission: Option<Arc<dyn AdmissionHook>>,
    /// Counts (and bounds) every create and removal (none: nothing counted).
    object_limits: Option<Arc<dyn ObjectLimits>>,
    /// The types `managedFields` are computed with (none: deduced from values).
    field_schema: Option<FieldSchema>,
    /// Converts custom resources of CRDs converted by webhook (none: such
    /// objects cannot be read or written at another version).
    converter: Option<Arc<dyn Converter>>,
}

/// Decodes a stored value (adding `metadata.resourceVersion`).
pub fn decode_stored(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("corrupt object {}: {e}", kv.key)))?;
    meta::set(
        &mut obj,
        "resourceVersion",
        Some(kv.mod_revision.to_string().into()),
    );
    Ok(obj)
}

/// Decodes a stored object of `r` as `r`'s version presents it: a custom
/// resource stored at another version of its CRD gets this version's
/// apiVersion (upstream's conversion strategy `None`). One whose CRD
/// converts by webhook keeps its stored version: [`Store::convert`] (or a
/// read of the store, which calls it) brings it to `r`'s.
pub fn decode_for(r: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
    let mut obj = decode_stored(kv)?;
    if r.custom.as_ref().is_some_and(|c| c.conversion.is_none()) {
        obj["apiVersion"] = r.api_version().into();
    }
    Ok(obj)
}

/// A stored object that could not be converted for a read, worded as
/// upstream's storage reports an object its codec cannot decode (a 500;
/// the key is upstream's, without the cluster).
pub fn undecodable(
    r: &ResourceInfo,
    stored: &Value,
    revision: u64,
    e: &ConversionError,
) -> ApiError {
    let ns = meta::namespace(stored);
    let key = if ns.is_empty() {
        format!("/{}/{}/{}", r.group, r.resource, meta::name(stored))
    } else {
        format!("/{}/{}/{ns}/{}", r.group, r.resource, meta::name(stored))
    };
    ApiError::Internal(format!(
        "StorageError: corrupt object, Code: 7, Key: {key}, ResourceVersion: 0, AdditionalErrorMsg: object not decodable revision={revision}: {e}"
    ))
}

/// A conversion that failed while a write was prepared: upstream's 500
/// with the converter's own words (no reason).
fn conversion_failed(message: String) -> ApiError {
    ApiError::Other {
        code: 500,
        reason: "",
        message,
        causes: Vec::new(),
    }
}

/// Encodes an object of `r` for storage: a custom resource is written at
/// its CRD's storage version.
fn encode_for(r: &ResourceInfo, obj: &Value) -> Result<Bytes, ApiError> {
    match &r.custom {
        Some(c) if !c.storage_version.is_empty() && c.storage_version != r.version => {
            let mut copy = obj.clone();
            copy["apiVersion"] = format!("{}/{}", r.group, c.storage_version).into();
            encode_for_storage(&copy)
        }
        _ => encode_for_storage(obj),
    }
}

fn encode_for_storage(obj: &Value) -> Result<Bytes, ApiError> {
    // What is written must read back: `decode_stored`'s JSON reader refuses
    // documents nested deeper (and a stored one would fail every LIST).
    if !nestkube_patch::depth_within(obj, nestkube_patch::MAX_DOCUMENT_DEPTH) {
        return Err(ApiError::BadRequest(format!(
            "the object nests deeper than {} levels",
            nestkube_patch::MAX_DOCUMENT_DEPTH
        )));
    }
    let mut copy = obj.clone();
    meta::set(&mut copy, "resourceVersion", None);
    serde_json::to_vec(&copy)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

fn parse_rv(s: &str, what: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| ApiError::BadRequest(format!("invalid {what}: {s:?}")))
}

/// Checks apiVersion/kind against the resource and runs the typed decode with
/// field validation. Returns the decoded object and warnings.
pub fn decode_body(
    r: &ResourceInfo,
    group: &str,
    version: &str,
    kind: &str,
    mut body: Value,
    fv: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let Some(map) = body.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    };
    let expected_av = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    // As upstream's decoder: a body without kind/apiVersion takes them from the URL.
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), kind.into());
        }
        Some(k) if k != kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({kind}) for {}",
                r.qualified_resource()
            )));
        }
        _ => {}
    }
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), expected_av.clone().into());
        }
        Some(av) if av == expected_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected_av})"
            )));
        }
    }
    let decoded = match typed::codec(group, version, kind) {
        Some(codec) => codec(body.clone()),
        None => r.codec.decode(body.clone()),
    }
    .map_err(|e| {
        ApiError::BadRequest(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))
    })?;
    let unknown = if fv == FieldValidation::Ignore {
        Vec::new()
    } else {
        typed::unknown_fields(&body, &decoded)
    };
    match fv {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::BadRequest(format!(
            "{}strict decoding error: {}",
            // Upstream's unstructured decoder names the kind for custom resources.
            if r.custom.is_some() {
                format!("{kind} in version \"{version}\" cannot be handled as a {kind}: ")
            } else {
                String::new()
            },
            unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Ok((
            decoded,
            unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect(),
        )),
    }
}

impl Store {
    /// A store over `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            admission: None,
            object_limits: None,
            field_schema: None,
            converter: None,
        }
    }

    /// This store with custom resources of CRDs converted by webhook
    /// converted by `converter` (set it before the store is cloned).
    pub fn with_converter(mut self, converter: Arc<dyn Converter>) -> Self {
        self.converter = Some(converter);
        self
    }

    /// Brings `objects` of `t`'s resource to `api_version`, as upstream's
    /// converter: objects already there are left alone (and never sent);
    /// for a CRD converting by webhook the others go in one review; with
    /// `strategy: None` only their apiVersion changes. Built-ins are left
    /// alone. No lock is held while the webhook is called.
    pub async fn convert(
        &self,
        t: &Target<'_>,
        objects: &mut [Value],
        api_version: &str,
    ) -> Result<(), ConversionError> {
        let r = t.resource;
        let Some(custom) = &r.custom else {
            return Ok(());
        };
        let pending: Vec<usize> = (0..objects.len())
            .filter(|&i| objects[i]["apiVersion"].as_str() != Some(api_version))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let Some(webhook) = &custom.conversion else {
            for i in pending {
                objects[i]["apiVersion"] = api_version.into();
            }
            return Ok(());
        };
        let gvk = gvk_string(&objects[pending[0]]);
        let Some(converter) = &self.converter else {
            return Err(ConversionError(format!(
                "conversion webhook for {gvk} failed: this server calls no conversion webhooks"
            )));
        };
        let batch = pending.iter().map(|&i| objects[i].clone()).collect();
        let request = ConversionRequest {
            cluster: t.cluster,
            resource: r,
            webhook,
            desired_api_version: api_version,
        };
        let converted = converter.convert(request, batch).await?;
        if converted.len() != pending.len() {
            return Err(ConversionError(format!(
                "conversion webhook for {gvk} returned {} objects, expected {}",
                converted.len(),
                pending.len()
            )));
        }
        for (i, obj) in pending.into_iter().zip(converted) {
            objects[i] = obj;
        }
        Ok(())
    }

    /// Decodes stored objects of `t` at `t`'s version, converting those
    /// stored at another (one review for the batch). A failed conversion
    /// is upstream's undecodable object.
    pub async fn decode_all(
        &self,
        t: &Target<'_>,
        kvs: &[&KeyValue],
    ) -> Result<Vec<Value>, ApiError> {
        let mut objects = kvs
            .iter()
            .map(|kv| decode_for(t.resource, kv))
            .collect::<Result<Vec<_>, _>>()?;
        let want = t.resource.api_version();
        if let Err(e) = self.convert(t, &mut objects, &want).await {
            // Name the first object that needed converting, as upstream
            // (which decodes one object at a time) would.
            let (kv, obj) = kvs
                .iter()
                .zip(&objects)
                .find(|(_, o)| o["apiVersion"].as_str() != Some(want.as_str()))
                .unwrap_or((&kvs[0], &objects[0]));
            return Err(undecodable(t.resource, obj, kv.mod_revision, &e));
        }
        Ok(objects)
    }

    /// `obj` (at `t`'s version) as it is stored: at its CRD's storage
    /// version when a webhook converts it (`None`: store `obj` itself;
    /// [`encode_for`] rewrites the apiVersion of `strategy: None`).
    async fn at_storage_version(
        &self,
        t: &Target<'_>,
        obj: &Value,
    ) -> Result<Option<Value>, ApiError> {
        let r = t.resource;
        match &r.custom {
            Some(c)
                if c.conversion.is_some()
                    && !c.storage_version.is_empty()
                    && c.storage_version != r.version =>
            {
                let mut objects = [obj.clone()];
                self.convert(
                    t,
                    &mut objects,
                    &format!("{}/{}", r.group, c.storage_version),
                )
                .await
                .map_err(|e| conversion_failed(e.0))?;
                let [stored] = objects;
                Ok(Some(stored))
            }
            _ => Ok(None),
        }
    }

    /// The answer of a dry-run write: `obj` converted to the storage version
    /// and back, as upstream's dry-run storage encodes and decodes what it
    /// would have written (a failing conversion webhook fails it too).
    async fn dry_run_round_trip(&self, t: &Target<'_>, obj: Value) -> Result<Value, ApiError> {
        match self.at_storage_version(t, &obj).await? {
            Some(stored) => {
                let revision = meta::resource_version(&obj).parse().unwrap_or(0);
                self.read_back(t, stored, revision).await
            }
            None => Ok(obj),
        }
    }

    /// The answer of a write whose object was stored converted (`stored`,
    /// with its new resourceVersion): the stored object read back at
    /// `t`'s version, as upstream decodes what it wrote.
    async fn read_back(
        &self,
        t: &Target<'_>,
        stored: Value,
        revision: u64,
    ) -> Result<Value, ApiError> {
        let mut objects = [stored];
        if let Err(e) = self
            .convert(t, &mut objects, &t.resource.api_version())
            .await
        {
            return Err(undecodable(t.resource, &objects[0], revision, &e));
        }
        let [obj] = objects;
        Ok(obj)
    }

    /// This store with field ownership (`managedFields`) computed from the
    /// types of `schema` (set it before the store is cloned).
    pub fn with_field_schema(mut self, schema: Option<FieldSchema>) -> Self {
        self.field_schema = schema;
        self
    }

    /// The schema field ownership is computed with.
    pub fn field_schema(&self) -> Option<&FieldSchema> {
        self.field_schema.as_ref()
    }

    /// The `managedFields` step of every write (upstream's field manager
    /// `Update`): unless the body is an apply result, `obj` gets `old`'s
    /// (or the client's) entries with the request's manager owning what it
    /// changed.
    fn record_managed_fields(
        &self,
        t: &Target<'_>,
        subresource: Option<&str>,
        old: Option<&Value>,
        obj: &mut Value,
        applied: Option<Value>,
    ) {
        if let Some(fields) = applied {
            meta::set(obj, "managedFields", (!fields.is_null()).then_some(fields));
            return;
        }
        let ctx = managed_fields::Context {
            schema: self.field_schema.as_deref(),
            resource: t.resource,
            subresource,
        };
        managed_fields::record_update(&ctx, old, obj, &managed_fields::current_manager());
    }

    /// This store with every create counted (and bounded) by `limits` and
    /// every removal reported to it (set it before the store is cloned).
    pub fn with_object_limits(mut self, limits: Arc<dyn ObjectLimits>) -> Self {
        self.object_limits = Some(limits);
        self
    }

    /// Tells the object limits that an object of `t` left storage.
    fn removed(&self, t: &Target<'_>) {
        if let Some(l) = &self.object_limits {
            l.removed(t.cluster, &t.resource.group, &t.resource.resource);
        }
    }

    /// This store with `admission` run on every write (set it before the
    /// store is cloned into the server and controllers).
    pub fn with_admission(mut self, admission: Arc<dyn AdmissionHook>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// The admission hook, if any.
    pub fn admission(&self) -> Option<&Arc<dyn AdmissionHook>> {
        self.admission.as_ref()
    }

    /// A read-only view of this store (for admission and other judges).
    pub fn read_only(&self) -> ReadOnlyStore<'_> {
        ReadOnlyStore::new(self)
    }

    /// Starts admitting a write to `t`, if the store has admission.
    fn admit<'a>(
        &'a self,
        t: &Target<'a>,
        name: &'a str,
        subresource: Option<&'a str>,
        operation: Operation,
        dry_run: bool,
    ) -> Option<Box<dyn AdmittedWrite + 'a>> {
        self.admission.as_ref().map(|a| {
            a.begin(AdmissionRequest {
                target: *t,
                name,
                subresource,
                operation,
                dry_run,
            })
        })
    }

    /// Admits a connection to `name`'s `subresource` (`exec`, `attach`,
    /// `portforward`, `proxy`): upstream's `CONNECT` admission, both phases,
    /// with the request's options (`PodExecOptions`, ...) as the object.
    /// Returns the warnings the chain added.
    pub async fn admit_connect(
        &self,
        t: &Target<'_>,
        name: &str,
        subresource: &str,
        options: &mut Value,
    ) -> Result<Vec<String>, ApiError> {
        let Some(a) = self.admit(t, name, Some(subresource), Operation::Connect, false) else {
            return Ok(Vec::new());
        };
        a.mutate(options, None, &self.read_only()).await?;
        a.validate(options, None, &self.read_only()).await?;
        Ok(a.take_warnings())
    }

    /// The storage backend (for watches).
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// GET one object.
    pub async fn get(&self, t: &Target<'_>, name: &str) -> Result<Value, ApiError> {
        match self.storage.get(&t.key(name)).await? {
            Some(kv) => Ok(self.decode_all(t, &[&kv]).await?.pop().unwrap_or_default()),
            None => Err(ApiError::NotFound(t.subject(name))),
        }
    }

    async fn get_kv(&self, t: &Target<'_>, name: &str) -> Result<KeyValue, ApiError> {
        self.storage
            .get(&t.key(name))
            .await?
            .ok_or_else(|| ApiError::NotFound(t.subject(name)))
    }

    /// Namespace lifecycle admission: the namespace must exist and not be terminating.
    async fn check_namespace(&self, t: &Target<'_>) -> Result<(), ApiError> {
        let Some(ns) = t.namespace.filter(|_| t.resource.namespaced) else {
            return Ok(());
        };
        let key = keys::object_key(t.cluster, "core/namespaces", None, ns);
        match self.storage.get(&key).await? {
            None => Err(ApiError::NotFound(Subject {
                group: String::new(),
                kind: "namespaces".into(),
                name: ns.into(),
            })),
            Some(kv) => {
                let obj = decode_stored(&kv)?;
                if obj["status"]["phase"] == "Terminating" || meta::is_deleting(&obj) {
                    Err(ApiError::Forbidden(format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        t.resource.qualified_resource(),
                        meta::name(&obj)
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Puts the URL's namespace into the object (or rejects a different one).
    fn place(&self, t: &Target<'_>, obj: &mut Value) -> Result<(), ApiError> {
        if t.resource.namespaced {
            let ns = t.namespace.unwrap_or("");
            let body_ns = meta::namespace(obj);
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            meta::set(obj, "namespace", Some(ns.into()));
        } else {
            meta::set(obj, "namespace", None);
        }
        Ok(())
    }

    fn validate(&self, t: &Target<'_>, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let s: &dyn Strategy = t.resource.strategy.as_ref();
        let mut errors =
            validation::validate_object_meta(obj, t.resource.namespaced, s.name_rule());
        match old {
            None => errors.extend(s.validate(obj)),
            Some(old) => {
                errors.extend(validation::validate_object_meta_update(obj, old));
                errors.extend(s.validate_update(obj, old));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid {
                subject: t.kind_subject(meta::name(obj)),
                errors,
            })
        }
    }

    /// POST: create an object from a decoded body.
    pub async fn create(
        &self,
        t: &Target<'_>,
        body: Value,
        opts: WriteOptions,
    ) -> Result<Written, ApiError> {
        let r = t.resource;
        let (mut obj, mut warnings) = decode_body(
            r,
            &r.group,
            &r.version,
            &r.kind,
            body,
            opts.field_validation,
        )?;
        self.place(t, &mut obj)?;
        // Admission names a generated object by its prefix, as upstream
        // (where it runs before the name is generated).
        let mut admission_name = meta::name(&obj).to_string();
        if meta::name(&obj).is_empty() {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    admission_name = prefix.to_string();
                    let name = format!("{prefix}{}", meta::random_suffix());
                    meta::set(&mut obj, "name", Some(name.into()));
                }
                _ => {
                    return Err(ApiError::invalid(
                        t.kind_subject(""),
                        FieldError::required("metadata.name", "name or generateName is required"),
                    ));
                }
            }
        }
        if !meta::resource_version(&obj).is_empty() {
            return Err(ApiError::BadRequest(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        self.check_namespace(t).await?;
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            meta::set(&mut obj, field, None);
        }
        meta::set(&mut obj, "uid", Some(meta::new_uid().into()));
        meta::set(&mut obj, "creationTimestamp", Some(meta::now().into()));
        let strategy = &r.strategy;
        strategy.default(&mut obj);
        let applied = opts
            .applied
            .then(|| obj["metadata"]["managedFields"].clone());
        self.record_managed_fields(t, None, None, &mut obj, applied);
        let admitted = self.admit(t, &admission_name, None, Operation::Create, opts.dry_run);
        if let Some(a) = &admitted {
            a.mutate(&mut obj, None, &self.read_only()).await?;
        }
        if r.has_status()
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        strategy.prepare_for_create(&mut obj);
        // Upstream defaults again when the stored object is decoded (also for
        // dry-run responses), so defaults derived from what PrepareForCreate
        // set (a Job's labels from its generated selector) appear.
        strategy.default(&mut obj);
        if strategy.tracks_generation() {
            meta::set(&mut obj, "generation", Some(1.into()));
        }
        self.validate(t, &obj, None)?;
        if let Some(a) = &admitted {
            a.validate(&obj, None, &self.read_only()).await?;
            warnings.extend(a.take_warnings());
        }
        // Counted after validation and admission, as upstream's quota
        // admission; held until the object is stored (a dry run only checks).
        let reservation = match &self.object_limits {
            Some(l) => {
                let subject = format!("{} {admission_name:?}", r.qualified_resource());
                l.reserve(&NewObject {
                    cluster: t.cluster,
                    group: &r.group,
                    resource: &r.resource,
                    subject: &subject,
                    exempt: opts.exempt_from_limits,
                })
                .await?
            }
            None => None,
        };
        if opts.dry_run {
            return Ok(Written {
                object: self.dry_run_round_trip(t, obj).await?,
                warnings,
                created: true,
            });
        }
        // Held until the object is stored (a Service's cluster IP).
        let _hold = strategy
            .begin_create(self.storage.as_ref(), t.cluster, &mut obj)
            .await?;
        let name = meta::name(&obj).to_string();
        let stored = self.at_storage_version(t, &obj).await?;
        let kv = match self
            .storage
            .create(
                &t.key(&name),
                encode_for(r, stored.as_ref().unwrap_or(&obj))?,
            )
            .await
        {
            Ok(kv) => kv,
            Err(StorageError::AlreadyExists { .. }) => {
                return Err(ApiError::AlreadyExists(t.subject(&name)));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(slot) = reservation {
            slot.commit();
        }
        if let Some(stored) = stored {
            obj = self.read_back(t, stored, kv.mod_revision).await?;
        }
        meta::set(
            &mut obj,
            "resourceVersion",
            Some(kv.mod_revision.to_string().into()),
        );
        Ok(Written {
            object: obj,
            warnings,
            created: true,
        })
    }

    /// The read-modify-write loop behind update, patch and the status and
    /// scale subresources (upstream's `GuaranteedUpdate`). `mutate` gets the
    /// current object and returns the desired one (a decoded body); a
    /// resourceVersion in it must match the current one, else 409. Storage
    /// conflicts from concurrent writers are retried when the caller did not
    /// pin a resourceVersion.
    pub async fn update_with<F>(
        &self,
        t: &Target<'_>,
        name: &str,
        subresource: Option<&str>,
        opts: WriteOptions,
        mut mutate: F,
    ) -> Result<Written, ApiError>
    where
        F: FnMut(&Value) -> Result<(Value, Vec<String>), ApiError>,
    {
        let r = t.resource;
        loop {
            let kv = self.get_kv(t, name).await?;
            // The current object at the request's version, before the
            // patch or strategy sees it (upstream's storage decodes it so).
            let mut old = [decode_for(r, &kv)?];
            self.convert(t, &mut old, &r.api_version())
                .await
                .map_err(|e| {
                    conversion_failed(format!(
                        "object not decodable revision={}: {e}",
                        kv.mod_revision
                    ))
                })?;
            let [old] = old;
            let (mut obj, mut warnings) = mutate(&old)?;
            let body_name = meta::name(&obj).to_string();
            if body_name.is_empty() {
                meta::set(&mut obj, "name", Some(name.into()));
            } else if body_name != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            self.place(t, &mut obj)?;
            let applied = opts
                .applied
                .then(|| obj["metadata"]["managedFields"].clone());
            let current_rv = kv.mod_revision.to_string();
            let body_rv = meta::resource_version(&obj).to_string();
            if !body_rv.is_empty() && body_rv != current_rv {
                return Err(ApiError::Conflict {
                    subject: t.subject(name),
                    message: "the object has been modified; please apply your changes to the latest version and try again"
                        .into(),
                });
            }
            let body_uid = meta::uid(&obj);
            if !body_uid.is_empty() && body_uid != meta::uid(&old) {
                return Err(ApiError::Conflict {
                    subject: t.subject(name),
                    message: format!(
                        "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {}",
                        meta::uid(&old)
                    ),
                });
            }
            let mut obj = match subresource {
                Some("status") => {
                    // ResetObjectMetaForStatus: only status changes.
                    let mut merged = old.clone();
                    merged["status"] = obj.get("status").cloned().unwrap_or(json!({}));
                    merged
                }
                Some("binding") => {
                    // pods/binding ([`crate::binding`]): only the node, the
                    // annotations and conditions the binding sets change.
                    let mut merged = old.clone();
                    merged["spec"]["nodeName"] = obj["spec"]["nodeName"].clone();
                    if let Some(a) = obj["metadata"].get("annotations") {
                        merged["metadata"]["annotations"] = a.clone();
                    }
                    merged["status"]["conditions"] = obj["status"]["conditions"].clone();
                    merged
                }
                Some("finalize") => {
                    // namespaces/finalize: only spec.finalizers changes.
                    let mut merged = old.clone();
                    merged["spec"]["finalizers"] =
                        obj["spec"].get("finalizers").cloned().unwrap_or(json!([]));
                    merged
                }
                _ => {
                    for field in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                    ] {
                        meta::copy(&mut obj, &old, field);
                    }
                    r.strategy.default(&mut obj);
                    if r.has_status() && subresource.is_none() {
                        match old.get("status") {
                            Some(s) => obj["status"] = s.clone(),
                            None => {
                                obj.as_object_mut().map(|m| m.remove("status"));
                            }
                        }
                    }
                    obj
                }
            };
            self.record_managed_fields(t, subresource, Some(&old), &mut obj, applied);
            let admitted = self.admit(t, name, subresource, Operation::Update, opts.dry_run);
            if let Some(a) = &admitted {
                a.mutate(&mut obj, Some(&old), &self.read_only()).await?;
            }
            if subresource.is_none() {
                r.strategy.prepare_for_update(&mut obj, &old);
            }
            // A scale write changes the desired state as an update would.
            if r.strategy.tracks_generation() && matches!(subresource, None | Some("scale")) {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                let generation = if r.strategy.spec_changed(&obj, &old) {
                    generation + 1
                } else {
                    generation
                };
                meta::set(&mut obj, "generation", Some(generation.into()));
            }
            meta::set(&mut obj, "resourceVersion", Some(current_rv.clone().into()));
            // A binding is checked by its own rules ([`crate::binding`]):
            // the node of a pod is otherwise immutable.
            if subresource != Some("binding") {
                self.validate(t, &obj, Some(&old))?;
            }
            if let Some(a) = &admitted {
                a.validate(&obj, Some(&old), &self.read_only()).await?;
                warnings.extend(a.take_warnings());
            }
            if obj == old {
                return Ok(Written {
                    object: old,
                    warnings,
                    created: false,
                });
            }
            // A pending deletion completes once nothing holds the object any
            // more: no finalizers, no type-specific hold (a namespace's spec
            // finalizers), no grace period left to honour.
            let held = |o: &Value| {
                !meta::finalizers(o).is_empty() || r.strategy.begin_delete(&mut o.clone())
            };
            let grace = obj["metadata"]["deletionGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(0);
            if meta::is_deleting(&obj) && grace == 0 && held(&old) && !held(&obj) {
                if opts.dry_run {
                    return Ok(Written {
                        object: obj,
                        warnings,
                        created: false,
                    });
                }
                return match self.storage.delete(&t.key(name), kv.mod_revision).await {
                    Ok(_) => {
                        self.removed(t);
                        Ok(Written {
                            object: obj,
                            warnings,
                            created: false,
                        })
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(e) => Err(e.into()),
                };
            }
            if opts.dry_run {
                return Ok(Written {
                    object: self.dry_run_round_trip(t, obj).await?,
                    warnings,
                    created: false,
                });
            }
            let stored = self.at_storage_version(t, &obj).await?;
            match self
                .storage
                .update(
                    &t.key(name),
                    encode_for(r, stored.as_ref().unwrap_or(&obj))?,
                    kv.mod_revision,
                )
                .await
            {
                Ok(new_kv) => {
                    if let Some(stored) = stored {
                        obj = self.read_back(t, stored, new_kv.mod_revision).await?;
                    }
                    meta::set(
                        &mut obj,
                        "resourceVersion",
                        Some(new_kv.mod_revision.to_string().into()),
                    );
                    return Ok(Written {
                        object: obj,
                        warnings,
                        created: false,
                    });
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(StorageError::NotFound { .. }) => {
                    return Err(ApiError::NotFound(t.subject(name)));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// PUT: replace an object (or its status) with a decoded body.
    pub async fn update(
        &self,
        t: &Target<'_>,
        name: &str,
        subresource: Option<&str>,
        body: Value,
        opts: WriteOptions,
    ) -> Result<Written, ApiError> {
        let r = t.resource;
        let decoded = decode_body(
            r,
            &r.group,
            &r.version,
            &r.kind,
            body,
            opts.field_validation,
        )?;
        self.update_with(t, name, subresource, opts, |_| Ok(decoded.clone()))
            .await
    }

    /// DELETE one object.
    pub async fn delete(
        &self,
        t: &Target<'_>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let r = t.resource;
        // NamespaceLifecycle admission: the system namespaces are immortal.
        if r.group.is_empty() && r.resource == "namespaces" && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        loop {
            let kv = self.get_kv(t, name).await?;
            let obj = self.decode_all(t, &[&kv]).await?.pop().unwrap_or_default();
            if let Some(a) = self.admit(t, name, None, Operation::Delete, opts.dry_run) {
                a.validate(&obj, Some(&obj), &self.read_only()).await?;
            }
            if let Some(uid) = &opts.precondition_uid
                && uid != meta::uid(&obj)
            {
                return Err(ApiError::Conflict {
                    subject: t.subject(name),
                    message: format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&obj)
                    ),
                });
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != kv.mod_revision.to_string()
            {
                return Err(ApiError::Conflict {
                    subject: t.subject(name),
                    message: format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                });
            }
            let mut finalizers = meta::finalizers(&obj);
            // Garbage-collection finalizers for the requested propagation (the
            // garbage collector acts on them).
            match opts.propagation.as_deref() {
                Some("Orphan") => {
                    finalizers.retain(|f| f != "foregroundDeletion");
                    if !finalizers.iter().any(|f| f == "orphan") {
                        finalizers.push("orphan".into());
                    }
                }
                Some("Foreground") => {
                    finalizers.retain(|f| f != "orphan");
                    if !finalizers.iter().any(|f| f == "foregroundDeletion") {
                        finalizers.push("foregroundDeletion".into());
                    }
                }
                _ => {}
            }
            let grace = r.strategy.grace_period(&obj, opts.grace_period_seconds);
            let already_deleting = meta::is_deleting(&obj);
            let immediate = finalizers.is_empty() && grace.unwrap_or(0) == 0;
            if immediate && !(already_deleting && r.strategy.begin_delete(&mut obj.clone())) {
                let mut marked = obj.clone();
                if !already_deleting && r.strategy.begin_delete(&mut marked) {
                    // e.g. a namespace turning Terminating.
                    meta::set(&mut marked, "deletionTimestamp", Some(meta::now().into()));
                    meta::set(&mut marked, "deletionGracePeriodSeconds", Some(0.into()));
                    match self.write_pending(t, name, &kv, marked, opts.dry_run).await {
                        // A concurrent writer (a controller's status update):
                        // retry unless the caller pinned a resourceVersion.
                        Err(ApiError::Conflict { .. })
                            if opts.precondition_resource_version.is_none() =>
                        {
                            continue;
                        }
                        other => return other,
                    }
                }
                if opts.dry_run {
                    return Ok(Deleted::Gone(obj));
                }
                return match self.storage.delete(&t.key(name), kv.mod_revision).await {
                    Ok(_) => {
                        self.removed(t);
                        Ok(Deleted::Gone(obj))
                    }
                    Err(StorageError::Conflict { .. }) => continue,
                    Err(StorageError::NotFound { .. }) => Err(ApiError::NotFound(t.subject(name))),
                    Err(e) => Err(e.into()),
                };
            }
            if already_deleting
                && finalizers == meta::finalizers(&obj)
                && grace.is_none_or(|g| {
                    obj["metadata"]["deletionGracePeriodSeconds"]
                        .as_i64()
                        .is_some_and(|cur| g >= cur)
                })
            {
                return Ok(Deleted::Pending(obj));
            }
            let mut marked = obj.clone();
            let secs = grace.unwrap_or(0);
            meta::set(
                &mut marked,
                "deletionTimestamp",
                Some(meta::now_plus(secs).into()),
            );
            meta::set(&mut marked, "deletionGracePeriodSeconds", Some(secs.into()));
            meta::set(
                &mut marked,
                "finalizers",
                if finalizers.is_empty() {
                    None
                } else {
                    Some(finalizers.clone().into())
                },
            );
            if !already_deleting {
                r.strategy.begin_delete(&mut marked);
            }
            match self.write_pending(t, name, &kv, marked, opts.dry_run).await {
                Err(ApiError::Conflict { .. }) if opts.precondition_resource_version.is_none() => {
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn write_pending(
        &self,
        t: &Target<'_>,
        name: &str,
        kv: &KeyValue,
        mut obj: Value,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        if dry_run {
            return Ok(Deleted::Pending(obj));
        }
        let stored = self.at_storage_version(t, &obj).await?;
        let bytes = encode_for(t.resource, stored.as_ref().unwrap_or(&obj))?;
        match self.storage.update(&t.key(name), bytes, kv.mod_revision).await {
            Ok(new_kv) => {
                meta::set(&mut obj, "resourceVersion", Some(new_kv.mod_revision.to_string().into()));
                Ok(Deleted::Pending(obj))
            }
            Err(StorageError::Conflict { .. }) => Err(ApiError::Conflict {
                subject: t.subject(name),
                message: "the object has been modified; please apply your changes to the latest version and try again"
                    .into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an object matches the label and field selectors.
    pub fn matches(
        r: &ResourceInfo,
        obj: &Value,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Result<bool, ApiError> {
        if !labels.is_empty() && !labels.matches(&meta::labels(obj)) {
            return Ok(false);
        }
        if fields.is_empty() {
            return Ok(true);
        }
        fields
            .matches(|f| match f {
                "metadata.name" => Some(meta::name(obj).to_string()),
                "metadata.namespace" if r.namespaced => Some(meta::namespace(obj).to_string()),
                other => r.strategy.field_label(obj, other),
            })
            .map_err(|field| ApiError::BadRequest(format!("field label not supported: {field}")))
    }

    /// Refuses a field selector naming a field `r` cannot select on, before
    /// anything is read (upstream converts field selectors up front, so an
    /// empty collection refuses them too).
    pub fn check_field_selector(r: &ResourceInfo, fields: &FieldSelector) -> Result<(), ApiError> {
        if fields.is_empty() {
            return Ok(());
        }
        // Strategies answer by field name; an empty object is enough to ask.
        Self::matches(r, &json!({}), &LabelSelector::default(), fields).map(|_| ())
    }

    /// LIST with selectors, pagination and resourceVersion semantics.
    pub async fn list(&self, t: &Target<'_>, opts: &ListOptions) -> Result<ListPage, ApiError> {
        Self::check_field_selector(t.resource, &opts.field_selector)?;
        let prefix = t.prefix();
        let current = self.storage.current_revision().await?;
        let mut start_after: Option<String> = None;
        let mut list_rv = current;
        if let Some(token) = opts.continue_token.as_deref().filter(|s| !s.is_empty()) {
            let (rv, start) = continue_from(&prefix, token)?;
            list_rv = rv;
            start_after = Some(start);
        } else if let Some(rv) = opts
            .resource_version
            .as_deref()
            .filter(|s| !s.is_empty() && *s != "0")
        {
            let rv = parse_rv(rv, "resource version")?;
            match opts.resource_version_match.as_deref() {
                Some("Exact") if rv != current => {
                    return Err(ApiError::Gone(format!(
                        "The resourceVersion for the provided list is too old: {rv} (current {current})"
                    )));
                }
                _ if rv > current => {
                    return Err(ApiError::Timeout(format!(
                        "Too large resource version: {rv}, current: {current}"
                    )));
                }
                _ => {}
            }
        }
        let filtered = !opts.label_selector.is_empty() || !opts.field_selector.is_empty();
        let mut items = Vec::new();
        let page = if opts.limit == 0 {
            None
        } else {
            Some(opts.limit)
        };
        let mut last_key = None;
        let mut remaining;
        loop {
            let want = page.map(|p| (p - items.len()).max(1) + if filtered { 64 } else { 0 });
            let batch = self
                .storage
                .list(
                    &prefix,
                    StorageList {
                        start_after: start_after.clone(),
                        limit: want,
                    },
                )
                .await?;
            let exhausted = batch.remaining == 0;
            remaining = batch.remaining;
            let mut stopped_early = false;
            // One conversion review per storage batch, for the objects
            // stored at another version (upstream converts a list's items
            // together).
            let objects = self
                .decode_all(t, &batch.items.iter().collect::<Vec<_>>())
                .await?;
            for (i, (kv, obj)) in batch.items.iter().zip(objects).enumerate() {
                start_after = Some(kv.key.clone());
                if Self::matches(t.resource, &obj, &opts.label_selector, &opts.field_selector)? {
                    items.push(obj);
                    last_key = Some(kv.key.clone());
                }
                if page.is_some_and(|p| items.len() >= p) {
                    remaining += (batch.items.len() - i - 1) as u64;
                    stopped_early = true;
                    break;
                }
            }
            if stopped_early || exhausted || batch.items.is_empty() {
                let more = remaining > 0 && page.is_some();
                let continue_token = if more {
                    last_key
                        .as_deref()
                        .map(|k| encode_continue(list_rv, &k[prefix.len()..]))
                } else {
                    None
                };
                return Ok(ListPage {
                    items,
                    resource_version: list_rv,
                    continue_token,
                    remaining: if more && !filtered {
                        Some(remaining)
                    } else {
                        None
                    },
                });
            }
        }
    }

    /// DELETE a collection: deletes each matching object as a single delete would.
    pub async fn delete_collection(
        &self,
        t: &Target<'_>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self
            .list(
                t,
                &ListOptions {
                    limit: 0,
                    continue_token: None,
                    ..list.clone()
                },
            )
            .await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let ns = meta::namespace(&obj).to_string();
            let target = Target {
                namespace: if ns.is_empty() {
                    t.namespace
                } else {
                    Some(&ns)
                },
                ..*t
            };
            match self.delete(&target, meta::name(&obj), opts).await {
                Ok(Deleted::Gone(o)) | Ok(Deleted::Pending(o)) => deleted.push(o),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }
}

/// Upstream's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\u0000"}`.
fn encode_continue(rv: u64, last_key_suffix: &str) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key_suffix}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

/// Where a LIST of `prefix` resumes for a client's continue `token`: its
/// revision and the key to start after. A token is client input: the key is
/// always `prefix` + the token's start, and storage lists only keys under
/// `prefix`, so no token reaches another cluster's (or namespace's) keys.
fn continue_from(prefix: &str, token: &str) -> Result<(u64, String), ApiError> {
    let (rv, start) = decode_continue(token)?;
    Ok((rv, format!("{prefix}{start}")))
}

fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let bad = |why: &str| ApiError::BadRequest(format!("continue key is not valid: {why}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad("not base64"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    let rv = v["rv"].as_u64().ok_or_else(|| bad("missing rv"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("missing start"))?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if start.contains("..") || start.starts_with('/') {
        return Err(bad("invalid start key"));
    }
    Ok((rv, start.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web-1");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "default/web-1".to_string())
        );
        assert!(decode_continue("!!").is_err());
    }

    /// Bounded fuzzing of continue tokens (any string a client sends):
    /// decoding never panics, and a LIST resumed from any token, however
    /// forged, returns only keys under the prefix it lists, never another
    /// cluster's or namespace's. Seeds: `tests/fuzz-corpus/continue_token`.
    mod fuzz_continue_token {
        use std::sync::Arc;

        use super::super::{continue_from, encode_continue};
        use base64::Engine;
        use bytes::Bytes;
        use nestkube_fuzz_support as fuzz;
        use nestkube_storage::{ListOptions, Storage};
        use proptest::prelude::*;
        use serde_json::{Value, json};

        /// The corpus and regressions are kept with the API server's
        /// (`apiserver-proxy/tests/fuzz-corpus`, `proptest-regressions`).
        const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        /// Keys of two clusters (`a`, `a:b`) and a namespace beside `default`.
        const KEYS: &[&str] = &[
            "/a/configmaps/default/x",
            "/a/configmaps/default/y",
            "/a/configmaps/default2/z",
            "/a/secrets/default/s",
            "/a:b/configmaps/default/x",
            "/a:b/secrets/default/s",
            "/b/secrets/default/s",
            "/a\u{0}/secrets/default/s",
        ];
        const PREFIXES: &[&str] = &["/a/configmaps/default/", "/a/configmaps/", "/a:b/secrets/"];

        struct World {
            rt: tokio::runtime::Runtime,
            storage: Arc<dyn Storage>,
            _dir: tempfile::TempDir,
        }

        fn world() -> &'static World {
            static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
            WORLD.get_or_init(|| {
                let dir = tempfile::tempdir().expect("tempdir");
                let storage = nestkube_storage::open_default(dir.path()).expect("storage");
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    for k in KEYS {
                        storage
                            .create(k, Bytes::from_static(b"{}"))
                            .await
                            .expect("create");
                    }
                });
                World {
                    rt,
                    storage,
                    _dir: dir,
                }
            })
        }

        /// The property of one token against every prefix.
        fn check(token: &str) {
            let w = world();
            for prefix in PREFIXES {
                let Ok((_, start)) = continue_from(prefix, token) else {
                    continue;
                };
                let page =
                    w.rt.block_on(w.storage.list(
                        prefix,
                        ListOptions {
                            start_after: Some(start.clone()),
                            limit: None,
                        },
                    ))
                    .expect("list");
                for kv in page.items {
                    assert!(
                        kv.key.starts_with(prefix),
                        "token {token:?} (start {start:?}) listed {} under {prefix}",
                        kv.key
                    );
                }
            }
        }

        fn encode(v: &Value, url_safe: bool) -> String {
            let raw = v.to_string();
            if url_safe {
                base64::engine::general_purpose::URL_SAFE.encode(raw)
            } else {
                base64::engine::general_purpose::STANDARD.encode(raw)
            }
        }

        /// Tokens shaped like the server's, with forged starts.
        fn forged() -> impl Strategy<Value = String> {
            let piece = prop::sample::select(vec![
                "",
                "/",
                "..",
                ".",
                "a",
                "a:b",
                "b",
                "default",
                "default2",
                "configmaps",
                "secrets",
                "\u{0}",
                "\u{ff}",
                "\u{10ffff}",
                "%2F",
                "~",
                "x",
            ]);
            (
                prop::collection::vec(piece, 0..6),
                any::<u64>(),
                any::<bool>(),
                prop::sample::select(vec!["meta.k8s.io/v1", "v1", ""]),
            )
                .prop_map(|(pieces, rv, url_safe, v)| {
                    let start = pieces.concat();
                    encode(&json!({"v": v, "rv": rv, "start": start}), url_safe)
                })
        }

        #[test]
        fn corpus() {
            for seed in fuzz::corpus(DIR, "continue_token") {
                check(
                    std::str::from_utf8(&seed.bytes)
                        .expect("UTF-8 token")
                        .trim(),
                );
            }
            // The server's own tokens resume where they should.
            let t = encode_continue(7, "default/x");
            let (_, start) = continue_from("/a/configmaps/", &t).unwrap();
            assert_eq!(start, "/a/configmaps/default/x");
        }

        proptest! {
            #![proptest_config(fuzz::config(DIR, "continue_token", 2000))]

            #[test]
            fn forged_tokens_stay_under_their_prefix(token in forged()) {
                check(&token);
            }

            #[test]
            fn arbitrary_strings(token in "\\PC{0,64}") {
                check(&token);
            }

            #[test]
            fn mutated_tokens(bytes in fuzz::mutated(
                fuzz::corpus(DIR, "continue_token").into_iter().map(|s| s.bytes).collect(),
                6,
            )) {
                check(&String::from_utf8_lossy(&bytes));
            }
        }
    }
}
