//! Names, labels and annotations of the objects the syncer creates in a parent.
//!
//! A virtual object `namespace/name` of cluster `a:b` becomes the parent
//! object `<name>-x-<namespace>-x-a-x-b` in the placement's host namespace.
//! That plain form is used only when it can be read back unambiguously (no
//! part is `x`, contains `-x-`, starts with `x-` or ends with `-x`, so the `-x-`
//! separators are exactly the `-x-` in the name), every cluster segment is
//! a DNS label (so a plain name never ends in a `.` suffix such as a token
//! Secret's `.sa-token`), and it fits in 63 characters; otherwise the name
//! is a truncated prefix of the plain form, the marker `-x-x` (which no
//! plain form contains: it would need an empty part) and `-` + 16 hex
//! characters of a sha256 of the full tuple. So two different tuples never
//! get the same plain name, a plain name never equals a hashed one, and two
//! hashed ones collide only if 64 bits of sha256 do for the same prefix.
//! Names of the earlier 40-bit scheme ([`legacy_host_name`]) are only
//! recognised, so that copies made under them are replaced.
//!
//! Labels and annotations are a fixed contract with whoever reads the
//! parent: cleanup of a VirtualCluster deletes by [`VC_UID_LABEL`], the
//! up-sync finds the virtual object from the owner annotations (the object
//! one level up), an operator finds the tenant's object from the origin
//! annotations ([`Origin`]: the object in the cluster it was created in,
//! the same through every hop). Virtual labels are
//! carried over with their keys moved under [`LABEL_DOMAIN`], so a tenant's
//! labels never match the parent's own selectors (nor another tenant's).
//!
//! This module is pure: it must never depend on a client or on storage.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Label on every parent object the syncer owns; value [`MANAGED_BY_VALUE`].
pub const MANAGED_BY_LABEL: &str = "tenancy.nestkube.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "nestkube";
/// Label with the owning VirtualCluster's uid (`placement.uid`).
pub const VC_UID_LABEL: &str = "tenancy.nestkube.io/vc-uid";
/// Label with the virtual namespace (hashed if not a valid label value).
pub const NAMESPACE_LABEL: &str = "tenancy.nestkube.io/namespace";
/// Label with the virtual name (hashed if not a valid label value).
pub const NAME_LABEL: &str = "tenancy.nestkube.io/name";
/// Annotation with the virtual cluster's full path (`a:b:c`).
pub const CLUSTER_ANNOTATION: &str = "tenancy.nestkube.io/cluster";
/// Annotation with the exact virtual namespace.
pub const NAMESPACE_ANNOTATION: &str = "tenancy.nestkube.io/namespace";
/// Annotation with the exact virtual name.
pub const NAME_ANNOTATION: &str = "tenancy.nestkube.io/name";
/// Annotation with the virtual object's uid.
pub const UID_ANNOTATION: &str = "tenancy.nestkube.io/uid";
/// Annotation with the path of the cluster the object was created in
/// (`a:b:c` on every copy of a pod of `a:b:c`, at every level below).
pub const ORIGIN_CLUSTER_ANNOTATION: &str = "tenancy.nestkube.io/origin-cluster";
/// Annotation with the object's namespace in its origin cluster.
pub const ORIGIN_NAMESPACE_ANNOTATION: &str = "tenancy.nestkube.io/origin-namespace";
/// Annotation with the object's name in its origin cluster.
pub const ORIGIN_NAME_ANNOTATION: &str = "tenancy.nestkube.io/origin-name";
/// Annotation with the object's uid in its origin cluster.
pub const ORIGIN_UID_ANNOTATION: &str = "tenancy.nestkube.io/origin-uid";
/// Annotation on a copy whose spec is copied whole (Ingress,
/// NetworkPolicy) with a hash of the spec last written, so a field removed
/// from the virtual object is removed from the copy too.
pub const SPEC_HASH_ANNOTATION: &str = "tenancy.nestkube.io/spec-hash";
/// Domain under which virtual label keys are carried to the parent:
/// `app` becomes `label.tenancy.nestkube.io/app`, `example.com/app`
/// becomes `example.com.label.tenancy.nestkube.io/app`.
pub const LABEL_DOMAIN: &str = "label.tenancy.nestkube.io";

