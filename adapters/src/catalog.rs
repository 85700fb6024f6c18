//! The catalog of format mappings shipped with billshadow, as data files in
//! `adapters/catalog/`, and how a format is named on the command line.

use std::path::{Path, PathBuf};

use crate::file::{Head, Input, ReadError, input_head};
use crate::location::TomlError;
use crate::mapping::{InputKind, Mapping};

/// The catalog's entries: (name, TOML text).
const ENTRIES: &[(&str, &str)] = &[
    ("canonical", include_str!("../catalog/canonical.toml")),
    (
        "canonical-jsonl",
        include_str!("../catalog/canonical-jsonl.toml"),
    ),
    ("focus", include_str!("../catalog/focus.toml")),
    (
        "focus-effective-cost",
        include_str!("../catalog/focus-effective-cost.toml"),
    ),
    (
        "focus-list-cost",
        include_str!("../catalog/focus-list-cost.toml"),
    ),
    (
        "focus-contracted-cost",
        include_str!("../catalog/focus-contracted-cost.toml"),
    ),
    ("aws-cur", include_str!("../catalog/aws-cur.toml")),
    (
        "aws-cur-public-cost",
        include_str!("../catalog/aws-cur-public-cost.toml"),
    ),
    ("aws-cur2", include_str!("../catalog/aws-cur2.toml")),
    ("stripe", include_str!("../catalog/stripe.toml")),
    ("killbill", include_str!("../catalog/killbill.toml")),
    ("lago", include_str!("../catalog/lago.toml")),
];

/// The built-in format mappings.
#[derive(Debug, Clone)]
pub struct Catalog {
    mappings: Vec<Mapping>,
}

impl Catalog {
    /// Loads every entry; a broken entry is a bug caught by the tests.
    pub fn builtin() -> Result<Catalog, TomlError> {
        let mappings = ENTRIES
            .iter()
            .map(|(name, text)| Mapping::from_toml(&format!("catalog/{name}.toml"), text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Catalog { mappings })
    }

    pub fn get(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.mappings.iter().map(|m| m.name.as_str())
    }

    pub fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    /// Picks the catalog format whose signature columns all appear in the file's CSV header
    /// (decoded when compressed, its columns when Parquet) or first JSON object, preferring
    /// the most specific; `None` when nothing fits.
    pub fn detect(&self, path: &Path) -> Result<Option<&Mapping>, ReadError> {
        self.detect_input(&Input::file(path))
    }

    /// `detect` for an input of any kind: its first part, or standard input's first bytes.
    pub fn detect_input(&self, input: &Input) -> Result<Option<&Mapping>, ReadError> {
        Ok(self.detect_head(&input_head(input, 1 << 20)?))
    }

    /// `detect` from what was read of an input.
    pub fn detect_head(&self, head: &Head) -> Option<&Mapping> {
        let head = match head {
            Head::Text(bytes) => bytes,
            Head::Columns(columns) => {
                return self.best(|mapping, column| {
                    mapping.input == InputKind::Csv && columns.iter().any(|c| c == column)
                });
            }
        };
        let head = String::from_utf8_lossy(head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head))
            .into_owned();
        let first_line = head.lines().next().unwrap_or("");
        let json_keys: Option<Vec<String>> = serde_json::from_str::<serde_json::Value>(first_line)
            .ok()
            .or_else(|| serde_json::from_str::<serde_json::Value>(&head).ok())
            .map(|v| json_paths(&v));
        self.best(|mapping, column| match (&json_keys, mapping.input) {
            (Some(keys), InputKind::Jsonl | InputKind::Json) => keys.iter().any(|k| k == column),
            (None, InputKind::Csv) => {
                let delimiter = char::from(mapping.delimiter);
                first_line
                    .split(delimiter)
                    .any(|h| h.trim().trim_matches('"') == column)
            }
            _ => false,
        })
    }

    /// The mapping whose signature columns are all `present`, the most specific first.
    fn best(&self, present: impl Fn(&Mapping, &String) -> bool) -> Option<&Mapping> {
        let mut best: Option<(&Mapping, usize)> = None;
        for mapping in &self.mappings {
            if mapping.signature.is_empty() {
                continue;
            }
            if mapping.signature.iter().all(|c| present(mapping, c))
                && best.is_none_or(|(_, n)| mapping.signature.len() > n)
            {
                best = Some((mapping, mapping.signature.len()));
            }
        }
        best.map(|(m, _)| m)
    }
}

/// Every dotted path of a JSON value's object keys (first array element stands for all).
fn json_paths(value: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 6 {
            return;
        }
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.push(path.clone());
                    walk(child, &path, out, depth + 1);
                }
            }
            serde_json::Value::Array(items) => {
                if let Some(first) = items.first() {
                    walk(first, prefix, out, depth + 1);
                }
            }
            _ => {}
        }
    }
    walk(value, "", &mut out, 0);
    out
}

/// How a format is named: a catalog entry, `auto`, or a mapping file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatRef {
    Builtin(String),
    Auto,
    File(PathBuf),
}

impl FormatRef {
    /// A name that is not in the catalog is taken as a mapping file path.
    pub fn parse(value: &str, catalog: &Catalog) -> FormatRef {
        if value == "auto" {
            FormatRef::Auto
        } else if catalog.get(value).is_some() {
            FormatRef::Builtin(value.to_owned())
        } else {
            FormatRef::File(PathBuf::from(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_loads() {
        let catalog = Catalog::builtin().unwrap();
        assert_eq!(catalog.names().count(), ENTRIES.len());
        for (name, _) in ENTRIES {
            assert_eq!(catalog.get(name).map(|m| m.name.as_str()), Some(*name));
        }
    }
}
