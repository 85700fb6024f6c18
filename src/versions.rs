//! What each stack reported as its version when a run started (the spec's `version` table),
//! kept with the run (`runs.stack_versions`, JSON) and shown by `runs`, `show`, the reports
//! and the controller's evidence.

use std::collections::BTreeMap;

use billshadow_adapters::live::Stack;
use serde::{Deserialize, Serialize};

/// One stack's answer: its version, or why it gave none. A side whose spec names no version
/// source is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StackVersion {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl StackVersion {
    /// The version, or `unreported (why)`.
    pub(crate) fn shown(&self) -> String {
        match (&self.version, &self.error) {
            (Some(v), _) => v.clone(),
            (None, Some(e)) => format!("unreported ({e})"),
            (None, None) => "unreported".to_owned(),
        }
    }
}

/// Per side (`legacy`, `modern`), its version.
pub(crate) type StackVersions = BTreeMap<String, StackVersion>;

/// Asks each stack for its version (those whose spec names a source). A stack that does not
/// answer is recorded with the reason and logged: a version is evidence about the run, not a
/// reason to stop it.
pub(crate) async fn ask(stacks: &[(&str, &Stack)]) -> StackVersions {
    let mut out = StackVersions::new();
    for (side, stack) in stacks {
        let Some(answer) = stack.version().await else {
            continue;
        };
        let version = match answer {
            Ok(v) => StackVersion {
                version: Some(v),
                error: None,
            },
            Err(e) => {
                tracing::warn!(side, error = %e, "the stack did not report its version");
                StackVersion {
                    version: None,
                    error: Some(e),
                }
            }
        };
        out.insert((*side).to_owned(), version);
    }
    out
}

/// As stored: a JSON object (`{}` when no stack reports one).
pub(crate) fn to_stored(versions: &StackVersions) -> String {
    serde_json::to_string(versions).unwrap_or_else(|_| "{}".to_owned())
}

/// From the store; runs from before versions were recorded hold `{}`. A value that does not
/// decode is an error naming it, never an empty map.
pub(crate) fn from_stored(text: &str) -> anyhow::Result<StackVersions> {
    serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("its stack versions `{text}` do not decode: {e}"))
}

/// `legacy 1.2, modern 2.0`, or `-` when none was recorded.
pub(crate) fn one_line(versions: &StackVersions) -> String {
    if versions.is_empty() {
        return "-".to_owned();
    }
    versions
        .iter()
        .map(|(side, v)| format!("{side} {}", v.shown()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_versions_read_back_and_old_runs_hold_none() {
        let mut versions = StackVersions::new();
        versions.insert(
            "legacy".to_owned(),
            StackVersion {
                version: Some("legacy 7.1".to_owned()),
                error: None,
            },
        );
        versions.insert(
            "modern".to_owned(),
            StackVersion {
                version: None,
                error: Some("GET http://x/version: HTTP 404".to_owned()),
            },
        );
        let stored = to_stored(&versions);
        assert_eq!(from_stored(&stored).unwrap(), versions);
        assert_eq!(
            one_line(&versions),
            "legacy legacy 7.1, modern unreported (GET http://x/version: HTTP 404)"
        );
        assert!(from_stored("{}").unwrap().is_empty());
        assert_eq!(one_line(&StackVersions::new()), "-");
        assert!(from_stored("{\"legacy\": 3}").is_err());
    }
}