/// Longest name or label value the syncer produces.
pub const MAX_LEN: usize = 63;
/// Separator between the parts of a plain host name.
const SEP: &str = "-x-";
/// Between the truncated prefix and the hash of a hashed host name.
const HASH_MARKER: &str = "-x-x";
/// Hex characters of sha256 kept in hashed names and values (64 bits).
const HASH_HEX: usize = 16;
/// Hex characters of the earlier scheme's hashed names (40 bits).
const LEGACY_HASH_HEX: usize = 10;

/// The parent name of virtual object `namespace/name` of cluster `cluster`
/// (its full path, `a:b:c`): deterministic, at most 63 characters, a valid
/// DNS label when the parts are (and a valid DNS subdomain when the virtual
/// name is one).
pub fn host_name(cluster: &str, namespace: &str, name: &str) -> String {
    let mut parts = vec![name, namespace];
    parts.extend(cluster.split(':'));
    let plain = parts.join(SEP);
    if plain.len() <= MAX_LEN
        && parts.iter().all(|p| is_plain_part(p))
        && cluster.split(':').all(|c| !c.contains('.'))
    {
        return plain;
    }
    hashed(&plain, &[cluster, namespace, name], HASH_HEX)
}

/// The name the earlier scheme (40-bit hashes, dotted cluster segments
/// kept plain) gave what [`host_name`] names now: a copy found under it,
/// and not under the current name, was made by an older syncer.
pub fn legacy_host_name(cluster: &str, namespace: &str, name: &str) -> String {
    let mut parts = vec![name, namespace];
    parts.extend(cluster.split(':'));
    let plain = parts.join(SEP);
    if plain.len() <= MAX_LEN && parts.iter().all(|p| is_plain_part(p)) {
        return plain;
    }
    hashed(&plain, &[cluster, namespace, name], LEGACY_HASH_HEX)
}

/// A truncated prefix of `plain`, the marker and `hex` characters of the
/// hash of `tuple`.
fn hashed(plain: &str, tuple: &[&str], hex: usize) -> String {
    let hash = &hex_digest(tuple)[..hex];
    let keep = MAX_LEN - HASH_MARKER.len() - 1 - hex;
    let prefix = trim_to_alnum(truncate(plain, keep));
    format!("{prefix}{HASH_MARKER}-{hash}")
}

/// Whether `part` can stand in a plain name without making it ambiguous.
/// A part `x` would put the hash marker `-x-x-` into a plain name
/// (`a-x-x-x-<hex>` for `a`, `x`, `<hex>`: the hashed name of another tuple).
fn is_plain_part(part: &str) -> bool {
    !part.is_empty()
        && part != "x"
        && !part.contains(SEP)
        && !part.starts_with("x-")
        && !part.ends_with("-x")
}

/// `value` if it is a valid label value, else a truncated prefix + `-` + 16
/// hex characters of its sha256 (still a valid label value).
pub fn label_value(value: &str) -> String {
    if is_label_value(value) {
        return value.to_string();
    }
    let hash = hex_digest(&[value])[..HASH_HEX].to_string();
    let clean: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let prefix = trim_to_alnum(truncate(&clean, MAX_LEN - 1 - HASH_HEX));
    if prefix.is_empty() {
        hash
    } else {
        format!("{prefix}-{hash}")
    }
}

/// Whether `v` is a valid label value (`validation.IsValidLabelValue`).
pub fn is_label_value(v: &str) -> bool {
    if v.is_empty() {
        return true;
    }
    let b = v.as_bytes();
    v.len() <= MAX_LEN
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The labels that mark a parent object as the copy of virtual
/// `namespace/name`, owned by the VirtualCluster with uid `vc_uid`.
pub fn owner_labels(vc_uid: &str, namespace: &str, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (VC_UID_LABEL.to_string(), label_value(vc_uid)),
        (NAMESPACE_LABEL.to_string(), label_value(namespace)),
        (NAME_LABEL.to_string(), label_value(name)),
    ])
}

/// The annotations that name the virtual object exactly.
pub fn owner_annotations(
    cluster: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (CLUSTER_ANNOTATION.to_string(), cluster.to_string()),
        (NAMESPACE_ANNOTATION.to_string(), namespace.to_string()),
        (NAME_ANNOTATION.to_string(), name.to_string()),
        (UID_ANNOTATION.to_string(), uid.to_string()),
    ])
}

