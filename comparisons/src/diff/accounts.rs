//! Both sides' lines grouped by account (a counting sort), accounts in name order: what the
//! engine splits across threads.

use rustc_hash::FxHashMap;

use crate::model::{Field, LineStore};

/// Lines of both sides grouped by account, accounts in name order.
pub(super) struct AccountIndex<'s> {
    pub(super) names: Vec<&'s str>,
    /// Per side: line indices ordered by account, and where each account's run starts.
    pub(super) legacy_lines: Vec<u32>,
    pub(super) legacy_starts: Vec<u32>,
    pub(super) modern_lines: Vec<u32>,
    pub(super) modern_starts: Vec<u32>,
    pub(super) order: Vec<u32>,
}

impl<'s> AccountIndex<'s> {
    pub(super) fn build(legacy: &'s LineStore, modern: &'s LineStore) -> AccountIndex<'s> {
        // The map owns a copy of each name: the names then lie together in a few megabytes
        // of cache, where a key pointing into the store's text would be a miss in memory
        // for every line looked up (the lines of a shuffled side come in no account order).
        let mut ids: FxHashMap<Box<str>, u32> = FxHashMap::default();
        let mut names: Vec<&'s str> = Vec::new();
        let mut account_of = |store: &'s LineStore| -> Vec<u32> {
            let mut last: Option<(&str, u32)> = None;
            store
                .lines()
                .map(|line| {
                    let name = line.get(Field::AccountId);
                    if let Some((last_name, id)) = last
                        && last_name == name
                    {
                        return id;
                    }
                    let id = match ids.get(name) {
                        Some(&id) => id,
                        None => {
                            let id = names.len() as u32;
                            names.push(name);
                            ids.insert(name.into(), id);
                            id
                        }
                    };
                    last = Some((name, id));
                    id
                })
                .collect()
        };
        let legacy_account = account_of(legacy);
        let modern_account = account_of(modern);
        let (legacy_lines, legacy_starts) = bucket(&legacy_account, names.len());
        let (modern_lines, modern_starts) = bucket(&modern_account, names.len());
        let mut order: Vec<u32> = (0..names.len() as u32).collect();
        order.sort_unstable_by(|a, b| names[*a as usize].cmp(names[*b as usize]));
        AccountIndex {
            names,
            legacy_lines,
            legacy_starts,
            modern_lines,
            modern_starts,
            order,
        }
    }

    pub(super) fn legacy(&self, account: u32) -> &[u32] {
        let a = account as usize;
        &self.legacy_lines[self.legacy_starts[a] as usize..self.legacy_starts[a + 1] as usize]
    }

    pub(super) fn modern(&self, account: u32) -> &[u32] {
        let a = account as usize;
        &self.modern_lines[self.modern_starts[a] as usize..self.modern_starts[a + 1] as usize]
    }
}

/// A counting sort of line indices by account: stable, so file order is kept per account.
pub(super) fn bucket(account_of_line: &[u32], accounts: usize) -> (Vec<u32>, Vec<u32>) {
    let mut starts = vec![0u32; accounts + 1];
    for &a in account_of_line {
        starts[a as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut lines = vec![0u32; account_of_line.len()];
    for (line, &a) in account_of_line.iter().enumerate() {
        lines[next[a as usize] as usize] = line as u32;
        next[a as usize] += 1;
    }
    (lines, starts)
}
