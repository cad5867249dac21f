//! CustomResourceDefinition schemas as apiextensions-apiserver serves them.
//!
//! A CRD version's `openAPIV3Schema` compiles once into a [`Schema`] (shared
//! through [`SchemaCache`] by every virtual cluster with an identical schema),
//! which prunes unknown fields, applies defaults and validates custom resources
//! (OpenAPI v3 keywords, list types, embedded resources, CEL rules) with
//! upstream's field paths and messages. [`validate_crd`] and
//! [`validate_crd_update`] are upstream's validation of the CRD objects
//! themselves.
//!
//! This crate never stores objects, serves or looks up anything; its only
//! state is the cache of compiled schemas. The registry calls it. Values are
//! `serde_json::Value` throughout.
//!
//! Known differences from upstream: CEL rules are parsed and checked for
//! undeclared fields, but not type-checked (a type error shows at evaluation);
//! the static cost estimate is `kube-cel`'s heuristic (per rule; the total per
//! CRD is not limited), and there is no runtime cost budget; rules with
//! `optionalOldSelf` on list-map items new in an update are skipped; string
//! formats are validated by close approximations of `strfmt`'s parsers;
//! compile error details are `kube-cel`'s, not cel-go's; a CRD update does not
//! re-check a version schema it leaves unchanged (upstream re-checks it under
//! rules relaxed for what the old CRD held).

mod cache;
mod cel;
mod crd;
mod defaults;
mod formats;
mod meta;
mod names;
mod path;
mod prune;
mod structural;
mod validate;

use nestkube_api::error::{FieldError, FieldErrorType};
use serde_json::Value;

pub use cache::SchemaCache;

pub use crd::{default_crd, validate_crd, validate_crd_update};

/// A compiled structural schema of one CRD version, shared (`Arc`) across
/// every virtual cluster that has an identical schema.
#[derive(Debug)]
pub struct Schema {
    root: structural::Node,
    rules: Option<cel::Rules>,
}

/// The field error upstream appends when CEL rules were skipped because the
/// OpenAPI validation already failed with a blocking error.
const RULES_NOT_CHECKED: &str = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

impl Schema {
    /// Compiles `openapi_v3_schema`. Errors are upstream's structural-schema,
    /// default and CEL compile errors, with field paths below `path` (e.g.
    /// `spec.versions[0].schema.openAPIV3Schema`).
    pub fn compile(openapi_v3_schema: &Value, path: &str) -> Result<Schema, Vec<FieldError>> {
        let errs = structural::check_schema(openapi_v3_schema, path);
        if !errs.is_empty() {
            return Err(errs);
        }
        let root = structural::Node::parse(openapi_v3_schema);
        let rules = cel::Rules::compile(openapi_v3_schema, path)?;
        if let Some(rules) = &rules {
            let errs = rules.check_defaults(&root, path);
            if !errs.is_empty() {
                return Err(errs);
            }
        }
        Ok(Schema { root, rules })
    }

    /// Drops fields the schema does not know (upstream pruning), keeping
    /// everything under `x-kubernetes-preserve-unknown-fields`, the root's
    /// `apiVersion`, `kind` and `metadata`, and embedded resources' type meta;
    /// embedded `metadata` is cut down to ObjectMeta's fields. Returns the
    /// pruned paths as upstream's unknown-field warnings name them
    /// (`spec.foo`, `spec.list[0].bar`), sorted: upstream answers
    /// `fieldValidation=Warn` with `unknown field "spec.foo"` each, and
    /// `Strict` with a BadRequest listing them. The root `metadata` is the
    /// registry's to coerce.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        prune::prune(&self.root, obj)
    }

    /// Applies the schema's `default`s (upstream's defaulting, including items
    /// and map values, and null handling: a `null` of a non-nullable field is
    /// defaulted, or dropped when it has no default).
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::apply(&self.root, obj);
    }

    /// Validates a whole custom resource: OpenAPI v3 keywords, embedded
    /// resources, list-type `set`/`map` uniqueness, then the
    /// `x-kubernetes-validations` CEL rules (skipped, as upstream, after a
    /// blocking error). `old` is the stored object on update: it enables
    /// transition rules (`oldSelf`) and ratchets errors of unchanged values.
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        self.validate_with_warnings(obj, old).errors
    }

    /// [`Schema::validate`], also returning the warnings upstream sends with
    /// the response: CEL rules that failed on values an update left unchanged
    /// (ratcheted), as `path: message`.
    pub fn validate_with_warnings(&self, obj: &Value, old: Option<&Value>) -> Validation {
        let mut errors = validate::openapi(&self.root, obj, old);
        // Embedded resources are checked alike on create and update.
        errors.extend(validate::embedded_resources(&self.root, obj, ""));
        // List-type invariants ratchet as a whole: an old object that already
        // broke them lets the update through unchecked.
        if old.is_none_or(|o| validate::list_sets_and_maps(&self.root, o, "").is_empty()) {
            errors.extend(validate::list_sets_and_maps(&self.root, obj, ""));
        }
        let mut warnings = Vec::new();
        if let Some(rules) = &self.rules {
            let blocking = errors.iter().any(|e| {
                matches!(
                    e.kind,
                    FieldErrorType::NotSupported
                        | FieldErrorType::Required
                        | FieldErrorType::TooLong
                        | FieldErrorType::TooMany
                        | FieldErrorType::TypeInvalid
                )
            });
            if blocking {
                // Upstream's value is a nil interface, printed `null`.
                errors.push(FieldError::invalid(
                    validate::NIL_PATH,
                    Value::Null,
                    RULES_NOT_CHECKED,
                ));
            } else {
                let (rule_errors, rule_warnings) = rules.validate(&self.root, obj, old);
                errors.extend(rule_errors);
                warnings = rule_warnings;
            }
        }
        Validation { errors, warnings }
    }
}

/// What validating a custom resource found.
#[derive(Debug, Default)]
pub struct Validation {
    /// The field errors that refuse the request.
    pub errors: Vec<FieldError>,
    /// Warnings for the response (`Warning` headers).
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry shares compiled schemas between request handlers.
    #[test]
    fn schemas_are_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Schema>();
        shareable::<SchemaCache>();
    }
}
