//! Cases ported from structured-merge-diff's `merge/*_test.go` tables
//! (multiple appliers, conflicts, sets, keys, leaves, nested, deduced),
//! run over a structural schema with [`JsonSchemaTypes`].

use serde_json::{Value, json};

use super::schema::JsonSchemaTypes;
use super::*;

/// One operation of a case.
enum Op<'a> {
    Apply {
        manager: &'a str,
        object: Value,
        conflicts: &'a [(&'a str, &'a str)],
    },
    ForceApply {
        manager: &'a str,
        object: Value,
    },
    Update {
        manager: &'a str,
        object: Value,
    },
}

struct State {
    live: Value,
    managers: ManagedFields,
}

fn run(schema: &Value, ops: Vec<Op<'_>>) -> State {
    let r = JsonSchemaTypes::new();
    let t = Typing {
        resolver: &r,
        root: Some(schema),
        ignored: Set::new(),
    };
    let mut st = State {
        live: json!({}),
        managers: ManagedFields::new(),
    };
    for op in ops {
        match op {
            Op::Apply {
                manager,
                object,
                conflicts,
            } => {
                match apply(
                    &t,
                    &st.live,
                    &object,
                    "v1",
                    st.managers.clone(),
                    manager,
                    false,
                ) {
                    Ok(a) => {
                        assert!(conflicts.is_empty(), "expected conflicts {conflicts:?}");
                        if let Some(o) = a.object {
                            st.live = o;
                        }
                        st.managers = a.managers;
                    }
                    Err(ApplyError::Conflicts(got)) => {
                        let got: Vec<(String, String)> = got
                            .iter()
                            .map(|c| (c.manager.clone(), c.path.to_string()))
                            .collect();
                        let want: Vec<(String, String)> = conflicts
                            .iter()
                            .map(|(m, p)| (m.to_string(), p.to_string()))
                            .collect();
                        assert_eq!(got, want);
                    }
                    Err(e) => panic!("apply failed: {e}"),
                }
            }
            Op::ForceApply { manager, object } => {
                let a = apply(
                    &t,
                    &st.live,
                    &object,
                    "v1",
                    st.managers.clone(),
                    manager,
                    true,
                )
                .expect("force apply");
                if let Some(o) = a.object {
                    st.live = o;
                }
                st.managers = a.managers;
            }
            Op::Update { manager, object } => {
                st.managers = update(&t, &st.live, &object, "v1", st.managers.clone(), manager)
                    .expect("update");
                st.live = object;
            }
        }
    }
    st
}

fn fields(st: &State, manager: &str) -> Value {
    st.managers
        .get(manager)
        .map(|vs| vs.set.to_fields_v1())
        .unwrap_or(Value::Null)
}

/// `{list: [{name, value}]}` with `list` a list-map keyed by `name`.
fn associative_list() -> Value {
    json!({"type": "object", "properties": {
        "list": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                 "items": {"type": "object", "properties": {
                     "name": {"type": "string"}, "value": {"type": "integer"}}}},
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "atomic": {"type": "array", "items": {"type": "string"}},
        "numeric": {"type": "integer"},
        "string": {"type": "string"},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "atomicMap": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
        "struct": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                  "x-kubernetes-list-map-keys": ["port", "protocol"],
                  "items": {"type": "object", "properties": {
                      "port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"},
                      "name": {"type": "string"}}}}
    }})
}

#[test]
fn multiple_appliers_remove_one() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a"}, {"name": "b"}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-two",
                object: json!({"list": [{"name": "c"}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a"}]}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(st.live, json!({"list": [{"name": "a"}, {"name": "c"}]}));
    assert_eq!(
        fields(&st, "apply-one"),
        json!({"f:list": {"k:{\"name\":\"a\"}": {".": {}, "f:name": {}}}})
    );
    assert_eq!(
        fields(&st, "apply-two"),
        json!({"f:list": {"k:{\"name\":\"c\"}": {".": {}, "f:name": {}}}})
    );
}

#[test]
fn multiple_appliers_same_value_no_conflict_and_change_value_conflict() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a", "value": 0}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-two",
                object: json!({"list": [{"name": "a", "value": 0}]}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(fields(&st, "apply-one"), fields(&st, "apply-two"));
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a", "value": 0}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-two",
                object: json!({"list": [{"name": "a", "value": 1}]}),
                conflicts: &[("apply-one", ".list[name=\"a\"].value")],
            },
        ],
    );
    assert_eq!(st.live, json!({"list": [{"name": "a", "value": 0}]}));
    assert!(!st.managers.contains_key("apply-two"));
}

