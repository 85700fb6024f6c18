//! The match key: each line's key hashed once, a total order on keys that is the same on both
//! sides (hash, then the key itself), and key groups.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::config::KeyField;
use crate::model::{Line, LineStore};

/// A line with the hash of its match key, so that sorting and merging compare one integer
/// first and the key's text only when hashes tie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    pub(super) hash: u64,
    pub(super) amount: Decimal,
    pub(super) line: u32,
}

pub(super) fn key_hashes(key: &[KeyField], store: &LineStore) -> Vec<u64> {
    store.lines().map(|line| key_hash(key, &line)).collect()
}

pub(super) fn key_hash(key: &[KeyField], line: &Line<'_>) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    for k in key {
        match k {
            KeyField::Text(field) => h.write(line.get(*field).as_bytes()),
            KeyField::LineType => h.write(line.line_type().as_str().as_bytes()),
            KeyField::Currency => h.write(line.currency().code().as_bytes()),
            KeyField::Attribute(_) => h.write(k.value(line).as_bytes()),
        }
        h.write_u8(0xff);
    }
    h.finish()
}

/// A total order on keys, the same on both sides: hash, then the key itself.
pub(super) fn key_order(
    key: &[KeyField],
    a_store: &LineStore,
    a: &Keyed,
    b_store: &LineStore,
    b: &Keyed,
) -> Ordering {
    a.hash.cmp(&b.hash).then_with(|| {
        compare_keys(
            key,
            &a_store.line(a.line as usize),
            &b_store.line(b.line as usize),
        )
    })
}

/// One side's lines of an account, ordered by key, then amount.
pub(super) fn keyed_lines(
    key: &[KeyField],
    store: &LineStore,
    hashes: &[u64],
    ids: &[u32],
    out: &mut Vec<Keyed>,
) {
    out.clear();
    // One tight pass of independent loads brings the account's lines into cache together.
    out.extend(ids.iter().map(|&i| Keyed {
        hash: hashes[i as usize],
        amount: store.line(i as usize).amount(),
        line: i,
    }));
    out.sort_by(|a, b| key_order(key, store, a, store, b).then_with(|| a.amount.cmp(&b.amount)));
}

pub(crate) fn compare_keys(key: &[KeyField], a: &Line<'_>, b: &Line<'_>) -> Ordering {
    for k in key {
        let order = match k {
            KeyField::Text(field) => a.get(*field).cmp(b.get(*field)),
            KeyField::LineType => a.line_type().cmp(&b.line_type()),
            KeyField::Currency => a.currency().code().cmp(b.currency().code()),
            KeyField::Attribute(_) => k.value(a).cmp(&k.value(b)),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

pub(super) fn group_end(
    key: &[KeyField],
    store: &LineStore,
    lines: &[Keyed],
    start: usize,
) -> usize {
    let first = &lines[start];
    let mut end = start + 1;
    while end < lines.len() && key_order(key, store, first, store, &lines[end]) == Ordering::Equal {
        end += 1;
    }
    end
}
