//! The admission CEL environment (upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/cel`), on the `kube-cel` function
//! libraries: what ValidatingAdmissionPolicies, MutatingAdmissionPolicies and
//! the `matchConditions` of webhooks and policies evaluate.
//!
//! # Variables
//!
//! As upstream: `object` and `oldObject` (null when absent: `oldObject` on a
//! create, `object` on a delete), `request` (the `AdmissionRequest` fields
//! `kind`, `resource`, `subResource`, `requestKind`, `requestResource`,
//! `requestSubResource`, `name`, `namespace`, `operation`, `userInfo`
//! {`username`, `uid`, `groups`, `extra`}, `dryRun`, `options`), `params`
//! (null without a param), `namespaceObject` (null for cluster-scoped
//! requests) and `variables` (a policy's composited variables, each
//! evaluated at most once per evaluation and only when referenced).
//! `authorizer` is not offered: referencing it is a compile error
//! (`undeclared reference to 'authorizer'`).
//!
//! # API
//!
//! - [`Env`] says which optional variables are declared; [`compile`] turns
//!   an expression into a shared [`Compiled`] program. Each distinct
//!   (expression, [`Env`]) is compiled once per process and shared by every
//!   cluster (the cache holds programs only, never data); an expression that
//!   does not parse, or references an undeclared variable, compiles to an
//!   error that [`Evaluation::eval`] reports.
//! - [`Activation`] holds the values of one request; [`Evaluation`] binds an
//!   activation to a list of composited variables and evaluates programs.
//! - [`matchconditions::MatchConditions`] is what webhooks use for their
//!   `matchConditions`: compile `{name, expression}` pairs once, then
//!   [`matchconditions::MatchConditions::matches`] with upstream's semantics.
//!
//! # Cost bound
//!
//! `kube-cel`'s interpreter has no cost tracking, so every comprehension
//! (`all`, `exists`, `exists_one`, `map`, `filter`) is compiled with a check
//! at each iteration: an evaluation may run [`Limits::iterations`]
//! iterations in total (nested ones included) and for [`Limits::time`]. Past
//! either it stops with upstream's `operation cancelled: actual cost limit
//! exceeded`. Work outside comprehensions is bounded by the expression's size
//! times the size of the data, so one tenant's expression cannot burn CPU
//! unboundedly.

pub mod matchconditions;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube_cel::KubeCelExt;
use kube_cel::cel::common::ast::{
    CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, MapEntryExpr, MapExpr,
};
use kube_cel::cel::objects::{Key, Map};
use kube_cel::cel::{self, Context, ExecutionError, Value as CelValue};
use serde_json::Value;

/// The variables an expression may use beyond `object`, `oldObject` and
/// `request` (always declared). Part of the compile cache's key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Env {
    /// `params` is declared.
    pub params: bool,
    /// `namespaceObject` is declared.
    pub namespace_object: bool,
    /// The names of the composited variables declared before this expression
    /// (`variables.<name>`).
    pub variables: Vec<String>,
    /// The mutation types are declared: `JSONPatch{...}` and
    /// `Object{...}`/`Object.<path>{...}` (a MutatingAdmissionPolicy's
    /// mutations), built as maps.
    pub mutation: bool,
}

impl Env {
    /// The environment of a webhook's `matchConditions` (no params, no
    /// namespace object, no composited variables).
    pub fn match_conditions() -> Self {
        Self::default()
    }

    /// The environment of a policy's expressions.
    pub fn policy(variables: Vec<String>) -> Self {
        Self {
            params: true,
            namespace_object: true,
            variables,
            mutation: false,
        }
    }

    /// The environment of a MutatingAdmissionPolicy's expressions.
    pub fn mutating_policy(variables: Vec<String>) -> Self {
        Self {
            mutation: true,
            ..Self::policy(variables)
        }
    }
}

/// Bounds of one evaluation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Comprehension iterations, all nested ones counted.
    pub iterations: u64,
    /// Wall-clock time.
    pub time: Duration,
}

