//! Whether the rules a user holds cover the rules they ask to grant
//! (upstream `validation.Covers`), decided without expanding rules into the
//! cartesian product of their lists.
//!
//! Upstream breaks every requested rule into one (group, resource, verb,
//! name) tuple per combination and looks for an owner rule containing each:
//! a 4 KB Role listing 200 groups, resources and verbs is eight million
//! tuples. Here the values of each list are first grouped into classes of
//! values the owner's rules treat alike (the same owner rules contain them),
//! and the product is searched over classes, cut short as soon as one owner
//! rule contains a whole sub-box or no owner rule can. The answer is
//! upstream's, tuple for tuple; the work is the request's size times the
//! owner's rules, plus a search over classes capped at [`MAX_SEARCH_STEPS`]
//! (past it the rules count as not covered).
//!
//! It owns the coverage decision and the description of what is missing:
//! upstream's compact lines (`{APIGroups:[""], Resources:["pods"],
//! Verbs:["get"]}`) when few tuples are missing, boxes of values otherwise,
//! never longer than [`MAX_DESCRIPTION_BYTES`]. It must never report rules
//! as covered that it could not prove covered.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::rbac::PolicyRule;

/// Most search steps (class combinations visited) one check may take, over
/// all requested rules; past it the request is refused as not covered.
pub const MAX_SEARCH_STEPS: usize = 1_000_000;

/// Most missing tuples described one by one, as upstream does; more are
/// described as boxes of values.
pub const MAX_TUPLES_LISTED: u64 = 256;

/// Longest description of the missing rules, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;

/// Most values of one list shown in a box description.
const MAX_LIST_ITEMS: usize = 8;

/// Most missing boxes remembered for the description (all are counted).
const MAX_BOXES_KEPT: usize = MAX_TUPLES_LISTED as usize;

/// What the owner's rules do not cover.
#[derive(Debug)]
pub struct Missing {
    /// The missing rules, described (upstream's format when short).
    pub description: String,
}

/// The rules of `requested` that `owner` does not cover, described; `None`
/// when `owner` covers them all.
pub fn missing(owner: &[PolicyRule], requested: &[PolicyRule]) -> Option<Missing> {
    let index = OwnerIndex::new(owner);
    let parts: Vec<Part<'_>> = requested.iter().flat_map(|r| Part::of(r, &index)).collect();
    let mut search = Search {
        steps: 0,
        boxes: Vec::new(),
        boxes_found: 0,
        tuples_missing: 0,
    };
    for (i, part) in parts.iter().enumerate() {
        if search.run(part, i, owner.len()).is_err() {
            return Some(Missing {
                description: format!(
                    "{{the requested rules are too many to compare with the rules held (more than {MAX_SEARCH_STEPS} steps); grant them in smaller rules}}"
                ),
            });
        }
    }
    if search.boxes_found == 0 {
        return None;
    }
    let lines = if search.tuples_missing <= MAX_TUPLES_LISTED {
        // Every box was kept: there are no more boxes than tuples.
        upstream_lines(&parts, &search.boxes)
    } else {
        search
            .boxes
            .iter()
            .map(|b| describe_box(&parts[b.part], b))
            .collect()
    };
    let not_kept = search.boxes_found - search.boxes.len();
    Some(Missing {
        description: join_capped(&lines, not_kept),
    })
}

/// A set of owner rules, one bit per rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn none(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn all(n: usize) -> Self {
        let mut b = Self::none(n);
        for i in 0..n {
            b.insert(i);
        }
        b
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn and(&self, other: &Bits) -> Bits {
        Bits(self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect())
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// For one list of the owner's rules: which rules list `*`, and which list
/// each value.
struct ListIndex<'a> {
    star: Bits,
    by_value: HashMap<&'a str, Bits>,
}

impl<'a> ListIndex<'a> {
    fn new(owner: &'a [PolicyRule], list: impl Fn(&'a PolicyRule) -> &'a [String]) -> Self {
        let n = owner.len();
        let mut star = Bits::none(n);
        let mut by_value: HashMap<&str, Bits> = HashMap::new();
        for (i, rule) in owner.iter().enumerate() {
            for v in list(rule) {
                if v == "*" {
                    star.insert(i);
                }
                by_value
                    .entry(v.as_str())
                    .or_insert_with(|| Bits::none(n))
                    .insert(i);
            }
        }
        Self { star, by_value }
    }

    /// The rules listing `v` exactly, plus those listing `*`.
    fn containing(&self, v: &str) -> Bits {
        let mut b = self.star.clone();
        if let Some(listed) = self.by_value.get(v) {
            b.union(listed);
        }
        b
    }

    /// The rules listing `v` exactly.
    fn listing(&self, v: &str, n: usize) -> Bits {
        self.by_value
            .get(v)
            .cloned()
            .unwrap_or_else(|| Bits::none(n))
    }
}

