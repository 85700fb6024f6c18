//! A run's causes: found and stored when the run completes (`settle`, with the spec's
//! waivers by signature applied then), read back by every later command (`RunCauses::load`),
//! and computed on read for a run that has none stored (an unfinished run, or one stored by
//! an earlier release), so every report of every run leads with its causes.

use std::collections::HashMap;

use anyhow::Context;
use billshadow_comparisons::waive::waive_by_signature;
use billshadow_comparisons::{Causes, Diff, Waiver};
use billshadow_reports::causes::CausesView;

use crate::store::Store;
use crate::store::signatures::KeyedDiff;

/// A run's signatures, ranked, and the signature of each of its diffs.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunCauses {
    pub(crate) view: CausesView,
    /// Whether they were read from the store (else computed on read).
    pub(crate) stored: bool,
    /// Computed on read: each diff's signature by (account, seq). Empty when stored: the
    /// rows name their signature.
    computed: HashMap<(String, i64), String>,
}

impl RunCauses {
    /// The run's stored causes, or, when none are stored, its diffs grouped now.
    pub(crate) async fn load(store: &Store, run_id: &str) -> anyhow::Result<RunCauses> {
        if let Some(view) = store.stored_causes(run_id).await? {
            return Ok(RunCauses {
                view,
                stored: true,
                computed: HashMap::new(),
            });
        }
        let keyed = store
            .keyed_diffs(run_id, None)
            .await
            .with_context(|| format!("a stored diff of run {run_id} does not read back"))?;
        let diffs: Vec<Diff> = keyed.iter().map(|k| k.diff.clone()).collect();
        let causes = Causes::of(&diffs);
        let computed = keyed
            .into_iter()
            .enumerate()
            .filter_map(|(i, k)| {
                let id = causes.signature_of(i)?.to_owned();
                Some(((k.account_id, k.seq), id))
            })
            .collect();
        Ok(RunCauses {
            view: CausesView::from(&causes),
            stored: false,
            computed,
        })
    }

    /// The signature of the diff stored at (`account`, `seq`) whose row names `column`.
    pub(crate) fn signature_of<'a>(
        &'a self,
        account: &str,
        seq: i64,
        column: &'a str,
    ) -> Option<&'a str> {
        if self.stored {
            return (!column.is_empty()).then_some(column);
        }
        self.computed
            .get(&(account.to_owned(), seq))
            .map(String::as_str)
    }

    /// Whether a signature with failing diffs is among them.
    pub(crate) fn any_failing(&self) -> bool {
        self.view.signatures.iter().any(|s| s.failing > 0)
    }
}

/// A completed run's causes, found over all its diffs and stored, after the spec's waivers
/// that name a signature are applied (the signatures are counted again afterwards: their
/// failing diffs changed, their ids did not). Reads every diff of the run once.
pub(crate) async fn settle(
    store: &Store,
    run_id: &str,
    waivers: &[Waiver],
    today: chrono::NaiveDate,
) -> anyhow::Result<()> {
    let mut keyed: Vec<KeyedDiff> = store.keyed_diffs(run_id, None).await?;
    let mut diffs: Vec<Diff> = keyed.iter().map(|k| k.diff.clone()).collect();
    let mut causes = Causes::of(&diffs);
    let waiving = waive_by_signature(&mut diffs, &causes, waivers, today);
    if !waiving.waived.is_empty() {
        causes = Causes::of(&diffs);
        for &i in &waiving.waived {
            keyed[i].diff.waiver.clone_from(&diffs[i].waiver);
        }
    }
    store
        .save_causes(run_id, &keyed, &waiving.waived, &causes)
        .await
}