impl Limits {
    /// Upstream's per-call cost limit (`PerCallLimit`, 1,000,000) read as
    /// iterations, and a tenth of a second.
    pub const DEFAULT: Limits = Limits {
        iterations: 1_000_000,
        time: Duration::from_millis(100),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One compiled expression, shared by every cluster that uses it.
#[derive(Debug)]
pub struct Compiled {
    /// The expression as written.
    pub text: String,
    program: Result<IdedExpr, String>,
}

impl Compiled {
    /// The compile error (upstream's wording), if the expression did not
    /// compile.
    pub fn error(&self) -> Option<&str> {
        self.program.as_ref().err().map(String::as_str)
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The expression did not compile.
    #[error("compilation failed: {0}")]
    Compile(String),
    /// The expression failed at runtime (including the cost bound).
    #[error("{0}")]
    Runtime(String),
}

/// Upstream's error when the cost budget runs out.
pub const COST_EXCEEDED: &str = "operation cancelled: actual cost limit exceeded";

/// Most distinct compiled expressions kept; beyond, expressions are compiled
/// per use (so tenants writing endless distinct expressions cost CPU, not
/// memory).
const CACHE_CAP: usize = 16_384;

type CacheKey = (String, Env);

fn cache() -> &'static Mutex<HashMap<CacheKey, Arc<Compiled>>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<Compiled>>>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The compiled program for `text` in `env`, from the process-wide cache.
pub fn compile(text: &str, env: &Env) -> Arc<Compiled> {
    let key = (text.to_string(), env.clone());
    if let Some(c) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return c;
    }
    let compiled = Arc::new(compile_uncached(text, env));
    if let Ok(mut c) = cache().lock()
        && c.len() < CACHE_CAP
    {
        c.entry(key).or_insert_with(|| compiled.clone());
    }
    compiled
}

/// How many distinct expressions the cache holds (for tests).
pub fn cached_programs() -> usize {
    cache().lock().map(|c| c.len()).unwrap_or(0)
}

fn compile_uncached(text: &str, env: &Env) -> Compiled {
    let program = cel::Program::compile(text)
        .map_err(|e| format!("ERROR: <input>: {e}"))
        .and_then(|p| {
            let mut expr = p.expression().clone();
            let mut scope = Vec::new();
            check_declared(&expr, env, &mut scope)?;
            rewrite(&mut expr, env);
            Ok(expr)
        });
    Compiled {
        text: text.to_string(),
        program,
    }
}

/// Refuses identifiers that are neither declared nor bound by an enclosing
/// comprehension, as upstream's type checker does.
fn check_declared(e: &IdedExpr, env: &Env, scope: &mut Vec<String>) -> Result<(), String> {
    let undeclared = |name: &str| {
        Err(format!(
            "ERROR: <input>: undeclared reference to '{name}' (in container '')"
        ))
    };
    match &e.expr {
        Expr::Ident(name) => {
            let ok = matches!(name.as_str(), "object" | "oldObject" | "request")
                || (env.params && name == "params")
                || (env.namespace_object && name == "namespaceObject")
                || name.starts_with('@')
                || scope.iter().any(|s| s == name);
            if ok { Ok(()) } else { undeclared(name) }
        }
        Expr::Select(sel) => {
            if let Expr::Ident(name) = &sel.operand.expr
                && name == "variables"
                && !scope.iter().any(|s| s == name)
            {
                return if env.variables.iter().any(|v| v == &sel.field) {
                    Ok(())
                } else {
                    Err(format!("ERROR: <input>: undefined field '{}'", sel.field))
                };
            }
            check_declared(&sel.operand, env, scope)
        }
        Expr::Call(call) => {
            // `math.greatest(...)`, `jsonpatch.escapeKey(...)`: a library's
            // namespace, not a variable.
            let namespace = matches!(&call.target.as_deref().map(|t| &t.expr),
                Some(Expr::Ident(n)) if LIBRARY_NAMESPACES.contains(&n.as_str())
                    && !scope.iter().any(|s| s == n));
            if let Some(t) = &call.target
                && !namespace
            {
                check_declared(t, env, scope)?;
            }
            call.args
                .iter()
                .try_for_each(|a| check_declared(a, env, scope))
        }
        Expr::Comprehension(c) => {
            check_declared(&c.iter_range, env, scope)?;
            check_declared(&c.accu_init, env, scope)?;
            scope.push(c.iter_var.clone());
            scope.push(c.accu_var.clone());
            let r = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .try_for_each(|x| check_declared(x, env, scope));
            scope.truncate(scope.len() - 2);
            r
        }
        Expr::List(l) => l
            .elements
            .iter()
            .try_for_each(|x| check_declared(x, env, scope)),
        Expr::Map(m) => m.entries.iter().try_for_each(|entry| match &entry.expr {
            EntryExpr::MapEntry(me) => {
                check_declared(&me.key, env, scope)?;
                check_declared(&me.value, env, scope)
            }
            EntryExpr::StructField(f) => check_declared(&f.value, env, scope),
        }),
        // Struct construction: only the mutation types, and only where
        // declared (the interpreter cannot build other messages).
        Expr::Struct(st) => {
            let known = env.mutation
                && (st.type_name == "JSONPatch"
                    || st.type_name == "Object"
                    || st.type_name.starts_with("Object."));
            if !known {
                return undeclared(&st.type_name);
            }
            st.entries.iter().try_for_each(|entry| match &entry.expr {
                EntryExpr::StructField(f) => check_declared(&f.value, env, scope),
                EntryExpr::MapEntry(me) => check_declared(&me.value, env, scope),
            })
        }
        Expr::Unspecified => Err("ERROR: <input>: unsupported expression".to_string()),
        _ => Ok(()),
    }
}

/// Namespaces of library functions (`<namespace>.<function>(...)`).
const LIBRARY_NAMESPACES: &[&str] = &[
    "jsonpatch",
    "math",
    "sets",
    "base64",
    "optional",
    "strings",
    "lists",
];

/// The function each comprehension iteration calls (a name no expression
/// can spell: identifiers never start with `@`).
const TICK: &str = "@nestkube_tick";

/// Prefix of the identifier a composited variable is rewritten to.
const VARIABLE_PREFIX: &str = "variables.";

/// Guards every comprehension with [`TICK`] and turns `variables.<name>`
/// into one identifier the [`Evaluation`] resolves lazily.
fn rewrite(e: &mut IdedExpr, env: &Env) {
    let id = e.id;
    match &mut e.expr {
        Expr::Select(sel) => {
            if let Expr::Ident(name) = &sel.operand.expr
                && name == "variables"
                && env.variables.iter().any(|v| v == &sel.field)
            {
                e.expr = if sel.test {
                    Expr::Literal(LiteralValue::Boolean(true.into()))
                } else {
                    Expr::Ident(format!("{VARIABLE_PREFIX}{}", sel.field))
                };
                return;
            }
            rewrite(&mut sel.operand, env);
        }
        Expr::Call(call) => {
            if let Some(t) = &mut call.target {
                rewrite(t, env);
            }
            call.args.iter_mut().for_each(|a| rewrite(a, env));
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                rewrite(x, env);
            }
            // `@tick() ? <loop condition> : false`: the conditional
            // propagates the tick's error (`&&` could absorb it).
            let cond = std::mem::replace(
                &mut c.loop_cond,
                IdedExpr {
                    id,
                    expr: Expr::Unspecified,
                },
            );
            c.loop_cond = IdedExpr {
                id: cond.id,
                expr: Expr::Call(CallExpr {
                    func_name: "_?_:_".to_string(),
                    target: None,
                    args: vec![
                        IdedExpr {
                            id: cond.id,
                            expr: Expr::Call(CallExpr {
                                func_name: TICK.to_string(),
                                target: None,
                                args: Vec::new(),
                            }),
                        },
                        cond,
                        IdedExpr {
                            id,
                            expr: Expr::Literal(LiteralValue::Boolean(false.into())),
                        },
                    ],
                }),
            };
        }
        Expr::List(l) => l.elements.iter_mut().for_each(|x| rewrite(x, env)),
        // `JSONPatch{op: ...}`, `Object{spec: ...}`: the map of its fields.
        Expr::Struct(st) => {
            let mut entries = std::mem::take(&mut st.entries);
            for entry in &mut entries {
                if let EntryExpr::StructField(f) = &mut entry.expr {
                    rewrite(&mut f.value, env);
                    entry.expr = EntryExpr::MapEntry(MapEntryExpr {
                        key: IdedExpr {
                            id,
                            expr: Expr::Literal(LiteralValue::String(f.field.clone().into())),
                        },
                        value: std::mem::take(&mut f.value),
                        optional: f.optional,
                    });
                }
            }
            e.expr = Expr::Map(MapExpr { entries });
        }
        Expr::Map(m) => {
            for entry in &mut m.entries {
                match &mut entry.expr {
                    EntryExpr::MapEntry(me) => {
                        rewrite(&mut me.key, env);
                        rewrite(&mut me.value, env);
                    }
                    EntryExpr::StructField(f) => rewrite(&mut f.value, env),
                }
            }
        }
        _ => {}
    }
}

/// The budget of the evaluation running on this thread.
#[derive(Clone, Copy)]
struct Budget {
    iterations: u64,
    deadline: Instant,
}

thread_local! {
    /// A context with the Kubernetes libraries, built once per thread
    /// (registering the functions is the expensive part).
    static BASE: Context<'static> = {
        let mut ctx = Context::default().with_all();
        ctx.add_function(TICK, tick);
        ctx
    };
    static BUDGET: std::cell::Cell<Option<Budget>> = const { std::cell::Cell::new(None) };
}

