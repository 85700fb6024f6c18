//! The Prometheus exposition of a run: its view read from the store, with what only a scrape
//! shows — the build, when the newest finished run finished (the staleness signal), and each
//! cell's migration stage.

use std::collections::BTreeMap;

use billshadow_reports::prometheus::{BuildInfo, CellMigration, Exposition, SignatureCounts};
use billshadow_reports::view::RunView;

use crate::store::Store;

/// This binary's version and the commit it was built from (`build.rs`).
pub(crate) fn build_info() -> BuildInfo {
    BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("BILLSHADOW_COMMIT").to_owned(),
    }
}

/// A stored time (RFC 3339) in Unix seconds.
fn unix_seconds(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp())
}

/// The newest run's failing signatures, new since the shadow run before it or known.
async fn signature_counts(store: &Store, view: &RunView) -> anyhow::Result<SignatureCounts> {
    let runs = store.runs().await?;
    let previous = runs
        .iter()
        .filter(|r| r.kind == crate::store::RunKind::Shadow)
        .skip_while(|r| r.id != view.run_id)
        .nth(1);
    let before: std::collections::BTreeSet<String> = match previous {
        Some(r) => crate::run::causes::RunCauses::load(store, &r.id)
            .await?
            .view
            .signatures
            .into_iter()
            .filter(|s| s.failing > 0)
            .map(|s| s.id)
            .collect(),
        None => Default::default(),
    };
    let mut counts = SignatureCounts::default();
    for s in view.signatures.iter().filter(|s| s.failing > 0) {
        if before.contains(&s.id) {
            counts.known += 1;
        } else {
            counts.new += 1;
        }
    }
    Ok(counts)
}

/// The exposition of `view`, with the store's newest finished run and cell stages.
pub(crate) async fn exposition(store: &Store, view: &RunView) -> anyhow::Result<String> {
    let last_finished_seconds = store
        .runs()
        .await?
        .iter()
        .filter_map(|r| r.finished_at.as_deref().and_then(unix_seconds))
        .max();
    let migration: BTreeMap<String, CellMigration> = store
        .cell_states()
        .await?
        .into_iter()
        .map(|(cell, s)| {
            let stage = s.stage.as_str().to_owned();
            let held = s.held.is_some();
            (cell, CellMigration { stage, held })
        })
        .collect();
    let signatures = signature_counts(store, view).await?;
    let build = build_info();
    let mut out = Vec::new();
    billshadow_reports::prometheus::write(
        &mut out,
        Exposition {
            build: &build,
            view,
            last_finished_seconds,
            started_seconds: unix_seconds(&view.started_at),
            migration: &migration,
            signatures,
        },
    )?;
    Ok(String::from_utf8(out)?)
}

#[cfg(test)]
mod tests {
    /// Every stage the controller has is one the state set lists, and no other.
    #[test]
    fn the_state_set_lists_every_stage() {
        for stage in billshadow_reports::prometheus::STAGES {
            let parsed = crate::controller::machine::Stage::parse(stage);
            assert_eq!(parsed.map(|s| s.as_str()), Some(stage));
        }
    }

    #[test]
    fn unix_seconds() {
        assert_eq!(
            super::unix_seconds("2026-11-25T10:00:00.123Z"),
            Some(1_795_600_800)
        );
        assert_eq!(super::unix_seconds("yesterday"), None);
    }
}