#[test]
fn multiple_appliers_remove_one_keep_one_and_order() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-two",
                object: json!({"list": [{"name": "c"}, {"name": "d"}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "apply-one",
                object: json!({"list": [{"name": "a"}]}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(
        st.live,
        json!({"list": [{"name": "a"}, {"name": "c"}, {"name": "d"}]})
    );
}

/// `merge/leaf_test.go`: conflicts on scalars with an updater, force takes them.
#[test]
fn leaf_update_then_apply_conflicts_and_force() {
    let st = run(
        &associative_list(),
        vec![
            Op::Update {
                manager: "controller",
                object: json!({"numeric": 1, "string": "string"}),
            },
            Op::Apply {
                manager: "default",
                object: json!({"numeric": 2, "string": "string"}),
                conflicts: &[("controller", ".numeric")],
            },
            Op::ForceApply {
                manager: "default",
                object: json!({"numeric": 2, "string": "new string"}),
            },
        ],
    );
    assert_eq!(st.live, json!({"numeric": 2, "string": "new string"}));
    assert_eq!(
        fields(&st, "default"),
        json!({"f:numeric": {}, "f:string": {}})
    );
    assert!(!st.managers.contains_key("controller"));
}

/// `merge/leaf_test.go` "apply_update_apply_no_conflict" / removal of an
/// applied field that another applier does not own.
#[test]
fn leaf_apply_removes_fields_no_longer_applied() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "default",
                object: json!({"numeric": 1, "string": "string"}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "default",
                object: json!({"string": "string"}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(st.live, json!({"string": "string"}));
    // Owned by another manager too: kept.
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "one",
                object: json!({"numeric": 1, "string": "s"}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "two",
                object: json!({"numeric": 1}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "one",
                object: json!({"string": "s"}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(st.live, json!({"numeric": 1, "string": "s"}));
    // Owned by an updater (not an applier): kept as well (upstream keeps
    // fields someone else manages, whatever the operation).
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "one",
                object: json!({"map": {"a": "1", "b": "2"}}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "one",
                object: json!({"map": {"a": "1"}}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(st.live, json!({"map": {"a": "1"}}));
}

/// `merge/set_test.go`: set items merge and prune by value.
#[test]
fn sets_merge_and_prune() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "default",
                object: json!({"set": ["a", "b", "c", "d"]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "default",
                object: json!({"set": ["a", "b", "c", "d", "e"]}),
                conflicts: &[],
            },
            Op::Update {
                manager: "controller",
                object: json!({"set": ["a", "b", "c", "d", "e", "f"]}),
            },
            Op::Apply {
                manager: "default",
                object: json!({"set": ["a", "c", "e"]}),
                conflicts: &[],
            },
        ],
    );
    assert_eq!(st.live, json!({"set": ["a", "c", "e", "f"]}));
    assert_eq!(
        fields(&st, "default"),
        json!({"f:set": {"v:\"a\"": {}, "v:\"c\"": {}, "v:\"e\"": {}}})
    );
    assert_eq!(fields(&st, "controller"), json!({"f:set": {"v:\"f\"": {}}}));
}

/// Atomic lists and maps are one leaf: a second applier conflicts on the whole.
#[test]
fn atomic_values_are_one_field() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "one",
                object: json!({"atomic": ["a"], "atomicMap": {"x": "1"}}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "two",
                object: json!({"atomic": ["b"], "atomicMap": {"y": "1"}}),
                conflicts: &[("one", ".atomic"), ("one", ".atomicMap")],
            },
        ],
    );
    assert_eq!(
        fields(&st, "one"),
        json!({"f:atomic": {}, "f:atomicMap": {}})
    );
}

/// `merge/default_keys_test.go`: a missing key field takes its default.
#[test]
fn default_keys() {
    let st = run(
        &associative_list(),
        vec![
            Op::Apply {
                manager: "one",
                object: json!({"ports": [{"port": 80, "name": "http"}]}),
                conflicts: &[],
            },
            Op::Apply {
                manager: "two",
                object: json!({"ports": [{"port": 80, "protocol": "TCP", "name": "web"}]}),
                conflicts: &[("one", ".ports[port=80,protocol=\"TCP\"].name")],
            },
        ],
    );
    assert_eq!(
        fields(&st, "one"),
        json!({"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {}}}})
    );
}

/// An update owns what it changed; map entries, list items and (for
/// schemas without Go zero values, as custom resources) structs are members
/// with their children.
#[test]
fn update_ownership_shape() {
    let st = run(
        &associative_list(),
        vec![Op::Update {
            manager: "kubectl-create",
            object: json!({"map": {"a": "1"}, "struct": {"a": "x"}, "list": [{"name": "n", "value": 1}]}),
        }],
    );
    assert_eq!(
        fields(&st, "kubectl-create"),
        json!({"f:list": {".": {}, "k:{\"name\":\"n\"}": {".": {}, "f:name": {}, "f:value": {}}},
               "f:map": {".": {}, "f:a": {}},
               "f:struct": {".": {}, "f:a": {}}})
    );
}

/// A resolver whose structs are Go non-pointer structs (always `{}`).
struct GoStructs<'a>(JsonSchemaTypes<'a>);

impl<'a> TypeResolver for GoStructs<'a> {
    type Ty = &'a Value;
    fn kind(&self, t: &'a Value) -> Kind<'_> {
        self.0.kind(t)
    }
    fn field(&self, t: &'a Value, n: &str) -> Option<&'a Value> {
        self.0.field(t, n)
    }
    fn declares(&self, t: &'a Value, n: &str) -> bool {
        self.0.declares(t, n)
    }
    fn items(&self, t: &'a Value) -> Option<&'a Value> {
        self.0.items(t)
    }
    fn default_of(&self, t: &'a Value, n: &str) -> Option<Value> {
        self.0.default_of(t, n)
    }
    fn zero_value(&self, t: &'a Value, n: &str) -> Option<Value> {
        self.0
            .field(t, n)
            .and_then(|f| f.get("default"))
            .filter(|d| d.is_object())
            .cloned()
    }
}

/// With Go zero values (`default: {}`), a non-pointer struct set by an
/// update is not itself a member; a pointer struct is.
#[test]
fn update_ownership_of_go_structs() {
    let schema = json!({"type": "object", "properties": {
        "spec": {"type": "object", "default": {}, "properties": {
            "strategy": {"type": "object", "default": {}, "properties": {
                "type": {"type": "string"},
                "rollingUpdate": {"type": "object", "properties": {"maxSurge": {"type": "integer"}}}}}}}}});
    let r = GoStructs(JsonSchemaTypes::new());
    let t = Typing {
        resolver: &r,
        root: Some(&schema),
        ignored: Set::new(),
    };
    let new =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let m = update(&t, &json!({}), &new, "v1", ManagedFields::new(), "m").unwrap();
    assert_eq!(
        m["m"].set.to_fields_v1(),
        json!({"f:spec": {"f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}}}})
    );
}

/// Re-applying the same configuration changes nothing.
#[test]
fn reapply_is_a_noop() {
    let r = JsonSchemaTypes::new();
    let schema = associative_list();
    let t = Typing {
        resolver: &r,
        root: Some(&schema),
        ignored: Set::new(),
    };
    let cfg = json!({"list": [{"name": "a", "value": 1}], "map": {"k": "v"}});
    let first = apply(&t, &json!({}), &cfg, "v1", ManagedFields::new(), "m", false).unwrap();
    let live = first.object.unwrap();
    let again = apply(&t, &live, &cfg, "v1", first.managers.clone(), "m", false).unwrap();
    assert!(again.object.is_none());
    assert_eq!(again.managers, first.managers);
}

/// `merge/deduced_test.go`: without a schema, objects merge granularly and
/// lists are atomic.
#[test]
fn deduced_types() {
    let t = Typing {
        resolver: &Untyped,
        root: None,
        ignored: Set::new(),
    };
    let a = apply(
        &t,
        &json!({}),
        &json!({"a": {"b": 1}, "l": [1, 2]}),
        "v1",
        ManagedFields::new(),
        "one",
        false,
    )
    .unwrap();
    let live = a.object.unwrap();
    let b = apply(
        &t,
        &live,
        &json!({"a": {"c": 2}, "l": [3]}),
        "v1",
        a.managers,
        "two",
        false,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = b else {
        panic!("expected conflicts")
    };
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].path.to_string(), ".l");
}

#[test]
fn missing_key_is_an_error() {
    let r = JsonSchemaTypes::new();
    let schema = associative_list();
    let t = Typing {
        resolver: &r,
        root: Some(&schema),
        ignored: Set::new(),
    };
    let e = apply(
        &t,
        &json!({}),
        &json!({"list": [{"value": 1}]}),
        "v1",
        ManagedFields::new(),
        "m",
        false,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        ".list: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
}

#[test]
fn apply_bodies_are_yaml_or_json() {
    assert_eq!(
        parse_apply_body(b"a: 1\nb: [x]\n").unwrap(),
        json!({"a": 1, "b": ["x"]})
    );
    assert_eq!(parse_apply_body(br#"{"a":1}"#).unwrap(), json!({"a": 1}));
    assert!(parse_apply_body(b"- 1").is_err());
}

/// The checked-in OpenAPI (v2 with the v3 defaults), built once.
fn builtin() -> &'static crate::PatchSchema {
    static SCHEMA: std::sync::OnceLock<crate::PatchSchema> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../data");
        let v2: Value =
            serde_json::from_slice(&std::fs::read(format!("{data}/openapi-v2.json")).unwrap())
                .unwrap();
        let mut s = crate::PatchSchema::from_openapi_v2(&v2).unwrap();
        for doc in ["api__v1.json", "apis__apps__v1.json"] {
            let v3: Value =
                serde_json::from_slice(&std::fs::read(format!("{data}/openapi-v3/{doc}")).unwrap())
                    .unwrap();
            s.add_v3_defaults(&v3);
        }
        s
    })
}

fn deployment(image: &str, replicas: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [
                                     {"name": "web", "image": image, "ports": [{"containerPort": 80}],
                                      "env": [{"name": "A", "value": "1"}]},
                                     {"name": "sidecar", "image": "busybox"}]}}}})
}

/// A Deployment over the checked-in OpenAPI: containers merge by name,
/// ports by (containerPort, protocol) with protocol's default, the
/// selector is atomic; a second applier of one container conflicts only
/// on the fields it changes. Prints what an apply and an update cost.
#[test]
fn builtin_deployment() {
    let types = OpenApiTypes::new(builtin());
    let t = Typing {
        resolver: &types,
        root: types.root("apps", "v1", "Deployment"),
        ignored: Set::from_paths([[PathElement::field("status")].as_slice()]),
    };
    let first = apply(
        &t,
        &json!({}),
        &deployment("nginx", 2),
        "apps/v1",
        ManagedFields::new(),
        "a",
        false,
    )
    .unwrap();
    let live = first.object.unwrap();
    let fields = first.managers["a"].set.to_fields_v1();
    assert_eq!(fields["f:spec"]["f:selector"], json!({}));
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    let other = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}});
    let err = apply(
        &t,
        &live,
        &other,
        "apps/v1",
        first.managers.clone(),
        "b",
        false,
    )
    .unwrap_err();
    let ApplyError::Conflicts(c) = err else {
        panic!("conflicts expected")
    };
    assert_eq!(
        c.iter().map(|c| c.path.to_string()).collect::<Vec<_>>(),
        vec![".spec.template.spec.containers[name=\"web\"].image"]
    );

    let n = 200;
    let start = std::time::Instant::now();
    for _ in 0..n {
        let again = apply(
            &t,
            &live,
            &deployment("nginx", 2),
            "apps/v1",
            first.managers.clone(),
            "a",
            false,
        )
        .unwrap();
        assert!(again.object.is_none());
    }
    let noop = start.elapsed() / n;
    let changed = deployment("nginx:2", 3);
    let start = std::time::Instant::now();
    for _ in 0..n {
        update(&t, &live, &changed, "apps/v1", first.managers.clone(), "u").unwrap();
    }
    let upd = start.elapsed() / n;
    eprintln!("Deployment: no-op apply {noop:?}, update ownership {upd:?} per call (this build)");
}
