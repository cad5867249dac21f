//! Element order of merged lists.
//!
//! Owns upstream's ordering rules for merged lists (`normalizeElementOrder`,
//! `mergeSortedSlice`, the partition helpers) and a port of Go's
//! `sort.SliceStable`, so lists come out in exactly kube-apiserver's order,
//! even for inputs where upstream's comparator is inconsistent. Lookups are
//! hashed so large lists stay linear-ish. It must never merge element
//! contents: it only reorders and partitions.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::Kind;
use super::directives::{
    DELETE_DIRECTIVE, DIRECTIVE_MARKER, GO_MAP, err_bad_arg_type, err_no_merge_key,
};
use crate::error::StrategicError;

/// The identity upstream compares list items by (`index`'s `getValFn`): the
/// merge key's value for maps (Go `nil` when absent), the item itself otherwise.
pub(crate) fn identity(item: &Value, merge_key: &str, kind: Kind) -> String {
    if kind == Kind::Map {
        match item {
            Value::Object(m) => m.get(merge_key).map(canonical).unwrap_or_else(nil_key),
            _ => nil_key(),
        }
    } else {
        canonical(item)
    }
}

fn nil_key() -> String {
    "null".to_string()
}

/// A string equal for two values iff Go's `==` on the decoded values is true
/// (for the scalars merge keys and primitive lists hold; `1` and `1.0` differ).
pub(crate) fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// First position of each identity in `order`.
pub(crate) struct Positions(HashMap<String, usize>);

impl Positions {
    pub(crate) fn new(order: &[Value], merge_key: &str, kind: Kind) -> Positions {
        let mut map = HashMap::with_capacity(order.len());
        for (i, v) in order.iter().enumerate() {
            map.entry(identity(v, merge_key, kind)).or_insert(i);
        }
        Positions(map)
    }

    pub(crate) fn index(&self, item: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
        self.0.get(&identity(item, merge_key, kind)).copied()
    }
}

/// `validateMergeKeyInLists`.
fn validate_merge_key_in_lists(merge_key: &str, lists: &[&[Value]]) -> Result<(), StrategicError> {
    for list in lists {
        for item in list.iter() {
            let Value::Object(m) = item else {
                return Err(err_bad_arg_type(GO_MAP, item));
            };
            if !m.contains_key(merge_key) {
                return Err(err_no_merge_key(m, merge_key));
            }
        }
    }
    Ok(())
}

/// `extractToDeleteItems`: splits items carrying `$patch: delete` off.
pub(crate) fn extract_to_delete_items(
    list: Vec<Value>,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let mut keep = Vec::with_capacity(list.len());
    let mut delete = Vec::new();
    for v in list {
        let Value::Object(m) = &v else {
            return Err(err_bad_arg_type(GO_MAP, &v));
        };
        if m.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE) {
            delete.push(v);
        } else {
            keep.push(v);
        }
    }
    Ok((keep, delete))
}

/// `normalizeSliceOrder`: sorts `to_sort` by `order` (items with a delete
/// directive go last).
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let (to_sort, to_delete) = if kind == Kind::Map {
        validate_merge_key_in_lists(merge_key, &[&to_sort, order])?;
        extract_to_delete_items(to_sort)?
    } else {
        (to_sort, Vec::new())
    };
    let positions = Positions::new(order, merge_key, kind);
    let mut keyed: Vec<(Option<usize>, Value)> = to_sort
        .into_iter()
        .map(|v| (positions.index(&v, merge_key, kind), v))
        .collect();
    // Upstream's comparator: ordered by position when both are found, and
    // "less" otherwise (not a strict order; Go's algorithm decides the result).
    go_slice_stable(&mut keyed, |a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => x < y,
        _ => true,
    });
    let mut out: Vec<Value> = keyed.into_iter().map(|(_, v)| v).collect();
    out.extend(to_delete);
    Ok(out)
}

