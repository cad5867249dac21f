use serde_json::json;

use super::matchconditions::{MatchConditions, MatchResult};
use super::*;

fn activation() -> Activation {
    Activation::new(
        Some(&json!({"metadata": {"name": "p", "labels": {"app": "web"}}, "spec": {"replicas": 3, "items": [1, 2, 3]}})),
        None,
        &json!({"operation": "CREATE", "userInfo": {"username": "alice", "groups": ["dev"]}}),
    )
    .with_params(Some(&json!({"data": {"max": "5"}})))
}

fn eval(expr: &str) -> Result<CelValue, EvalError> {
    let a = activation();
    Evaluation::new(&a, &[], Limits::DEFAULT).eval(&compile(expr, &Env::policy(vec![])))
}

#[test]
fn variables_of_the_request() {
    assert_eq!(eval("object.spec.replicas > 2"), Ok(CelValue::Bool(true)));
    assert_eq!(eval("oldObject == null"), Ok(CelValue::Bool(true)));
    assert_eq!(
        eval("request.userInfo.username == 'alice'"),
        Ok(CelValue::Bool(true))
    );
    assert_eq!(
        eval("object.spec.replicas <= int(params.data.max)"),
        Ok(CelValue::Bool(true))
    );
    assert_eq!(eval("namespaceObject == null"), Ok(CelValue::Bool(true)));
    assert_eq!(
        eval("object.spec.items.all(i, i > 0)"),
        Ok(CelValue::Bool(true))
    );
    assert_eq!(
        eval("'app' in object.metadata.labels"),
        Ok(CelValue::Bool(true))
    );
    // Kubernetes libraries are there.
    assert_eq!(
        eval("'a,b'.split(',').size() == 2"),
        Ok(CelValue::Bool(true))
    );
}

#[test]
fn undeclared_references_do_not_compile() {
    let err = eval("authorizer.group('').resource('pods').check('get').allowed()").unwrap_err();
    assert_eq!(
        err.to_string(),
        "compilation failed: ERROR: <input>: undeclared reference to 'authorizer' (in container '')"
    );
    // Without params declared (a webhook's match condition), params is unknown.
    let c = compile("params == null", &Env::match_conditions());
    assert!(
        c.error()
            .unwrap()
            .contains("undeclared reference to 'params'")
    );
    assert!(
        eval("variables.nope")
            .unwrap_err()
            .to_string()
            .contains("undefined field 'nope'")
    );
    // Comprehension variables are in scope inside their macro only.
    assert_eq!(eval("[1].all(x, x == 1)"), Ok(CelValue::Bool(true)));
    assert!(eval("[1].all(x, x == 1) && x == 1").is_err());
    assert!(
        eval("object.")
            .unwrap_err()
            .to_string()
            .starts_with("compilation failed: ERROR: <input>:")
    );
}

#[test]
fn composited_variables_are_lazy_and_evaluated_once() {
    let env0 = Env::policy(vec![]);
    let env1 = Env::policy(vec!["replicas".into()]);
    let vars = vec![
        Variable {
            name: "replicas".into(),
            compiled: compile("object.spec.replicas", &env0),
        },
        Variable {
            name: "double".into(),
            compiled: compile("variables.replicas * 2", &env1),
        },
        Variable {
            name: "broken".into(),
            compiled: compile("object.missing.field", &env0),
        },
    ];
    let env = Env::policy(vec!["replicas".into(), "double".into(), "broken".into()]);
    let a = activation();
    let e = Evaluation::new(&a, &vars, Limits::DEFAULT);
    assert_eq!(
        e.eval(&compile("variables.double == 6", &env)),
        Ok(CelValue::Bool(true))
    );
    assert_eq!(
        e.eval(&compile("has(variables.double)", &env)),
        Ok(CelValue::Bool(true))
    );
    // An unreferenced failing variable costs nothing; a referenced one is its error.
    assert_eq!(e.eval(&compile("true", &env)), Ok(CelValue::Bool(true)));
    let err = e.eval(&compile("variables.broken == 1", &env)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("composited variable \"broken\" fails to evaluate: no such key"),
        "{err}"
    );
}

