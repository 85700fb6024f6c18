//! `Fields`: a diff's named values (a side's evidence, its attributes, the match key), in
//! name order, held in one buffer. A diff carries five of them (the key, each side's fields
//! and attributes); held in B-tree maps of owned strings a line diff took about 6.8 KB in 80
//! allocations; in one buffer, 1.6 KB in 13.

use std::fmt;

/// Names and their values, in name order (a name at most once), each name and value one
/// after another in one text: two allocations whatever the count. It reads like the
/// `BTreeMap<String, String>` it stands for: `get`, `iter` and `keys` in name order, equality
/// and order by the pairs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields {
    text: Box<str>,
    /// Per entry, in name order: where its name ends and where its value ends in `text`.
    ends: Box<[(u32, u32)]>,
}

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn entry(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 } as usize;
        let (name_end, value_end) = (self.ends[i].0 as usize, self.ends[i].1 as usize);
        (&self.text[start..name_end], &self.text[name_end..value_end])
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.ends.len());
        while low < high {
            let mid = (low + high) / 2;
            match self.entry(mid).0.cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The value of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.entry(i).1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Every name and its value, in name order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            fields: self,
            at: 0..self.ends.len(),
        }
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.iter().map(|(name, _)| name)
    }

    /// Sets `name` to `value`, replacing its value if it had one.
    pub fn insert(&mut self, name: &str, value: &str) {
        let mut pairs: Vec<(&str, &str)> = self.iter().collect();
        match self.find(name) {
            Ok(i) => pairs[i].1 = value,
            Err(i) => pairs.insert(i, (name, value)),
        }
        *self = Fields::from_sorted(pairs);
    }

    /// Built from pairs sorted by name, each name once.
    fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Fields {
        let (mut bytes, mut count) = (0, 0);
        for (name, value) in pairs.clone() {
            bytes += name.len() + value.len();
            count += 1;
        }
        // A diff's values are a line's fields, each bounded: never near 4 GiB.
        assert!(u32::try_from(bytes).is_ok(), "fields of {bytes} bytes");
        let mut text = String::with_capacity(bytes);
        let mut ends = Vec::with_capacity(count);
        for (name, value) in pairs {
            text.push_str(name);
            let name_end = text.len() as u32;
            text.push_str(value);
            ends.push((name_end, text.len() as u32));
        }
        Fields {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// About how many bytes it takes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.text.len() + std::mem::size_of_val(&*self.ends)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Fields {
    /// Pairs in any order; of a name given twice, the last value counts (as a map's insert).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Fields {
        let pairs: Vec<(K, V)> = iter.into_iter().collect();
        let mut order: Vec<usize> = (0..pairs.len()).collect();
        // Stable: of equal names, the last one given stays last.
        order.sort_by(|a, b| pairs[*a].0.as_ref().cmp(pairs[*b].0.as_ref()));
        let mut kept: Vec<(&str, &str)> = Vec::with_capacity(order.len());
        for i in order {
            let (name, value) = (pairs[i].0.as_ref(), pairs[i].1.as_ref());
            match kept.last_mut() {
                Some(last) if last.0 == name => last.1 = value,
                _ => kept.push((name, value)),
            }
        }
        Fields::from_sorted(kept)
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> From<[(K, V); N]> for Fields {
    fn from(pairs: [(K, V); N]) -> Fields {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Fields {
    type Output = str;

    /// The value of `name`; panics when it has none, as a map's index does.
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no field named {name}"))
    }
}

impl PartialOrd for Fields {
    fn partial_cmp(&self, other: &Fields) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Fields {
    /// By the pairs in name order, as two maps compare.
    fn cmp(&self, other: &Fields) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Fields {
    /// As a map, in name order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// The names and values of a `Fields`, in name order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    fields: &'a Fields,
    at: std::ops::Range<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        self.at.next().map(|i| self.fields.entry(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.at.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.at.next_back().map(|i| self.fields.entry(i))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever pairs it is given, it reads, compares and serialises as the B-tree map
        /// of the same pairs.
        #[test]
        fn fields_read_as_the_map_they_stand_for(
            a in proptest::collection::vec(("[a-d]{0,3}", "[x-z0-9é]{0,4}"), 0..8),
            b in proptest::collection::vec(("[a-d]{0,3}", "[x-z0-9é]{0,4}"), 0..8),
            extra in ("[a-e]{0,3}", "[0-9]{0,3}"),
        ) {
            let map_a: BTreeMap<String, String> = a.iter().cloned().collect();
            let map_b: BTreeMap<String, String> = b.iter().cloned().collect();
            let (fa, fb): (Fields, Fields) = (a.iter().cloned().collect(), b.iter().cloned().collect());
            let pairs = |m: &BTreeMap<String, String>| -> Vec<(String, String)> {
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
            };
            let read = |f: &Fields| -> Vec<(String, String)> {
                f.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
            };
            prop_assert_eq!(read(&fa), pairs(&map_a));
            prop_assert_eq!(fa.len(), map_a.len());
            prop_assert_eq!(fa.cmp(&fb), map_a.cmp(&map_b));
            prop_assert_eq!(fa == fb, map_a == map_b);
            for (k, _) in a.iter().chain(b.iter()) {
                prop_assert_eq!(fa.get(k), map_a.get(k).map(String::as_str));
                prop_assert_eq!(fa.contains_key(k), map_a.contains_key(k));
            }
            let (mut fa, mut map_a) = (fa, map_a);
            fa.insert(&extra.0, &extra.1);
            map_a.insert(extra.0.clone(), extra.1.clone());
            prop_assert_eq!(read(&fa), pairs(&map_a));
            prop_assert_eq!(fa.clone(), pairs(&map_a).into_iter().collect::<Fields>());
        }
    }

    #[test]
    fn fields_debug_as_a_map() {
        let fields = Fields::from([("b", "2"), ("a", "1")]);
        assert_eq!(format!("{fields:?}"), r#"{"a": "1", "b": "2"}"#);
        assert_eq!(fields.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