/// `normalizeElementOrder`: patch items in patch order, server-only items in
/// live order, then interleaved by `merge_sorted_slice`.
pub(crate) fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>, StrategicError> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

/// `mergeSortedSlice`: inserts each `left` item before the first `right` item
/// that comes after it in `server_order`.
fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let positions = Positions::new(server_order, merge_key, kind);
    let left_idx: Vec<Option<usize>> = left
        .iter()
        .map(|v| positions.index(v, merge_key, kind))
        .collect();
    let right_idx: Vec<Option<usize>> = right
        .iter()
        .map(|v| positions.index(v, merge_key, kind))
        .collect();
    let size = left.len() + right.len();
    let mut out = Vec::with_capacity(size);
    let mut left = left.into_iter().zip(left_idx).peekable();
    let mut right = right.into_iter().zip(right_idx).peekable();
    while out.len() < size {
        let take_left = match (left.peek(), right.peek()) {
            (Some(_), None) => true,
            (None, _) => false,
            (Some((_, li)), Some((_, ri))) => matches!((li, ri), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        match next {
            Some((v, _)) => out.push(v),
            None => break,
        }
    }
    out
}

/// `partitionPrimitivesByPresentInList`.
pub(crate) fn partition_primitives(
    merged: Vec<Value>,
    partition_by: &[Value],
) -> (Vec<Value>, Vec<Value>) {
    let present: std::collections::HashSet<String> = partition_by.iter().map(canonical).collect();
    merged
        .into_iter()
        .partition(|v| present.contains(&canonical(v)))
}

/// `partitionMapsByPresentInList`, with `findMapInSliceBasedOnKeyValue`'s
/// error for a non-map element met before a match.
pub(crate) fn partition_maps(
    merged: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), StrategicError> {
    let finder = MapFinder::new(partition_by, merge_key);
    let mut patch = Vec::with_capacity(merged.len());
    let mut server_only = Vec::with_capacity(merged.len());
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(err_bad_arg_type(GO_MAP, &v));
        };
        let Some(key_value) = m.get(merge_key) else {
            return Err(err_no_merge_key(m, merge_key));
        };
        if finder.find(key_value)?.is_some() {
            patch.push(v);
        } else {
            server_only.push(v);
        }
    }
    Ok((patch, server_only))
}

/// Hashed `findMapInSliceBasedOnKeyValue`: the first map whose merge key
/// equals a value, failing like upstream when a non-map comes first.
pub(crate) struct MapFinder {
    first: HashMap<String, usize>,
    first_non_map: Option<usize>,
}

impl MapFinder {
    pub(crate) fn new(list: &[Value], merge_key: &str) -> MapFinder {
        let mut first = HashMap::with_capacity(list.len());
        let mut first_non_map = None;
        for (i, v) in list.iter().enumerate() {
            match v {
                Value::Object(m) => {
                    if let Some(k) = m.get(merge_key) {
                        first.entry(canonical(k)).or_insert(i);
                    }
                }
                _ => {
                    first_non_map.get_or_insert(i);
                }
            }
        }
        MapFinder {
            first,
            first_non_map,
        }
    }

    /// Records a map appended at `index`.
    pub(crate) fn push(&mut self, m: &Map<String, Value>, merge_key: &str, index: usize) {
        if let Some(k) = m.get(merge_key) {
            self.first.entry(canonical(k)).or_insert(index);
        }
    }

    pub(crate) fn find(&self, value: &Value) -> Result<Option<usize>, StrategicError> {
        let found = self.first.get(&canonical(value)).copied();
        match (self.first_non_map, found) {
            (Some(bad), Some(at)) if bad < at => Err(not_a_map(bad)),
            (Some(bad), None) => Err(not_a_map(bad)),
            _ => Ok(found),
        }
    }
}

fn not_a_map(index: usize) -> StrategicError {
    StrategicError::Other(format!("value for key {index} is not a map"))
}