#[test]
fn the_cost_bound_stops_runaway_expressions() {
    let a = Activation::new(
        Some(&json!({"l": (0..2000).collect::<Vec<_>>()})),
        None,
        &json!({}),
    );
    let e = Evaluation::new(
        &a,
        &[],
        Limits {
            iterations: 100_000,
            time: Duration::from_secs(5),
        },
    );
    let started = Instant::now();
    let err = e
        .eval(&compile(
            "object.l.all(x, object.l.all(y, x + y >= 0))",
            &Env::default(),
        ))
        .unwrap_err();
    assert_eq!(err, EvalError::Runtime(COST_EXCEEDED.to_string()));
    assert!(started.elapsed() < Duration::from_secs(5));
    // The wall-clock bound too.
    let e = Evaluation::new(
        &a,
        &[],
        Limits {
            iterations: u64::MAX,
            time: Duration::from_millis(20),
        },
    );
    let started = Instant::now();
    let err = e
        .eval(&compile(
            "object.l.all(x, object.l.all(y, object.l.all(z, x + y + z >= 0)))",
            &Env::default(),
        ))
        .unwrap_err();
    assert_eq!(err, EvalError::Runtime(COST_EXCEEDED.to_string()));
    assert!(started.elapsed() < Duration::from_secs(2));
    // A bounded expression is unaffected, and the budget is per evaluation.
    assert_eq!(
        e.eval(&compile("object.l.exists(x, x == 1999)", &Env::default())),
        Ok(CelValue::Bool(true))
    );
}

#[test]
fn programs_are_compiled_once_per_process() {
    let text = "object.metadata.name == 'cache-test-unique'";
    let a = compile(text, &Env::default());
    let b = compile(text, &Env::default());
    assert!(Arc::ptr_eq(&a, &b));
    // Another environment is another program.
    let c = compile(text, &Env::policy(vec![]));
    assert!(!Arc::ptr_eq(&a, &c));
}

// Cases of upstream's matchconditions/matcher_test.go.
#[test]
fn match_conditions_as_upstream() {
    let a = Activation::new(
        Some(&json!({"metadata": {"name": "x", "labels": {"a": "b"}}})),
        None,
        &json!({"operation": "CREATE", "userInfo": {"username": "u"}}),
    );
    let env = Env::match_conditions();
    let mc = |list: &[(&str, &str)]| MatchConditions::compile(list.iter().copied(), &env);
    assert_eq!(mc(&[]).matches(&a), MatchResult::Matches);
    assert_eq!(
        mc(&[("a", "true"), ("b", "object.metadata.name == 'x'")]).matches(&a),
        MatchResult::Matches
    );
    assert_eq!(
        mc(&[("a", "true"), ("b", "false")]).matches(&a),
        MatchResult::NoMatch("b".into())
    );
    // A false condition wins over another's error.
    assert_eq!(
        mc(&[("err", "object.nope == 1"), ("no", "false")]).matches(&a),
        MatchResult::NoMatch("no".into())
    );
    assert_eq!(
        mc(&[("err", "object.nope == 1"), ("yes", "true")]).matches(&a),
        MatchResult::Error(
            "expression 'object.nope == 1' resulted in error: no such key: nope".into()
        )
    );
    assert_eq!(
        mc(&[("e1", "object.nope == 1"), ("e2", "'a'")]).matches(&a),
        MatchResult::Error(
            "[expression 'object.nope == 1' resulted in error: no such key: nope, expression ''a'' resulted in error: no such overload: expected bool, got string]".into()
        )
    );
    let json_list = json!([{"name": "label", "expression": "object.metadata.labels.a == 'b'"}]);
    assert_eq!(
        MatchConditions::from_json(&json_list, &env).matches(&a),
        MatchResult::Matches
    );
}

#[test]
fn mutation_types_build_maps_and_are_refused_elsewhere() {
    let a = activation();
    let e = Evaluation::new(&a, &[], Limits::DEFAULT);
    let patch = compile(
        "[JSONPatch{op: 'add', path: '/metadata/labels/x', value: 'y'}]",
        &Env::mutating_policy(vec![]),
    );
    assert_eq!(
        to_json(&e.eval(&patch).unwrap()),
        json!([{"op": "add", "path": "/metadata/labels/x", "value": "y"}])
    );
    let apply = compile(
        "Object{metadata: Object.metadata{labels: {'a': 'b'}}}",
        &Env::mutating_policy(vec![]),
    );
    assert_eq!(
        to_json(&e.eval(&apply).unwrap()),
        json!({"metadata": {"labels": {"a": "b"}}})
    );
    // A validating policy declares no message types: a compile error, never
    // the interpreter's unsupported struct construction.
    let err = e
        .eval(&compile("Foo{a: 1} == null", &Env::policy(vec![])))
        .unwrap_err();
    assert!(
        err.to_string().contains("undeclared reference to 'Foo'"),
        "{err}"
    );
}

#[test]
fn library_namespaces_are_not_variables() {
    assert_eq!(
        eval("math.greatest([1, 3, 2]) == 3"),
        Ok(CelValue::Bool(true))
    );
    assert_eq!(eval("sets.contains([1, 2], [1])"), Ok(CelValue::Bool(true)));
}
