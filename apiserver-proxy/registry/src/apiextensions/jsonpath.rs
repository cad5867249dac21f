//! The JSONPath subset CRDs use: `additionalPrinterColumns[].jsonPath`,
//! the scale subresource's `specReplicasPath`/`statusReplicasPath`/
//! `labelSelectorPath` and `selectableFields[].jsonPath`.
//!
//! Upstream evaluates these with `k8s.io/client-go/util/jsonpath`, a
//! template language of its own (neither RFC 9535 nor Goessner's), wrapping
//! the column path in `{…}`. Printer columns use a small part of it: field
//! steps (`.a`, `['a.b']`), indexes and slices' simplest forms (`[0]`,
//! `[-1]`, `[*]`) and equality filters (`[?(@.type=="Ready")]`). That part
//! is implemented here, parsed once per CRD version; anything else is
//! refused at parse time so a column never silently shows wrong data.

use serde_json::Value;

/// One step of a path.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    /// `.name` or `['name']`.
    Field(String),
    /// `[n]` (negative counts from the end).
    Index(i64),
    /// `[*]` or `.*`: every element or value.
    Wildcard,
    /// `[?(@.a.b == "x")]`: elements whose sub-path equals a literal
    /// (`!=` when `equal` is false).
    Filter {
        path: Vec<Step>,
        value: Value,
        equal: bool,
    },
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
    source: String,
}

/// A path outside the supported subset, or malformed.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid JSONPath {path:?}: {reason}")]
pub struct JsonPathError {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

impl JsonPath {
    /// Parses `.a.b[0]`, with or without the `{…}` template braces.
    pub fn parse(path: &str) -> Result<Self, JsonPathError> {
        let err = |reason: &str| JsonPathError {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let inner = path
            .trim()
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(path.trim());
        let inner = inner.strip_prefix('$').unwrap_or(inner);
        let steps = parse_steps(inner).map_err(|r| err(&r))?;
        Ok(Self {
            steps,
            source: path.to_string(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Every value the path selects in `obj`, in document order.
    pub fn find<'a>(&self, obj: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![obj];
        for step in &self.steps {
            current = apply(step, current);
            if current.is_empty() {
                break;
            }
        }
        current
    }

    /// The first selected value, if any.
    pub fn first<'a>(&self, obj: &'a Value) -> Option<&'a Value> {
        self.find(obj).into_iter().next()
    }

    /// The field path when the path is only field steps (`.spec.replicas`
    /// -> `["spec", "replicas"]`), for writes through it.
    pub fn field_names(&self) -> Option<Vec<&str>> {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Field(f) => Some(f.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn apply<'a>(step: &Step, from: Vec<&'a Value>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for v in from {
        match step {
            Step::Field(name) => {
                if let Some(x) = v.get(name.as_str()) {
                    out.push(x);
                }
            }
            Step::Index(i) => {
                if let Some(items) = v.as_array() {
                    let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                    if let Some(x) = usize::try_from(idx).ok().and_then(|n| items.get(n)) {
                        out.push(x);
                    }
                }
            }
            Step::Wildcard => match v {
                Value::Array(items) => out.extend(items.iter()),
                Value::Object(map) => out.extend(map.values()),
                _ => {}
            },
            Step::Filter { path, value, equal } => {
                for item in v.as_array().into_iter().flatten() {
                    let mut sub = vec![item];
                    for s in path {
                        sub = apply(s, sub);
                    }
                    let hit = sub.first().is_some_and(|x| literal_eq(x, value));
                    if hit == *equal && (!sub.is_empty() || !*equal) {
                        out.push(item);
                    }
                }
            }
        }
    }
    out
}

/// Equality as upstream's filter compares: numbers by value, the rest exactly.
fn literal_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn parse_steps(s: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut steps = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                match name.as_str() {
                    "" if i == chars.len() && steps.is_empty() => {} // "." alone: the object
                    "" => return Err("empty field name".into()),
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                let close = find_bracket_end(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(parse_bracket(inner.trim())?);
                i = close + 1;
            }
            c if steps.is_empty() && i == 0 && (c.is_alphanumeric() || c == '_') => {
                // A leading field without a dot (`spec.x`), as kubectl accepts.
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[') {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
            c => return Err(format!("unexpected {c:?}")),
        }
    }
    Ok(steps)
}

/// The index of the `]` closing the `[` at `open`, skipping quoted strings.
fn find_bracket_end(chars: &[char], open: usize) -> Result<usize, String> {
    let mut quote: Option<char> = None;
    let mut depth = 0;
    for (n, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Ok(n);
                }
            }
            _ => {}
        }
    }
    Err("unterminated [".into())
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    if (q == '"' || q == '\'') && s.len() >= 2 && s.ends_with(q) {
        Some(s[1..s.len() - 1].to_string())
    } else {
        None
    }
}

fn parse_bracket(inner: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::Wildcard);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Field(name));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    let Some(filter) = inner.strip_prefix('?') else {
        return Err(format!("unsupported subscript [{inner}]"));
    };
    let filter = filter.trim();
    let filter = filter
        .strip_prefix('(')
        .and_then(|f| f.strip_suffix(')'))
        .unwrap_or(filter)
        .trim();
    let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = filter.split_once("!=") {
        (l, r, false)
    } else {
        return Err(format!("unsupported filter {filter:?}"));
    };
    let lhs = lhs
        .trim()
        .strip_prefix('@')
        .ok_or_else(|| format!("filter must start with @: {filter:?}"))?;
    let path = parse_steps(lhs)?;
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s),
        None => serde_json::from_str(rhs).map_err(|_| format!("unsupported literal {rhs:?}"))?,
    };
    Ok(Step::Filter { path, value, equal })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, obj: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .unwrap()
            .find(obj)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn selects_fields_indexes_wildcards_and_filters() {
        let obj = json!({
            "spec": {"replicas": 3, "hosts": ["a", "b"], "dotted.key": 1},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Synced", "status": "False"},
            ]},
        });
        assert_eq!(find(".spec.replicas", &obj), [json!(3)]);
        assert_eq!(find("{.spec.replicas}", &obj), [json!(3)]);
        assert_eq!(find(".spec.hosts[1]", &obj), [json!("b")]);
        assert_eq!(find(".spec.hosts[-1]", &obj), [json!("b")]);
        assert_eq!(find(".spec.hosts[*]", &obj), [json!("a"), json!("b")]);
        assert_eq!(find(".spec['dotted.key']", &obj), [json!(1)]);
        assert_eq!(
            find(".status.conditions[?(@.type==\"Ready\")].status", &obj),
            [json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!='Ready')].type", &obj),
            [json!("Synced")]
        );
        assert!(find(".spec.missing.deeper", &obj).is_empty());
        assert_eq!(
            JsonPath::parse(".spec.replicas").unwrap().field_names(),
            Some(vec!["spec", "replicas"])
        );
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert!(JsonPath::parse(".spec[1:2]").is_err());
        assert!(JsonPath::parse(".spec..x").is_err());
        assert!(JsonPath::parse(".a[?(@.x > 1)]").is_err());
    }
}