/// Port of Go's `sort.SliceStable` (insertion sort on blocks of 20, then
/// `symMerge`), so that inconsistent comparators give upstream's result.
pub(crate) fn go_slice_stable<T>(data: &mut [T], less: impl Fn(&T, &T) -> bool) {
    let n = data.len();
    let less = |d: &[T], i: usize, j: usize| less(&d[i], &d[j]);
    let mut block = 20;
    let (mut a, mut b) = (0, block);
    while b <= n {
        insertion_sort(data, a, b, &less);
        a = b;
        b += block;
    }
    insertion_sort(data, a, n, &less);
    while block < n {
        let (mut a, mut b) = (0, 2 * block);
        while b <= n {
            sym_merge(data, a, a + block, b, &less);
            a = b;
            b += 2 * block;
        }
        let m = a + block;
        if m < n {
            sym_merge(data, a, m, n, &less);
        }
        block *= 2;
    }
}

fn insertion_sort<T>(
    data: &mut [T],
    a: usize,
    b: usize,
    less: &impl Fn(&[T], usize, usize) -> bool,
) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && less(data, j, j - 1) {
            data.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sym_merge<T>(
    data: &mut [T],
    a: usize,
    m: usize,
    b: usize,
    less: &impl Fn(&[T], usize, usize) -> bool,
) {
    if m - a == 1 {
        let (mut i, mut j) = (m, b);
        while i < j {
            let h = (i + j) / 2;
            if less(data, h, a) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = a;
        while k + 1 < i {
            data.swap(k, k + 1);
            k += 1;
        }
        return;
    }
    if b - m == 1 {
        let (mut i, mut j) = (a, m);
        while i < j {
            let h = (i + j) / 2;
            if !less(data, m, h) {
                i = h + 1;
            } else {
                j = h;
            }
        }
        let mut k = m;
        while k > i {
            data.swap(k, k - 1);
            k -= 1;
        }
        return;
    }
    let mid = (a + b) / 2;
    let n = mid + m;
    let (mut start, mut r) = if m > mid { (n - b, mid) } else { (a, m) };
    let p = n - 1;
    while start < r {
        let c = (start + r) / 2;
        if !less(data, p - c, c) {
            start = c + 1;
        } else {
            r = c;
        }
    }
    let end = n - start;
    if start < m && m < end {
        rotate(data, start, m, end);
    }
    if a < start && start < mid {
        sym_merge(data, a, start, mid, less);
    }
    if mid < end && end < b {
        sym_merge(data, mid, end, b, less);
    }
}

fn rotate<T>(data: &mut [T], a: usize, m: usize, b: usize) {
    let mut i = m - a;
    let mut j = b - m;
    while i != j {
        if i > j {
            swap_range(data, m - i, m, j);
            i -= j;
        } else {
            swap_range(data, m - i, m + j - i, i);
            j -= i;
        }
    }
    swap_range(data, m - i, m, i);
}

fn swap_range<T>(data: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        data.swap(a + i, b + i);
    }
}

#[cfg(test)]
mod tests {
    use super::go_slice_stable;

    #[test]
    fn stable_sort_matches_std_for_consistent_comparators() {
        for n in [0usize, 1, 2, 5, 19, 20, 21, 40, 41, 100, 257] {
            let mut v: Vec<(u32, usize)> = (0..n).map(|i| (((i * 7919) % 13) as u32, i)).collect();
            let mut expected = v.clone();
            expected.sort_by_key(|x| x.0);
            go_slice_stable(&mut v, |a, b| a.0 < b.0);
            assert_eq!(v, expected, "n={n}");
        }
    }

    #[test]
    fn always_less_reverses_small_blocks_like_go() {
        // Go: insertion sort with an always-true comparator moves each new
        // element to the front.
        let mut v = vec![1, 2, 3, 4];
        go_slice_stable(&mut v, |_, _| true);
        assert_eq!(v, vec![4, 3, 2, 1]);
    }
}