/// The owner's rules, indexed per list (upstream `ruleCovers`, one list at a
/// time).
struct OwnerIndex<'a> {
    rules: &'a [PolicyRule],
    verbs: ListIndex<'a>,
    groups: ListIndex<'a>,
    resources: ListIndex<'a>,
    names: ListIndex<'a>,
    /// Rules without resourceNames (they cover every name, and no name).
    all_names: Bits,
}

impl<'a> OwnerIndex<'a> {
    fn new(rules: &'a [PolicyRule]) -> Self {
        let mut all_names = Bits::none(rules.len());
        for (i, r) in rules.iter().enumerate() {
            if r.resource_names.is_empty() {
                all_names.insert(i);
            }
        }
        Self {
            rules,
            verbs: ListIndex::new(rules, |r| &r.verbs),
            groups: ListIndex::new(rules, |r| &r.api_groups),
            resources: ListIndex::new(rules, |r| &r.resources),
            names: ListIndex::new(rules, |r| &r.resource_names),
            all_names,
        }
    }

    fn n(&self) -> usize {
        self.rules.len()
    }

    /// Upstream `resourceCoversAll` for one resource: `*`, the resource, or
    /// `*/<subresource>`.
    fn resource(&self, r: &str) -> Bits {
        let mut b = self.resources.containing(r);
        if let Some((_, sub)) = r.split_once('/') {
            b.union(&self.resources.listing(&format!("*/{sub}"), self.n()));
        }
        b
    }

    /// A resource name, or `None` for a rule without names (which only
    /// owner rules without names cover).
    fn name(&self, n: Option<&str>) -> Bits {
        let mut b = self.all_names.clone();
        if let Some(n) = n {
            b.union(&self.names.listing(n, self.n()));
        }
        b
    }

    /// Upstream `nonResourceURLCovers`, for rules without resourceNames
    /// (a tuple without names needs an owner rule without names).
    fn url(&self, url: &str) -> Bits {
        let mut b = Bits::none(self.n());
        for (i, rule) in self.rules.iter().enumerate() {
            let covers = rule.resource_names.is_empty()
                && rule.non_resource_urls.iter().any(|o| {
                    o == url || (o.ends_with('*') && url.starts_with(o.trim_end_matches('*')))
                });
            if covers {
                b.insert(i);
            }
        }
        b
    }
}

/// Which list of a rule a dimension is, for descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Groups,
    Resources,
    Urls,
    Names,
    Verbs,
}

impl List {
    fn label(self) -> &'static str {
        match self {
            List::Groups => "APIGroups",
            List::Resources => "Resources",
            List::Urls => "NonResourceURLs",
            List::Names => "ResourceNames",
            List::Verbs => "Verbs",
        }
    }
}

/// One dimension of a requested rule: its distinct values (in request
/// order), grouped into classes by the owner rules containing them.
struct Dimension<'a> {
    list: List,
    /// `None` is "no name" (a rule without resourceNames).
    values: Vec<Option<&'a str>>,
    classes: Vec<Class>,
}

struct Class {
    owners: Bits,
    members: Vec<usize>,
}

impl<'a> Dimension<'a> {
    fn new(
        list: List,
        values: Vec<Option<&'a str>>,
        owners: impl Fn(Option<&str>) -> Bits,
    ) -> Self {
        let mut seen = HashSet::new();
        let values: Vec<_> = values.into_iter().filter(|v| seen.insert(*v)).collect();
        let mut by_owners: HashMap<Bits, usize> = HashMap::new();
        let mut classes: Vec<Class> = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let bits = owners(*v);
            let c = *by_owners.entry(bits.clone()).or_insert_with(|| {
                classes.push(Class {
                    owners: bits,
                    members: Vec::new(),
                });
                classes.len() - 1
            });
            classes[c].members.push(i);
        }
        Self {
            list,
            values,
            classes,
        }
    }
}

