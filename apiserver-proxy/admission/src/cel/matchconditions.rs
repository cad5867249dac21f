//! `matchConditions` of admission webhooks and policies (upstream's
//! `k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions`).
//!
//! Compile the list once ([`MatchConditions::compile`], programs shared
//! process-wide through [`super::compile`]), then per request
//! [`MatchConditions::matches`]:
//!
//! - every condition true: [`MatchResult::Matches`];
//! - any condition false: [`MatchResult::NoMatch`] with its name (a false
//!   condition wins over another's error, as upstream);
//! - otherwise, when one or more conditions failed:
//!   [`MatchResult::Error`], and the caller applies its `failurePolicy`
//!   (`Fail`: refuse the request with the error; `Ignore`: skip the webhook
//!   or policy). The error reads as upstream's: each condition's
//!   `expression '<expression>' resulted in error: <why>`, several joined as
//!   `[<first>, <second>]`.

use std::sync::Arc;

use serde_json::Value;

use super::{Activation, Compiled, Env, Evaluation, Limits, compile};

/// One compiled condition.
#[derive(Clone, Debug)]
pub struct MatchCondition {
    /// Its `name`.
    pub name: String,
    /// Its compiled `expression`.
    pub compiled: Arc<Compiled>,
}

/// The compiled `matchConditions` of one webhook or policy.
#[derive(Clone, Debug, Default)]
pub struct MatchConditions {
    conditions: Vec<MatchCondition>,
}

/// The outcome of [`MatchConditions::matches`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatchResult {
    /// Every condition is true (or there are none).
    Matches,
    /// This condition is false.
    NoMatch(String),
    /// Conditions failed to evaluate; the caller applies its failure policy.
    Error(String),
}

impl MatchConditions {
    /// Compiles `{name, expression}` pairs in `env` (for a webhook,
    /// [`Env::match_conditions`]; for a policy, with `params`).
    pub fn compile<'a>(
        conditions: impl IntoIterator<Item = (&'a str, &'a str)>,
        env: &Env,
    ) -> Self {
        Self {
            conditions: conditions
                .into_iter()
                .map(|(name, expression)| MatchCondition {
                    name: name.to_string(),
                    compiled: compile(expression, env),
                })
                .collect(),
        }
    }

    /// Reads a `matchConditions` JSON list (`[{name, expression}]`).
    pub fn from_json(list: &Value, env: &Env) -> Self {
        let pairs: Vec<(&str, &str)> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or(""),
                    c["expression"].as_str().unwrap_or(""),
                )
            })
            .collect();
        Self::compile(pairs, env)
    }

    /// Whether there are no conditions.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Evaluates the conditions on `activation` (upstream's `Match`).
    pub fn matches(&self, activation: &Activation) -> MatchResult {
        self.matches_in(&Evaluation::new(activation, &[], Limits::DEFAULT))
    }

    /// Evaluates the conditions in an existing scope (a policy's, with its
    /// params).
    pub fn matches_in(&self, eval: &Evaluation<'_>) -> MatchResult {
        let mut errors = Vec::new();
        for c in &self.conditions {
            match eval.eval(&c.compiled) {
                Ok(kube_cel::cel::Value::Bool(true)) => {}
                Ok(kube_cel::cel::Value::Bool(false)) => {
                    return MatchResult::NoMatch(c.name.clone());
                }
                Ok(other) => errors.push(format!(
                    "expression '{}' resulted in error: no such overload: expected bool, got {}",
                    c.compiled.text,
                    super::type_name(&other)
                )),
                Err(e) => errors.push(format!(
                    "expression '{}' resulted in error: {e}",
                    c.compiled.text
                )),
            }
        }
        match errors.len() {
            0 => MatchResult::Matches,
            1 => MatchResult::Error(errors.remove(0)),
            _ => MatchResult::Error(format!("[{}]", errors.join(", "))),
        }
    }
}
