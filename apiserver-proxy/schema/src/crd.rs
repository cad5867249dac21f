//! tmp
pub fn validate_crd(_: &serde_json::Value) -> Vec<nestkube_api::error::FieldError> {
    vec![]
}
pub fn validate_crd_update(
    _: &serde_json::Value,
    _: &serde_json::Value,
) -> Vec<nestkube_api::error::FieldError> {
    vec![]
}