/// The resource part (groups × resources × verbs × names) or the
/// non-resource part (URLs × verbs) of one requested rule.
struct Part<'a> {
    dims: Vec<Dimension<'a>>,
    /// `covering_rest[d]`: owner rules containing every value of every
    /// dimension from `d` on.
    covering_rest: Vec<Bits>,
}

impl<'a> Part<'a> {
    /// The non-empty parts of `rule` (upstream `BreakdownRule` yields no
    /// tuple for a rule with an empty list).
    fn of(rule: &'a PolicyRule, owner: &OwnerIndex<'_>) -> Vec<Part<'a>> {
        let some = |l: &'a [String]| l.iter().map(|s| Some(s.as_str())).collect::<Vec<_>>();
        let verbs = || {
            Dimension::new(List::Verbs, some(&rule.verbs), |v| {
                owner.verbs.containing(v.unwrap_or_default())
            })
        };
        let mut parts = Vec::new();
        if !rule.api_groups.is_empty() && !rule.resources.is_empty() && !rule.verbs.is_empty() {
            let names = if rule.resource_names.is_empty() {
                vec![None]
            } else {
                some(&rule.resource_names)
            };
            parts.push(vec![
                Dimension::new(List::Groups, some(&rule.api_groups), |g| {
                    owner.groups.containing(g.unwrap_or_default())
                }),
                Dimension::new(List::Resources, some(&rule.resources), |r| {
                    owner.resource(r.unwrap_or_default())
                }),
                verbs(),
                Dimension::new(List::Names, names, |n| owner.name(n)),
            ]);
        }
        if !rule.non_resource_urls.is_empty() && !rule.verbs.is_empty() {
            parts.push(vec![
                Dimension::new(List::Urls, some(&rule.non_resource_urls), |u| {
                    owner.url(u.unwrap_or_default())
                }),
                verbs(),
            ]);
        }
        parts
            .into_iter()
            .map(|dims: Vec<Dimension<'a>>| {
                let mut covering_rest = vec![Bits::all(owner.n()); dims.len() + 1];
                for d in (0..dims.len()).rev() {
                    let mut b = covering_rest[d + 1].clone();
                    for c in &dims[d].classes {
                        b = b.and(&c.owners);
                    }
                    covering_rest[d] = b;
                }
                Part {
                    dims,
                    covering_rest,
                }
            })
            .collect()
    }
}

/// A missing box: for each dimension of a part, one class, or every value
/// (`None`) for the dimensions after the one where no owner rule was left.
#[derive(Debug)]
struct MissingBox {
    /// Index of the part in [`missing`]'s list.
    part: usize,
    classes: Vec<Option<usize>>,
}

struct Search {
    steps: usize,
    boxes: Vec<MissingBox>,
    boxes_found: usize,
    tuples_missing: u64,
}

/// The search ran out of steps.
struct TooComplex;

impl Search {
    fn run(&mut self, part: &Part<'_>, index: usize, owners: usize) -> Result<(), TooComplex> {
        let mut chosen = Vec::with_capacity(part.dims.len());
        self.visit(part, index, 0, &Bits::all(owners), &mut chosen)
    }

    fn visit(
        &mut self,
        part: &Part<'_>,
        index: usize,
        d: usize,
        active: &Bits,
        chosen: &mut Vec<usize>,
    ) -> Result<(), TooComplex> {
        self.steps += 1;
        if self.steps > MAX_SEARCH_STEPS {
            return Err(TooComplex);
        }
        // One active owner rule contains all that is left: covered.
        if !active.and(&part.covering_rest[d]).is_empty() {
            return Ok(());
        }
        if active.is_empty() {
            let tuples = part.dims.iter().enumerate().fold(1u64, |acc, (i, dim)| {
                let width = match chosen.get(i) {
                    Some(&c) => dim.classes[c].members.len(),
                    None => dim.values.len(),
                };
                acc.saturating_mul(width as u64)
            });
            self.tuples_missing = self.tuples_missing.saturating_add(tuples);
            self.boxes_found += 1;
            if self.boxes.len() < MAX_BOXES_KEPT {
                let mut classes: Vec<Option<usize>> = chosen.iter().map(|c| Some(*c)).collect();
                classes.resize(part.dims.len(), None);
                self.boxes.push(MissingBox {
                    part: index,
                    classes,
                });
            }
            return Ok(());
        }
        // `covering_rest` of the last dimension is all rules, so `active`
        // being non-empty there returned above: `d` is a dimension here.
        for (c, class) in part.dims[d].classes.iter().enumerate() {
            chosen.push(c);
            let result = self.visit(part, index, d + 1, &active.and(&class.owners), chosen);
            chosen.pop();
            result?;
        }
        Ok(())
    }
}