fn tick() -> Result<CelValue, ExecutionError> {
    BUDGET.with(|b| match b.get() {
        Some(mut budget) => {
            if budget.iterations == 0 || Instant::now() >= budget.deadline {
                return Err(ExecutionError::function_error("cost", COST_EXCEEDED));
            }
            budget.iterations -= 1;
            b.set(Some(budget));
            Ok(CelValue::Bool(true))
        }
        None => Ok(CelValue::Bool(true)),
    })
}

/// A JSON value as a CEL value (object keys as map keys, integers as `int`).
pub fn to_cel(v: &Value) -> CelValue {
    match v {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map(CelValue::Int)
            .or_else(|| n.as_u64().map(CelValue::UInt))
            .unwrap_or_else(|| CelValue::Float(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(a) => CelValue::List(Arc::new(a.iter().map(to_cel).collect())),
        Value::Object(o) => CelValue::Map(Map {
            map: Arc::new(
                o.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// A CEL value as JSON (what messages and patches are built from).
pub fn to_json(v: &CelValue) -> Value {
    match v {
        CelValue::Null => Value::Null,
        CelValue::Bool(b) => Value::Bool(*b),
        CelValue::Int(i) => Value::from(*i),
        CelValue::UInt(u) => Value::from(*u),
        CelValue::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        CelValue::String(s) => Value::String(s.to_string()),
        CelValue::List(l) => Value::Array(l.iter().map(to_json).collect()),
        CelValue::Map(m) => Value::Object(
            m.map
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                        Key::Bool(b) => b.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        CelValue::Timestamp(t) => Value::String(t.to_rfc3339()),
        other => Value::String(format!("{other:?}")),
    }
}

/// The values one request binds (upstream's activation).
#[derive(Clone, Debug)]
pub struct Activation {
    object: CelValue,
    old_object: CelValue,
    request: CelValue,
    params: CelValue,
    namespace_object: CelValue,
}

impl Activation {
    /// The activation of a request: `object`/`old_object` as admitted
    /// (`None` becomes null), the `request` map (see [`request_json`]).
    pub fn new(object: Option<&Value>, old_object: Option<&Value>, request: &Value) -> Self {
        Self {
            object: object.map_or(CelValue::Null, to_cel),
            old_object: old_object.map_or(CelValue::Null, to_cel),
            request: to_cel(request),
            params: CelValue::Null,
            namespace_object: CelValue::Null,
        }
    }

    /// With `params` bound (null when `None`).
    pub fn with_params(mut self, params: Option<&Value>) -> Self {
        self.params = params.map_or(CelValue::Null, to_cel);
        self
    }

    /// With `namespaceObject` bound (null when `None`).
    pub fn with_namespace(mut self, namespace: Option<&Value>) -> Self {
        self.namespace_object = namespace.map_or(CelValue::Null, to_cel);
        self
    }
}

/// Upstream's `CreateNamespaceObject`: the namespace as policies see it
/// (its name, labels, annotations, uid, creation time, spec and status; no
/// managed fields).
pub fn namespace_object(ns: &Value) -> Value {
    let m = &ns["metadata"];
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "generateName",
        "namespace",
        "labels",
        "annotations",
        "uid",
        "creationTimestamp",
        "resourceVersion",
        "ownerReferences",
        "finalizers",
        "deletionTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta.insert(k.to_string(), v.clone());
        }
    }
    serde_json::json!({
        "metadata": meta,
        "spec": ns.get("spec").cloned().unwrap_or(serde_json::json!({})),
        "status": ns.get("status").cloned().unwrap_or(serde_json::json!({})),
    })
}

/// A composited variable: its name and compiled expression.
#[derive(Clone, Debug)]
pub struct Variable {
    /// `variables.<name>`.
    pub name: String,
    /// Its expression, compiled in the environment of the variables before it.
    pub compiled: Arc<Compiled>,
}

/// Compiles a policy's `variables` (`[{name, expression}]`), each in the
/// environment `env` makes of the names declared before it; returns them
/// and the environment of the policy's other expressions (all names).
pub fn compile_variables(list: &Value, env: impl Fn(Vec<String>) -> Env) -> (Vec<Variable>, Env) {
    let mut names = Vec::new();
    let mut variables = Vec::new();
    for v in list.as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or("").to_string();
        let compiled = compile(v["expression"].as_str().unwrap_or(""), &env(names.clone()));
        names.push(name.clone());
        variables.push(Variable { name, compiled });
    }
    (variables, env(names))
}

/// One evaluation scope: an activation, the composited variables (each
/// evaluated at most once, when first referenced), and limits.
pub struct Evaluation<'a> {
    activation: &'a Activation,
    variables: &'a [Variable],
    values: Vec<OnceLock<Result<CelValue, String>>>,
    limits: Limits,
}

impl<'a> Evaluation<'a> {
    /// A scope over `activation` with `variables`.
    pub fn new(activation: &'a Activation, variables: &'a [Variable], limits: Limits) -> Self {
        Self {
            activation,
            variables,
            values: variables.iter().map(|_| OnceLock::new()).collect(),
            limits,
        }
    }

    /// Evaluates `compiled`, within the limits (a fresh budget per call).
    pub fn eval(&self, compiled: &Compiled) -> Result<CelValue, EvalError> {
        let expr = compiled
            .program
            .as_ref()
            .map_err(|e| EvalError::Compile(e.clone()))?;
        let outer = BUDGET.with(|b| b.get());
        if outer.is_none() {
            BUDGET.with(|b| {
                b.set(Some(Budget {
                    iterations: self.limits.iterations,
                    deadline: Instant::now() + self.limits.time,
                }))
            });
        }
        let result = self.run(expr);
        if outer.is_none() {
            BUDGET.with(|b| b.set(None));
        }
        result.map_err(|e| {
            // A variable that failed reads as its own error, as upstream's
            // lazy composited variables report it.
            if let Some(msg) = self.failed_variable(expr) {
                return EvalError::Runtime(msg);
            }
            EvalError::Runtime(runtime_message(&e))
        })
    }

    /// Evaluates `compiled` to a bool (`false` for any other value, as a
    /// non-bool validation fails upstream's check).
    pub fn eval_bool(&self, compiled: &Compiled) -> Result<bool, EvalError> {
        match self.eval(compiled)? {
            CelValue::Bool(b) => Ok(b),
            other => Err(EvalError::Runtime(format!(
                "expected bool result, got {}",
                type_name(&other)
            ))),
        }
    }

    fn run(&self, expr: &IdedExpr) -> Result<CelValue, ExecutionError> {
        BASE.with(|base| {
            let mut ctx = base.new_inner_scope();
            ctx.add_variable_from_value("object", self.activation.object.clone());
            ctx.add_variable_from_value("oldObject", self.activation.old_object.clone());
            ctx.add_variable_from_value("request", self.activation.request.clone());
            ctx.add_variable_from_value("params", self.activation.params.clone());
            ctx.add_variable_from_value(
                "namespaceObject",
                self.activation.namespace_object.clone(),
            );
            ctx.set_variable_resolver(self);
            // The interpreter may panic on inputs it does not support; a
            // tenant's expression must never take the request (or more)
            // down with it.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.resolve(expr)))
                .unwrap_or_else(|_| {
                    Err(ExecutionError::function_error(
                        "eval",
                        "internal error evaluating the expression",
                    ))
                })
        })
    }

    fn failed_variable(&self, expr: &IdedExpr) -> Option<String> {
        let refs = expr.references();
        self.variables
            .iter()
            .zip(&self.values)
            .find_map(|(v, value)| match value.get() {
                Some(Err(e)) if refs.has_variable(format!("{VARIABLE_PREFIX}{}", v.name)) => Some(
                    format!("composited variable \"{}\" fails to evaluate: {e}", v.name),
                ),
                _ => None,
            })
    }
}

impl cel::context::VariableResolver for Evaluation<'_> {
    fn resolve(&self, variable: &str) -> Option<CelValue> {
        let name = variable.strip_prefix(VARIABLE_PREFIX)?;
        let i = self.variables.iter().position(|v| v.name == name)?;
        let value = self.values[i].get_or_init(|| {
            let v = &self.variables[i];
            match &v.compiled.program {
                Ok(expr) => self.run(expr).map_err(|e| runtime_message(&e)),
                Err(e) => Err(format!("compilation failed: {e}")),
            }
        });
        value.as_ref().ok().cloned()
    }
}

/// cel-go's type names, for messages.
pub fn type_name(v: &CelValue) -> &'static str {
    match v {
        CelValue::List(_) => "list",
        CelValue::Map(_) => "map",
        CelValue::Function(..) => "function",
        CelValue::Int(_) => "int",
        CelValue::UInt(_) => "uint",
        CelValue::Float(_) => "double",
        CelValue::String(_) => "string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Bool(_) => "bool",
        CelValue::Duration(_) => "google.protobuf.Duration",
        CelValue::Timestamp(_) => "google.protobuf.Timestamp",
        CelValue::Opaque(_) => "opaque",
        CelValue::Null => "null_type",
    }
}

/// A runtime error in cel-go's words where they differ.
fn runtime_message(e: &ExecutionError) -> String {
    match e {
        ExecutionError::FunctionError { message, .. } if message == COST_EXCEEDED => {
            COST_EXCEEDED.to_string()
        }
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::UndeclaredReference(r) => format!("no such attribute(s): {r}"),
        ExecutionError::NoSuchOverload => "no such overload".to_string(),
        other => other.to_string(),
    }
}

/// The `request` map policies and match conditions see (upstream's
/// `CreateAdmissionRequest`).
#[allow(clippy::too_many_arguments)]
pub fn request_json(
    attrs: &crate::Attributes<'_>,
    kind: (&str, &str, &str),
    resource: (&str, &str, &str),
) -> Value {
    let user = attrs.user.as_deref();
    let gvk = |g: &str, v: &str, k: &str| serde_json::json!({"group": g, "version": v, "kind": k});
    let gvr =
        |g: &str, v: &str, r: &str| serde_json::json!({"group": g, "version": v, "resource": r});
    let requested = attrs.resource;
    let options_kind = match attrs.operation {
        crate::Operation::Create => "CreateOptions",
        crate::Operation::Update => "UpdateOptions",
        crate::Operation::Delete => "DeleteOptions",
        crate::Operation::Connect => "",
    };
    let mut r = serde_json::json!({
        "uid": "",
        "kind": gvk(kind.0, kind.1, kind.2),
        "resource": gvr(resource.0, resource.1, resource.2),
        "requestKind": gvk(&requested.group, &requested.version, &requested.kind),
        "requestResource": gvr(&requested.group, &requested.version, &requested.resource),
        "name": attrs.name,
        "namespace": attrs.namespace.unwrap_or(""),
        "operation": attrs.operation.as_str(),
        "userInfo": {
            "username": user.map(|u| u.name.as_str()).unwrap_or(""),
            "uid": user.map(|u| u.uid.as_str()).unwrap_or(""),
            "groups": user.map(|u| u.groups.clone()).unwrap_or_default(),
            "extra": user.map(|u| serde_json::to_value(&u.extra).unwrap_or_default()).unwrap_or_default(),
        },
        "dryRun": attrs.dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind},
    });
    if let Some(sub) = attrs.subresource {
        r["subResource"] = sub.into();
        r["requestSubResource"] = sub.into();
    }
    if options_kind.is_empty() {
        // A connection has no write options (its options are the object).
        r["options"] = Value::Null;
    }
    r
}

/// The names referenced by `compiled` that a caller may want to know about
/// (e.g. whether it reads `namespaceObject`).
pub fn references(compiled: &Compiled) -> BTreeSet<String> {
    compiled
        .program
        .as_ref()
        .map(|p| {
            p.references()
                .variables()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