/// The object a copy ultimately stands for: the one a tenant created, in
/// the cluster it created it in, however many levels of copies lie between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Path of the cluster it was created in.
    pub cluster: String,
    /// Its namespace there.
    pub namespace: String,
    /// Its name there.
    pub name: String,
    /// Its uid there.
    pub uid: String,
}

impl Origin {
    /// The origin of virtual object `namespace/name` (uid `uid`, annotations
    /// `annotations`) of cluster `cluster`: the origin it carries when that
    /// names a strict descendant of `cluster` (the object is then a copy the
    /// syncer made for that descendant), otherwise the object itself. A
    /// tenant may write any annotation on its own objects, so a carried
    /// origin outside its own subtree (another tenant, an ancestor, itself)
    /// is never believed.
    pub fn of(
        cluster: &str,
        namespace: &str,
        name: &str,
        uid: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Self {
        let carried = |k: &str| annotations.get(k).filter(|v| !v.is_empty());
        if let (Some(c), Some(ns), Some(n)) = (
            carried(ORIGIN_CLUSTER_ANNOTATION),
            carried(ORIGIN_NAMESPACE_ANNOTATION),
            carried(ORIGIN_NAME_ANNOTATION),
        ) && is_strict_descendant(c, cluster)
        {
            return Self {
                cluster: c.clone(),
                namespace: ns.clone(),
                name: n.clone(),
                uid: carried(ORIGIN_UID_ANNOTATION).cloned().unwrap_or_default(),
            };
        }
        Self {
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }

    /// Whether the origin lies below `cluster` (the object is a copy).
    pub fn is_below(&self, cluster: &str) -> bool {
        is_strict_descendant(&self.cluster, cluster)
    }

    /// The origin annotations of a copy.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ORIGIN_CLUSTER_ANNOTATION.to_string(), self.cluster.clone()),
            (
                ORIGIN_NAMESPACE_ANNOTATION.to_string(),
                self.namespace.clone(),
            ),
            (ORIGIN_NAME_ANNOTATION.to_string(), self.name.clone()),
            (ORIGIN_UID_ANNOTATION.to_string(), self.uid.clone()),
        ])
    }
}

/// Whether cluster path `path` is a descendant of `ancestor` (`a:b:c` of
/// `a` and `a:b`; never of itself, `a:bc` never of `a:b`).
pub fn is_strict_descendant(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| !rest.is_empty())
}

/// The label selector of every parent object of the VirtualCluster `vc_uid`.
pub fn owner_selector(vc_uid: &str) -> String {
    format!(
        "{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{VC_UID_LABEL}={}",
        label_value(vc_uid)
    )
}

/// The label selector of every parent object the syncer owns.
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// The parent key of virtual label key `key` (injective: unprefixed keys
/// land in [`LABEL_DOMAIN`] itself, prefixed ones in a subdomain of it;
/// only prefixes too long for that are hashed).
pub fn host_label_key(key: &str) -> String {
    match key.split_once('/') {
        None => format!("{LABEL_DOMAIN}/{key}"),
        Some((prefix, name)) => {
            let domain = format!("{prefix}.{LABEL_DOMAIN}");
            if domain.len() <= 253 {
                format!("{domain}/{name}")
            } else {
                // Prefixes longer than 227 characters: a 64-bit hash, so
                // injective only up to sha256 collisions there.
                format!(
                    "h-{}.{LABEL_DOMAIN}/{name}",
                    &hex_digest(&[prefix])[..HASH_HEX]
                )
            }
        }
    }
}

/// Virtual labels as carried to the parent (keys moved by [`host_label_key`]).
pub fn host_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (host_label_key(k), v.clone()))
        .collect()
}

/// A virtual Service's selector as a parent selector: the same labels
/// carried over, restricted to the pods of the same VirtualCluster and
/// namespace (so it never selects another tenant's pods).
pub fn host_selector(
    vc_uid: &str,
    namespace: &str,
    selector: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = host_labels(selector);
    out.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    out.insert(VC_UID_LABEL.into(), label_value(vc_uid));
    out.insert(NAMESPACE_LABEL.into(), label_value(namespace));
    out
}