/// The values of dimension `d` a box spans.
fn box_members(part: &Part<'_>, b: &MissingBox, d: usize) -> Vec<usize> {
    match b.classes[d] {
        Some(c) => part.dims[d].classes[c].members.clone(),
        None => (0..part.dims[d].values.len()).collect(),
    }
}

/// Upstream's lines for few missing tuples: every tuple (`BreakdownRule`
/// order), resource tuples merged by group, resource and name with their
/// verbs in order (`CompactRules`), each as `CompactString`, sorted and
/// without duplicates.
fn upstream_lines(parts: &[Part<'_>], boxes: &[MissingBox]) -> Vec<String> {
    let mut lines = BTreeSet::new();
    let mut merged: Vec<(Vec<Option<&str>>, Vec<&str>)> = Vec::new();
    let mut merged_at: HashMap<Vec<Option<&str>>, usize> = HashMap::new();
    for (i, part) in parts.iter().enumerate() {
        let mut tuples: Vec<Vec<usize>> = Vec::new();
        for b in boxes.iter().filter(|b| b.part == i) {
            let mut partial: Vec<Vec<usize>> = vec![Vec::new()];
            for d in 0..part.dims.len() {
                let members = box_members(part, b, d);
                partial = partial
                    .into_iter()
                    .flat_map(|t| {
                        members.iter().map(move |m| {
                            let mut t = t.clone();
                            t.push(*m);
                            t
                        })
                    })
                    .collect();
            }
            tuples.extend(partial);
        }
        // Value indices follow request order, and the dimensions
        // BreakdownRule's nesting: sorting gives its order.
        tuples.sort();
        let value = |d: usize, t: &[usize]| part.dims[d].values[t[d]];
        for t in &tuples {
            if part.dims[0].list == List::Urls {
                lines.insert(compact_string(&[
                    (List::Urls, go_quote_list(value(0, t))),
                    (List::Verbs, go_quote_list(value(1, t))),
                ]));
                continue;
            }
            // Groups, resources, verbs, names.
            let key = vec![value(0, t), value(1, t), value(3, t)];
            let verb = value(2, t).unwrap_or_default();
            let at = *merged_at.entry(key.clone()).or_insert_with(|| {
                merged.push((key, Vec::new()));
                merged.len() - 1
            });
            if !merged[at].1.contains(&verb) {
                merged[at].1.push(verb);
            }
        }
    }
    for (key, verbs) in merged {
        let mut lists = vec![
            (List::Groups, go_quote_list(key[0])),
            (List::Resources, go_quote_list(key[1])),
            (List::Verbs, go_quote_list(verbs.iter().copied().map(Some))),
        ];
        if key[2].is_some() {
            lists.push((List::Names, go_quote_list(key[2])));
        }
        lines.insert(compact_string(&lists));
    }
    lines.into_iter().collect()
}

/// A box as one line in `CompactString`'s shape, each list cut to
/// [`MAX_LIST_ITEMS`] values and a count of the rest.
fn describe_box(part: &Part<'_>, b: &MissingBox) -> String {
    let lists: Vec<(List, String)> = part
        .dims
        .iter()
        .enumerate()
        .filter_map(|(d, dim)| {
            let members = box_members(part, b, d);
            let shown = members.iter().take(MAX_LIST_ITEMS).map(|m| dim.values[*m]);
            let mut list = go_quote_list(shown);
            // A rule without resourceNames has none to show.
            if list == "[]" {
                return None;
            }
            if members.len() > MAX_LIST_ITEMS {
                list.insert_str(
                    list.len() - 1,
                    &format!(" ...(+{} more)", members.len() - MAX_LIST_ITEMS),
                );
            }
            Some((dim.list, list))
        })
        .collect();
    compact_string(&lists)
}

/// `lines` joined by newlines, at most [`MAX_DESCRIPTION_BYTES`], saying how
/// many lines (plus `not_kept` never described) are not shown.
fn join_capped(lines: &[String], not_kept: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for line in lines {
        let sep = usize::from(!out.is_empty());
        if out.len() + sep + line.len() > MAX_DESCRIPTION_BYTES {
            if out.is_empty() {
                let mut cut = MAX_DESCRIPTION_BYTES - 3;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&line[..cut]);
                out.push_str("...");
                shown = 1;
            }
            break;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(line);
        shown += 1;
    }
    let omitted = lines.len() - shown + not_kept;
    if omitted > 0 {
        out.push_str(&format!("\n... and {omitted} more not shown"));
    }
    out
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a `[]string`: `["a" "b"]` (`None`s, "no name", skipped).
fn go_quote_list<'a, T: Into<Option<&'a str>>>(items: impl IntoIterator<Item = T>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .filter_map(|i| i.into().map(go_quote))
        .collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%q` of a list of strings, e.g. a user's groups.
pub fn go_quoted_strings(items: &[String]) -> String {
    go_quote_list(items.iter().map(String::as_str))
}

/// Upstream `CompactString`: the non-empty lists, in upstream's order.
fn compact_string(lists: &[(List, String)]) -> String {
    let order = [
        List::Groups,
        List::Resources,
        List::Urls,
        List::Names,
        List::Verbs,
    ];
    let parts: Vec<String> = order
        .iter()
        .filter_map(|l| {
            lists
                .iter()
                .find(|(list, _)| list == l)
                .map(|(list, v)| format!("{}:{v}", list.label()))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn rules(v: Value) -> Vec<PolicyRule> {
        v.as_array()
            .unwrap()
            .iter()
            .map(PolicyRule::from_json)
            .collect()
    }

    fn covered(owner: &[PolicyRule], requested: Value) -> bool {
        missing(owner, &rules(requested)).is_none()
    }

    fn described(owner: &[PolicyRule], requested: Value) -> String {
        missing(owner, &rules(requested))
            .expect("missing")
            .description
    }

    fn one(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    /// Upstream's `Covers`, `CompactRules` and message lines, written out
    /// tuple by tuple, to check the class search against.
    fn upstream(owner: &[PolicyRule], requested: &[PolicyRule]) -> Option<String> {
        fn has(set: &[String], s: &str) -> bool {
            set.iter().any(|x| x == s)
        }
        fn has_all(set: &[String], items: &[String]) -> bool {
            items.iter().all(|i| has(set, i))
        }
        fn rule_covers(o: &PolicyRule, sub: &PolicyRule) -> bool {
            let resources = has(&o.resources, "*")
                || has_all(&o.resources, &sub.resources)
                || sub.resources.iter().all(|p| {
                    has(&o.resources, p)
                        || p.split_once('/')
                            .is_some_and(|(_, s)| has(&o.resources, &format!("*/{s}")))
                });
            let urls = sub.non_resource_urls.iter().all(|p| {
                o.non_resource_urls.iter().any(|op| {
                    op == p || (op.ends_with('*') && p.starts_with(op.trim_end_matches('*')))
                })
            });
            let names = if sub.resource_names.is_empty() {
                o.resource_names.is_empty()
            } else {
                o.resource_names.is_empty() || has_all(&o.resource_names, &sub.resource_names)
            };
            (has(&o.verbs, "*") || has_all(&o.verbs, &sub.verbs))
                && (has(&o.api_groups, "*") || has_all(&o.api_groups, &sub.api_groups))
                && resources
                && urls
                && names
        }
        let mut subs = Vec::new();
        for r in requested {
            for g in &r.api_groups {
                for res in &r.resources {
                    for v in &r.verbs {
                        let base = PolicyRule {
                            verbs: one(v),
                            api_groups: one(g),
                            resources: one(res),
                            ..Default::default()
                        };
                        if r.resource_names.is_empty() {
                            subs.push(base.clone());
                        }
                        for n in &r.resource_names {
                            subs.push(PolicyRule {
                                resource_names: one(n),
                                ..base.clone()
                            });
                        }
                    }
                }
            }
            for u in &r.non_resource_urls {
                for v in &r.verbs {
                    subs.push(PolicyRule {
                        verbs: one(v),
                        non_resource_urls: one(u),
                        ..Default::default()
                    });
                }
            }
        }
        let uncovered: Vec<PolicyRule> = subs
            .into_iter()
            .filter(|s| !owner.iter().any(|o| rule_covers(o, s)))
            .collect();
        if uncovered.is_empty() {
            return None;
        }
        let mut lines = BTreeSet::new();
        let mut simple: Vec<PolicyRule> = Vec::new();
        for u in uncovered {
            if !u.non_resource_urls.is_empty() {
                lines.insert(format!(
                    "{{NonResourceURLs:{}, Verbs:{}}}",
                    go_quoted_strings(&u.non_resource_urls),
                    go_quoted_strings(&u.verbs)
                ));
                continue;
            }
            match simple.iter_mut().find(|s| {
                s.api_groups == u.api_groups
                    && s.resources == u.resources
                    && s.resource_names == u.resource_names
            }) {
                Some(s) if !s.verbs.contains(&u.verbs[0]) => s.verbs.push(u.verbs[0].clone()),
                Some(_) => {}
                None => simple.push(u),
            }
        }
        for s in simple {
            let names = if s.resource_names.is_empty() {
                String::new()
            } else {
                format!(", ResourceNames:{}", go_quoted_strings(&s.resource_names))
            };
            lines.insert(format!(
                "{{APIGroups:{}, Resources:{}{names}, Verbs:{}}}",
                go_quoted_strings(&s.api_groups),
                go_quoted_strings(&s.resources),
                go_quoted_strings(&s.verbs)
            ));
        }
        Some(lines.into_iter().collect::<Vec<_>>().join("\n"))
    }

    #[test]
    fn coverage_as_upstream() {
        let owner = rules(json!([
            {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
            {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
        ]));
        assert!(covered(
            &owner,
            json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["pods", "pods/status"]}])
        ));
        assert!(covered(
            &owner,
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}])
        ));
        assert!(covered(
            &owner,
            json!([{"verbs": ["get"], "nonResourceURLs": ["/apis/apps"]}])
        ));
        assert_eq!(
            described(
                &owner,
                json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}])
            ),
            r#"{APIGroups:[""], Resources:["pods"], Verbs:["*"]}"#
        );
        assert_eq!(
            described(
                &owner,
                json!([{"verbs": ["get"], "apiGroups": ["*"], "resources": ["pods"]}])
            ),
            r#"{APIGroups:["*"], Resources:["pods"], Verbs:["get"]}"#
        );
        assert_eq!(
            described(
                &owner,
                json!([{"verbs": ["get", "watch", "list", "delete"], "apiGroups": [""], "resources": ["secrets", "pods"]},
                       {"verbs": ["post"], "nonResourceURLs": ["/apis", "/healthz"]}])
            ),
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["watch" "delete"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "watch" "list" "delete"]}"#,
                r#"{NonResourceURLs:["/apis"], Verbs:["post"]}"#,
                r#"{NonResourceURLs:["/healthz"], Verbs:["post"]}"#,
            ]
            .join("\n")
        );
    }

    #[test]
    fn names_held_do_not_cover_all_names() {
        // Upstream: a rule without resourceNames is covered only by owner
        // rules without resourceNames.
        let owner = rules(json!([
            {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a", "b"]},
        ]));
        assert!(covered(
            &owner,
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["b"]}])
        ));
        assert_eq!(
            described(
                &owner,
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}])
            ),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        assert_eq!(
            described(
                &owner,
                json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a", "c"]}])
            ),
            r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["c"], Verbs:["get"]}"#
        );
        // Nor do they cover non-resource URLs.
        let owner = rules(json!([
            {"verbs": ["get"], "nonResourceURLs": ["*"], "resourceNames": ["x"]},
        ]));
        assert!(!covered(
            &owner,
            json!([{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}])
        ));
    }

    /// A small deterministic generator of rule lists.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, below: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % below
        }

        fn pick(&mut self, from: &[&str], max: usize) -> Vec<String> {
            let n = self.next(max + 1);
            (0..n)
                .map(|_| from[self.next(from.len())].to_string())
                .collect()
        }

        fn rule(&mut self) -> PolicyRule {
            PolicyRule {
                verbs: self.pick(&["get", "list", "watch", "create", "*"], 3),
                api_groups: self.pick(&["", "apps", "batch", "*"], 2),
                resources: self.pick(
                    &[
                        "pods",
                        "pods/log",
                        "*/status",
                        "pods/status",
                        "deployments",
                        "*",
                    ],
                    3,
                ),
                resource_names: self.pick(&["a", "b", "c"], 2),
                non_resource_urls: self.pick(&["/healthz", "/apis/*", "/apis/apps", "*"], 1),
            }
        }
    }

    #[test]
    fn agrees_with_upstreams_tuple_by_tuple_check() {
        let mut rng = Lcg(7);
        let mut both = [0usize; 2];
        for _ in 0..3000 {
            let owner: Vec<PolicyRule> = (0..rng.next(5)).map(|_| rng.rule()).collect();
            let requested: Vec<PolicyRule> = (0..rng.next(3) + 1).map(|_| rng.rule()).collect();
            let want = upstream(&owner, &requested);
            let got = missing(&owner, &requested).map(|m| m.description);
            assert_eq!(got, want, "owner {owner:?}\nrequested {requested:?}");
            both[usize::from(want.is_some())] += 1;
        }
        // Both answers were exercised, often.
        assert!(both[0] > 300 && both[1] > 300, "{both:?}");
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn cube(n: usize) -> PolicyRule {
        PolicyRule {
            verbs: names("v", n),
            api_groups: names("g", n),
            resources: names("r", n),
            ..Default::default()
        }
    }

    #[test]
    fn a_huge_rule_not_held_is_described_briefly() {
        let owner = rules(json!([
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        ]));
        let m = missing(&owner, &[cube(200)]).expect("not covered");
        assert!(
            m.description.len() <= MAX_DESCRIPTION_BYTES + 64,
            "{}",
            m.description
        );
        assert!(
            m.description.starts_with(r#"{APIGroups:["g0" "g1" "g2" "g3" "g4" "g5" "g6" "g7" ...(+192 more)], Resources:["r0""#),
            "{}",
            m.description
        );
    }

    #[test]
    fn a_huge_rule_held_is_covered() {
        // Held as one rule, or as one rule per group.
        assert!(missing(&[cube(60)], &[cube(60)]).is_none());
        let per_group: Vec<PolicyRule> = names("g", 60)
            .into_iter()
            .map(|g| PolicyRule {
                api_groups: vec![g],
                ..cube(60)
            })
            .collect();
        assert!(missing(&per_group, &[cube(60)]).is_none());
        assert!(missing(&per_group, &[cube(200)]).is_some());
        // One verb short, in one group only: exactly that is missing.
        let mut short = per_group.clone();
        short[59].verbs.pop();
        let described = missing(&short, &[cube(60)]).unwrap().description;
        let lines: Vec<&str> = described.lines().collect();
        assert_eq!(lines.len(), 60, "{described}");
        assert_eq!(
            lines[0],
            r#"{APIGroups:["g59"], Resources:["r0"], Verbs:["v59"]}"#
        );
        // Past upstream's one line per tuple: boxes.
        short[58].verbs.truncate(50);
        let described = missing(&short, &[cube(60)]).unwrap().description;
        assert!(
            described.contains(r#"{APIGroups:["g58"], Resources:["r0" "r1" "r2" "r3" "r4" "r5" "r6" "r7" ...(+52 more)], Verbs:["v50" "v51" "v52" "v53" "v54" "v55" "v56" "v57" ...(+1 more)]}"#),
            "{described}"
        );
    }

    /// One owner rule per (group, resource, verb) on the diagonal: every
    /// value is a class of its own, and the search visits about 2n² classes.
    fn diagonal(n: usize) -> Vec<PolicyRule> {
        (0..n)
            .map(|i| PolicyRule {
                verbs: vec![format!("v{i}")],
                api_groups: vec![format!("g{i}")],
                resources: vec![format!("r{i}")],
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn many_distinct_owner_rules_are_searched_exactly() {
        let owner = diagonal(100);
        let m = missing(&owner, &[cube(100)]).expect("not covered");
        assert!(m.description.len() <= MAX_DESCRIPTION_BYTES + 64);
        assert!(
            m.description.ends_with(" more not shown"),
            "{}",
            m.description
        );
        assert!(missing(&owner, &owner).is_none());
    }

    #[test]
    fn past_the_search_budget_nothing_is_covered() {
        let owner = diagonal(800);
        let m = missing(&owner, &[cube(800)]).expect("not covered");
        assert!(
            m.description.contains("too many to compare"),
            "{}",
            m.description
        );
        assert!(missing(&owner, &owner).is_none());
    }
}
