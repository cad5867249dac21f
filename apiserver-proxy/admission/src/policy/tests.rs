use serde_json::json;

use super::*;

fn activation(replicas: i64) -> Activation {
    Activation::new(
        Some(&json!({"metadata": {"name": "d"}, "spec": {"replicas": replicas}})),
        None,
        &json!({"operation": "CREATE"}),
    )
    .with_params(Some(&json!({"data": {"max": "3"}})))
}

fn policy(spec: Value) -> CompiledPolicy {
    CompiledPolicy::compile(&json!({"metadata": {"name": "p"}, "spec": spec}))
}

// Cases of upstream's validating/validator_test.go.
#[test]
fn messages_as_upstream() {
    let p = policy(json!({"validations": [
        {"expression": "object.spec.replicas < 5"},
        {"expression": "object.spec.replicas < 4", "message": " too many "},
        {"expression": "object.spec.replicas < 3", "message": "m", "messageExpression": "'replicas: ' + string(object.spec.replicas)"},
        {"expression": "object.spec.replicas < 2", "message": "fallback", "messageExpression": "'two\\nlines'"},
        {"expression": "object.spec.replicas < 1", "messageExpression": "object.nope", "reason": "Forbidden"},
    ]}));
    assert_eq!(
        p.validate(&activation(9)),
        vec![
            (
                "failed expression: object.spec.replicas < 5".to_string(),
                "Invalid"
            ),
            ("too many".to_string(), "Invalid"),
            ("replicas: 9".to_string(), "Invalid"),
            ("fallback".to_string(), "Invalid"),
            (
                "failed expression: object.spec.replicas < 1".to_string(),
                "Forbidden"
            ),
        ]
    );
    assert!(p.validate(&activation(0)).is_empty());
}

#[test]
fn errors_follow_the_failure_policy() {
    let fail = policy(json!({"validations": [{"expression": "object.spec.nope == 1"}]}));
    assert_eq!(
        fail.validate(&activation(1)),
        vec![(
            "expression 'object.spec.nope == 1' resulted in error: no such key: nope".to_string(),
            "Invalid"
        )]
    );
    let ignore = policy(
        json!({"failurePolicy": "Ignore", "validations": [{"expression": "object.spec.nope == 1"}]}),
    );
    assert!(ignore.validate(&activation(1)).is_empty());
    let compile = policy(json!({"validations": [{"expression": "undeclared == 1"}]}));
    assert_eq!(
        compile.validate(&activation(1))[0].0,
        "compilation error: compilation failed: ERROR: <input>: undeclared reference to 'undeclared' (in container '')"
    );
}

#[test]
fn params_variables_and_match_conditions() {
    let p = policy(json!({
        "matchConditions": [{"name": "big", "expression": "object.spec.replicas > 1"}],
        "variables": [
            {"name": "max", "expression": "int(params.data.max)"},
            {"name": "over", "expression": "object.spec.replicas > variables.max"},
        ],
        "validations": [{"expression": "!variables.over", "messageExpression": "'at most ' + string(variables.max)"}],
        "auditAnnotations": [{"key": "k", "valueExpression": "'v'"}],
    }));
    assert_eq!(
        p.validate(&activation(5)),
        vec![("at most 3".to_string(), "Invalid")]
    );
    assert!(p.validate(&activation(2)).is_empty());
    // The match condition is false: nothing is validated.
    assert!(p.validate(&activation(1)).is_empty());
    let bad_audit = policy(
        json!({"validations": [{"expression": "true"}], "auditAnnotations": [{"key": "k", "valueExpression": "1"}]}),
    );
    assert_eq!(
        bad_audit.validate(&activation(1))[0].0,
        "valueExpression '1' resulted in unsupported return type: int. Return type must be either string or null."
    );
}

#[test]
fn reasons_map_to_codes() {
    assert_eq!(reason_code("Forbidden"), (403, "Forbidden"));
    assert_eq!(reason_code("Unauthorized"), (401, "Unauthorized"));
    assert_eq!(
        reason_code("RequestEntityTooLarge"),
        (413, "RequestEntityTooLarge")
    );
    assert_eq!(reason_code(""), (422, "Invalid"));
    assert_eq!(reason_code("Invalid"), (422, "Invalid"));
}