/// The first `n` bytes of an ASCII string (whole characters otherwise).
fn truncate(s: &str, n: usize) -> &str {
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` without trailing characters that may not end a name.
fn trim_to_alnum(s: &str) -> &str {
    s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
}

/// The sha256 of `parts` in hex, each length-prefixed so the tuple
/// boundaries count (callers keep a prefix of it).
fn hex_digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn plain_names_are_readable() {
        assert_eq!(
            host_name("team-a", "default", "web"),
            "web-x-default-x-team-a"
        );
        assert_eq!(
            host_name("team-a:dev", "ns", "web"),
            "web-x-ns-x-team-a-x-dev"
        );
    }

    #[test]
    fn names_are_deterministic_and_short() {
        let long = "a".repeat(253);
        for (c, ns, n) in [
            ("team-a", "default", long.as_str()),
            ("a:b:c:d", "kube-system", "coredns-5d78c9869d-abcde"),
            ("x", "y", "z"),
        ] {
            let a = host_name(c, ns, n);
            assert_eq!(a, host_name(c, ns, n));
            assert!(a.len() <= MAX_LEN, "{a} too long");
            assert!(a.as_bytes()[0].is_ascii_alphanumeric());
            assert!(a.as_bytes()[a.len() - 1].is_ascii_alphanumeric());
        }
        let hashed = host_name("team-a", "default", &long);
        assert!(hashed.starts_with("aaaa"));
        assert!(hashed.contains("-x-x-"));
        assert_eq!(hashed.len(), MAX_LEN);
    }

    #[test]
    fn tricky_inputs_do_not_collide() {
        let tuples = [
            ("c", "b", "a-x"),
            ("c", "x-b", "a"),
            ("c", "b", "a"),
            ("b:c", "x", "a"),
            ("c", "b-x-c", "a"),
            ("c", "c", "a-x-b"),
            ("b-x-c", "x", "a"),
            ("b:c", "a", "x"),
            ("x-c", "b", "a"),
            ("c", "b-x", "a"),
            ("x:c", "b", "a"),
            ("c", "x", "a-x-b"),
            ("c", "x-x", "a"),
            ("c", "x", "a-x-x"),
            ("team-a", "default", "web-x-default-x-team-a"),
            ("team-a:dev", "default", "web"),
            ("team-a", "dev", "web-x-default"),
        ];
        let mut seen = HashSet::new();
        for (c, ns, n) in tuples {
            let name = host_name(c, ns, n);
            assert!(seen.insert(name.clone()), "{c} {ns} {n} -> {name} collides");
            assert!(name.len() <= MAX_LEN);
        }
        // Long names that share a prefix differ by their hash.
        let base = "p".repeat(60);
        let a = host_name("c", "ns", &format!("{base}1"));
        let b = host_name("c", "ns", &format!("{base}2"));
        assert_ne!(a, b);
        // The prefix kept: 63 - "-x-x-" - 16 hex characters.
        assert_eq!(a[..42], b[..42]);
    }

    #[test]
    fn hashes_carry_64_bits() {
        let name = host_name("c", "ns", &"q".repeat(70));
        let (_, hash) = name.rsplit_once("-x-x-").unwrap();
        assert_eq!(hash.len(), 16, "{name}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
        let value = label_value(&"v".repeat(70));
        assert_eq!(value.rsplit_once('-').unwrap().1.len(), 16, "{value}");
        // The earlier scheme's name is recognised, and differs.
        let legacy = legacy_host_name("c", "ns", &"q".repeat(70));
        assert_eq!(legacy.rsplit_once("-x-x-").unwrap().1.len(), 10);
        assert_ne!(legacy, name);
        assert_eq!(
            legacy_host_name("team-a", "default", "web"),
            host_name("team-a", "default", "web"),
            "plain names did not change"
        );
    }

    #[test]
    fn no_copy_name_ends_like_a_token_secret() {
        // A cluster segment with a dot (a host VirtualCluster named
        // `team.sa-token` before names were checked) is hashed, so no copy
        // of an object of its tenant can be named like another tenant's
        // token Secret (`<copy>.sa-token`).
        let victim = host_name("team", "default", "web");
        let forged = host_name("team.sa-token", "default", "web");
        assert_ne!(forged, format!("{victim}.sa-token"));
        assert!(forged.contains("-x-x-"), "{forged}");
        assert!(!forged.ends_with(".sa-token"));
    }

    #[test]
    fn a_hashed_name_never_equals_a_plain_one() {
        // A plain name made to look like a hashed one is hashed itself.
        let hashed = host_name("c", "ns", &"q".repeat(70));
        let (prefix, _) = hashed.rsplit_once("-x-x-").unwrap();
        let forged = host_name("c", "ns", &format!("{prefix}-x-x"));
        assert_ne!(forged, hashed);
    }

    #[test]
    fn label_values_are_valid() {
        assert_eq!(label_value("default"), "default");
        assert_eq!(label_value(""), "");
        let long = label_value(&"n".repeat(100));
        assert!(is_label_value(&long), "{long}");
        assert_ne!(long, label_value(&"n".repeat(101)));
        let odd = label_value("a:b");
        assert!(is_label_value(&odd), "{odd}");
        assert!(is_label_value(&label_value("-")));
    }

    #[test]
    fn label_keys_are_moved_injectively() {
        assert_eq!(host_label_key("app"), "label.tenancy.nestkube.io/app");
        assert_eq!(
            host_label_key("example.com/app"),
            "example.com.label.tenancy.nestkube.io/app"
        );
        assert_ne!(host_label_key("a/b"), host_label_key("b"));
        let sel = host_selector(
            "uid-1",
            "default",
            &BTreeMap::from([("app".into(), "web".into())]),
        );
        assert_eq!(sel.get(VC_UID_LABEL).map(String::as_str), Some("uid-1"));
        assert_eq!(
            sel.get(NAMESPACE_LABEL).map(String::as_str),
            Some("default")
        );
        assert_eq!(
            sel.get("label.tenancy.nestkube.io/app").map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn origins_are_carried_only_from_descendants() {
        let none = BTreeMap::new();
        let own = Origin::of("a", "ns", "n", "u", &none);
        assert_eq!((own.cluster.as_str(), own.name.as_str()), ("a", "n"));
        assert!(!own.is_below("a"));
        let carried = Origin {
            cluster: "a:b:c".into(),
            namespace: "team".into(),
            name: "web".into(),
            uid: "u0".into(),
        };
        let copy = carried.annotations();
        // A copy in `a:b` (made for `a:b:c`), and its copy in `a`.
        assert_eq!(Origin::of("a:b", "x", "y", "z", &copy), carried);
        assert_eq!(Origin::of("a", "x", "y", "z", &copy), carried);
        assert!(carried.is_below("a"));
        // A tenant claiming another tree, its ancestor or itself: ignored.
        for forged in ["b:c", "a", "a:b", ""] {
            let mut a = copy.clone();
            a.insert(ORIGIN_CLUSTER_ANNOTATION.into(), forged.into());
            let o = Origin::of("a:b", "ns", "n", "u", &a);
            assert_eq!(o.cluster, "a:b", "{forged} believed");
            assert_eq!(o.name, "n");
        }
    }

    #[test]
    fn owner_labels_and_annotations() {
        let l = owner_labels("u", "ns", "n");
        assert_eq!(l[MANAGED_BY_LABEL], "nestkube");
        assert_eq!(l[VC_UID_LABEL], "u");
        let a = owner_annotations("a:b", "ns", "n", "uid");
        assert_eq!(a[CLUSTER_ANNOTATION], "a:b");
        assert!(is_strict_descendant("a:b", "a"));
        assert!(is_strict_descendant("a:b:c", "a:b"));
        assert!(!is_strict_descendant("a", "a"));
        assert!(!is_strict_descendant("ab:c", "a"));
        assert!(!is_strict_descendant("a:", "a"));
        assert!(!is_strict_descendant("b:a", "a"));
        assert_eq!(
            owner_selector("u"),
            "tenancy.nestkube.io/managed-by=nestkube,tenancy.nestkube.io/vc-uid=u"
        );
    }
}

/// Bounded fuzzing of [`host_name`]: for any valid virtual names (DNS labels
/// for clusters and namespaces, DNS subdomains for names), the parent name
/// is at most 63 characters, a DNS label (a subdomain when the name has
/// dots), deterministic, and different for different tuples, in the same
/// cluster or across clusters. Seeds: `tests/fuzz-corpus/host_name/*.tsv`
/// (`cluster<TAB>namespace<TAB>name` per line; every line of a file must
/// map to a different name). Longer runs: `docs/fuzzing.md`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use nestkube_fuzz_support as fuzz;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const DIR: &str = env!("CARGO_MANIFEST_DIR");

    type Tuple = (String, String, String);

    fn is_dns_label(s: &str) -> bool {
        let b = s.as_bytes();
        !s.is_empty()
            && s.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    }

    fn is_dns_subdomain(s: &str) -> bool {
        s.len() <= 253 && s.split('.').all(is_dns_label)
    }

    /// Whether `name` is the hashed form: `<prefix>-x-x-<hex>`.
    fn is_hashed(name: &str) -> bool {
        name.rsplit_once("-x-x-")
            .is_some_and(|(_, h)| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    /// The properties of one tuple.
    fn check_one((c, ns, n): &Tuple) -> String {
        let h = host_name(c, ns, n);
        assert_eq!(h, host_name(c, ns, n), "not deterministic");
        assert!(h.len() <= MAX_LEN, "{h} longer than {MAX_LEN}");
        if n.contains('.') {
            assert!(
                is_dns_subdomain(&h),
                "{c} {ns} {n} -> {h}: not a DNS subdomain"
            );
        } else {
            assert!(is_dns_label(&h), "{c} {ns} {n} -> {h}: not a DNS label");
        }
        // Plain and hashed names are told apart by the marker alone, which
        // is what keeps them from colliding.
        let plain = [n.as_str(), ns.as_str()]
            .into_iter()
            .chain(c.split(':'))
            .collect::<Vec<_>>()
            .join(SEP);
        assert!(
            h == plain && !h.contains("-x-x-") || h != plain && is_hashed(&h),
            "{c} {ns} {n} -> {h}: plain form with the hash marker"
        );
        h
    }

    /// Every tuple of `tuples` maps to a different name.
    fn check_distinct(tuples: &[Tuple]) {
        let mut seen: HashMap<String, &Tuple> = HashMap::new();
        for t in tuples {
            let h = check_one(t);
            if let Some(other) = seen.insert(h.clone(), t)
                && other != t
            {
                panic!("{other:?} and {t:?} both map to {h}");
            }
        }
    }

    #[test]
    fn corpus() {
        for seed in fuzz::corpus(DIR, "host_name") {
            let text = String::from_utf8(seed.bytes).expect("UTF-8");
            let tuples: Vec<Tuple> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let f: Vec<&str> = l.split('\t').collect();
                    assert_eq!(f.len(), 3, "{}: {l:?}", seed.name);
                    (f[0].into(), f[1].into(), f[2].into())
                })
                .collect();
            check_distinct(&tuples);
        }
    }

    /// Found by this target: a part `x` put the hash marker into a plain
    /// name, so a tenant could give a pod of a nested cluster named after a
    /// hash the same parent name as another cluster's hashed pod: `a` in
    /// `default` of `team:x:<hex>` was `a-x-default-x-team-x-x-x-<hex>`, the
    /// hashed name of a long pod of `team`.
    #[test]
    fn regression_part_x_collides_with_a_hashed_name() {
        let long = format!("a-x-default-x-team-x{}z", "-".repeat(30));
        let hashed = host_name("team", "default", &long);
        let (_, hex) = hashed.rsplit_once("-x-x-").expect("hashed");
        let forged_cluster = format!("team:x:{hex}");
        let forged = host_name(&forged_cluster, "default", "a");
        assert_ne!(forged, hashed);
        check_distinct(&[
            ("team".into(), "default".into(), long),
            (forged_cluster, "default".into(), "a".into()),
        ]);
    }

    /// Labels built from pieces around the separator, so that ambiguous
    /// joins are likely.
    fn label() -> impl Strategy<Value = String> {
        let alnum = || prop::sample::select(vec!["a", "b", "x", "xx", "0", "web", "team", "ab12"]);
        let any = prop::sample::select(vec!["a", "x", "x-", "-x", "-x-", "-", "0", "xx"]);
        prop_oneof![
            alnum().prop_map(str::to_string),
            (alnum(), prop::collection::vec(any, 0..4), alnum())
                .prop_map(|(a, mid, b)| format!("{a}{}{b}", mid.concat())),
        ]
    }

    fn tuple() -> impl Strategy<Value = Tuple> {
        (
            prop::collection::vec(label(), 1..4).prop_map(|p| p.join(":")),
            label(),
            prop_oneof![
                3 => label(),
                1 => prop::collection::vec(label(), 2..4).prop_map(|p| p.join(".")),
                1 => (label(), 40usize..80).prop_map(|(l, n)| format!("{}{l}", "a".repeat(n))),
            ],
        )
    }

    proptest! {
        #![proptest_config(fuzz::config(DIR, "host_name", 2000))]

        #[test]
        fn valid_tuples(tuples in prop::collection::vec(tuple(), 1..24)) {
            check_distinct(&tuples);
        }
    }
}
