//! Integration tests of `nestkube-schema`: upstream's test tables (pruning,
//! defaulting, OpenAPI and CEL validation, CRD validation) ported to the
//! public API, and real CRD schemas.

mod cache;
mod cel;
mod crd;
mod defaulting;
mod pruning;
mod real_world;
mod validation;

use nestkube_api::error::FieldError;
use nestkube_schema::Schema;
use serde_json::Value;

/// Compiles a schema that must be valid.
pub(crate) fn schema(v: Value) -> Schema {
    match Schema::compile(&v, "spec.versions[0].schema.openAPIV3Schema") {
        Ok(s) => s,
        Err(e) => panic!("schema does not compile: {:?}", messages(&e)),
    }
}

/// Errors as upstream prints them (`path: message`).
pub(crate) fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}
