//! Label and field selectors (`?labelSelector=`, `?fieldSelector=`), parsed as
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields` parse them.
//!
//! Parsing is pure; matching takes a lookup closure so the caller decides where
//! labels and field values come from (object metadata, strategy field labels).

use std::collections::BTreeMap;

/// A parse error; the HTTP layer answers 400 with it.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// A label requirement operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `k=v`, `k==v`, `k in (v1,v2)`
    In(Vec<String>),
    /// `k!=v`, `k notin (v1,v2)`
    NotIn(Vec<String>),
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>n`
    Gt(i64),
    /// `k<n`
    Lt(i64),
}

/// One requirement on one label key.
#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    /// Label key.
    pub key: String,
    /// Operator and values.
    pub op: Op,
}

/// A conjunction of label requirements; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Parses upstream's string form.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(Self(reqs))
    }

    /// Whether labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| {
            let v = labels.get(&r.key);
            match &r.op {
                Op::In(vals) => v.is_some_and(|v| vals.contains(v)),
                Op::NotIn(vals) => v.is_none_or(|v| !vals.contains(v)),
                Op::Exists => v.is_some(),
                Op::DoesNotExist => v.is_none(),
                Op::Gt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x > *n),
                Op::Lt(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|x| x < *n),
            }
        })
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn valid_key(key: &str) -> Result<(), SelectorError> {
    let ok = !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SelectorError(format!("invalid label key {key:?}")))
    }
}

fn valid_value(v: &str) -> Result<(), SelectorError> {
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SelectorError(format!("invalid label value: {v:?}")))
    }
}

fn parse_set(rest: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("found '{rest}', expected: '('")))?;
    let vals: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    for v in &vals {
        valid_value(v)?;
    }
    Ok(vals)
}

fn parse_requirement(part: &str) -> Result<Requirement, SelectorError> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        valid_key(key)?;
        return Ok(Requirement {
            key: key.to_string(),
            op: Op::DoesNotExist,
        });
    }
    for (token, neg) in [(" notin ", true), (" in ", false)] {
        if let Some(idx) = part.find(token) {
            let key = part[..idx].trim();
            valid_key(key)?;
            let vals = parse_set(&part[idx + token.len()..])?;
            let op = if neg { Op::NotIn(vals) } else { Op::In(vals) };
            return Ok(Requirement {
                key: key.to_string(),
                op,
            });
        }
    }
    for (token, kind) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
        if let Some(idx) = part.find(token) {
            let key = part[..idx].trim();
            let value = part[idx + token.len()..].trim();
            valid_key(key)?;
            let op = match kind {
                0 | 1 => {
                    valid_value(value)?;
                    if kind == 0 {
                        Op::NotIn(vec![value.to_string()])
                    } else {
                        Op::In(vec![value.to_string()])
                    }
                }
                _ => {
                    let n = value.parse::<i64>().map_err(|_| {
                        SelectorError(
                            "for 'Gt', 'Lt' operators, the value must be an integer".to_string(),
                        )
                    })?;
                    if kind == 2 { Op::Gt(n) } else { Op::Lt(n) }
                }
            };
            return Ok(Requirement {
                key: key.to_string(),
                op,
            });
        }
    }
    valid_key(part)?;
    Ok(Requirement {
        key: part.to_string(),
        op: Op::Exists,
    })
}

/// One field requirement: `field=value` or `field!=value`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRequirement {
    /// Field label, e.g. `status.phase`.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// True for `!=`.
    pub negated: bool,
}

/// A conjunction of field requirements.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    /// Parses `a=b,c!=d` (with `\` escapes as upstream).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_unescaped(s, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, value, negated) = if let Some((f, v)) = split_once_unescaped(&term, "!=") {
                (f, v, true)
            } else if let Some((f, v)) = split_once_unescaped(&term, "==") {
                (f, v, false)
            } else if let Some((f, v)) = split_once_unescaped(&term, "=") {
                (f, v, false)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            reqs.push(FieldRequirement {
                field: unescape(&field),
                value: unescape(&value),
                negated,
            });
        }
        Ok(Self(reqs))
    }

    /// Whether the object's field values satisfy every requirement. `lookup`
    /// returns `None` for an unsupported field; the first such field is the error.
    pub fn matches(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<bool, String> {
        for r in &self.0 {
            let actual = lookup(&r.field).ok_or_else(|| r.field.clone())?;
            if (actual == r.value) == r.negated {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The value required for `field` by an `=` term, if any (used to narrow
    /// a list to one name or namespace).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(cur) = out.last_mut() {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
        } else if c == sep {
            out.push(String::new());
        } else if let Some(cur) = out.last_mut() {
            cur.push(c);
        }
    }
    out
}

fn split_once_unescaped(s: &str, op: &str) -> Option<(String, String)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        // Bytes, not `s[i..]`: `i` may fall inside a multi-byte character
        // (that panicked). `op` is ASCII, so a match starts on a boundary.
        if bytes[i..].starts_with(op.as_bytes()) {
            return Some((s[..i].to_string(), s[i + op.len()..].to_string()));
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_operators() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier in (front)", true),
            ("missing!=x", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&l),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors() {
        let s = FieldSelector::parse("metadata.name=a,status.phase!=Running").unwrap();
        let lookup = |f: &str| match f {
            "metadata.name" => Some("a".to_string()),
            "status.phase" => Some("Pending".to_string()),
            _ => None,
        };
        assert_eq!(s.matches(lookup), Ok(true));
        assert_eq!(
            FieldSelector::parse("spec.x=1").unwrap().matches(lookup),
            Err("spec.x".to_string())
        );
        assert_eq!(FieldSelector::parse("a\\=b=c").unwrap().0[0].field, "a=b");
    }
}
