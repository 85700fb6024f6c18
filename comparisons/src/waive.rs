//! Waivers by signature: a waiver that names a signature id covers the failing diffs of that
//! signature (and, when it has other filters too, only those of them that match), nothing
//! outside it. A diff's signature is known only once every diff is, so these waivers are
//! applied after the comparison (`diff`) or when a run ends, never diff by diff.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;

use crate::config::Waiver;
use crate::diff::Comparison;
use crate::difference::Diff;
use crate::signature::Causes;
use crate::summary::Verdict;

/// What waiving by signature did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureWaiving {
    /// The indices of the diffs it waived, in order.
    pub waived: Vec<usize>,
    /// Per waiver (in the order given): diffs waived, and diffs matched while it had
    /// expired (they stay failing).
    pub hits: Vec<u64>,
    pub expired_hits: Vec<u64>,
}

/// Marks the failing diffs whose signature a live waiver names as waived by it (the first
/// such waiver whose other filters match, in the order given). An expired waiver covers
/// nothing: its matches are counted in `expired_hits`.
pub fn waive_by_signature(
    diffs: &mut [Diff],
    causes: &Causes,
    waivers: &[Waiver],
    today: NaiveDate,
) -> SignatureWaiving {
    let mut out = SignatureWaiving {
        waived: Vec::new(),
        hits: vec![0; waivers.len()],
        expired_hits: vec![0; waivers.len()],
    };
    if waivers.iter().all(|w| w.signature.is_none()) {
        return out;
    }
    for (i, diff) in diffs.iter_mut().enumerate() {
        if !diff.is_failing() {
            continue;
        }
        let Some(signature) = causes.signature_of(i) else {
            continue;
        };
        for (w, waiver) in waivers.iter().enumerate() {
            if waiver.signature.as_deref() != Some(signature)
                || !crate::diff::waiver_matches(waiver, diff)
            {
                continue;
            }
            if waiver.is_expired(today) {
                out.expired_hits[w] += 1;
                continue;
            }
            out.hits[w] += 1;
            diff.waiver = Some(waiver.id.clone());
            out.waived.push(i);
            break;
        }
    }
    out
}

impl Comparison {
    /// Applies the waivers by signature of `waivers` to this comparison, its summary
    /// included (waived and failing diffs, accounts, each waiver's uses, the verdict).
    /// `summary.waivers` is in the order of `waivers`, as the engine writes it.
    pub fn waive_by_signature(
        &mut self,
        causes: &Causes,
        waivers: &[Waiver],
        today: NaiveDate,
    ) -> SignatureWaiving {
        let done = waive_by_signature(&mut self.diffs, causes, waivers, today);
        let s = &mut self.summary;
        for (use_, (hits, expired)) in s
            .waivers
            .iter_mut()
            .zip(done.hits.iter().zip(&done.expired_hits))
        {
            use_.waived += hits;
            use_.matched_while_expired += expired;
        }
        let n = done.waived.len() as u64;
        s.waived += n;
        s.diffs_failing -= n.min(s.diffs_failing);
        // Accounts whose last failing diffs were waived are at parity now, thanks to waivers.
        let touched: BTreeSet<&str> = done
            .waived
            .iter()
            .filter_map(|&i| self.diffs[i].account_id.as_deref())
            .collect();
        let mut still_failing: BTreeMap<&str, bool> = touched.iter().map(|a| (*a, false)).collect();
        for d in &self.diffs {
            if let Some(f) = d
                .account_id
                .as_deref()
                .and_then(|a| still_failing.get_mut(a))
            {
                *f |= d.is_failing();
            }
        }
        let cleared = still_failing.values().filter(|f| !**f).count() as u64;
        s.accounts_mismatched -= cleared.min(s.accounts_mismatched);
        s.accounts_at_parity += cleared;
        s.accounts_waived += cleared;
        if s.diffs_failing == 0 && s.verdict == Verdict::Mismatch {
            s.verdict = if s.rows_quarantined > 0 {
                Verdict::Incomplete
            } else {
                Verdict::Parity
            };
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::difference::{DiffClass, Scope};

    fn diff(class: DiffClass, code: &str) -> Diff {
        Diff {
            account_id: Some("acct-1".to_owned()),
            charge_code: Some(code.to_owned()),
            ..Diff::new(class, Scope::Line)
        }
    }

    fn waiver(id: &str, signature: &str, code: Option<&str>, expires: &str) -> Waiver {
        Waiver {
            id: id.to_owned(),
            class: None,
            charge_code: code.map(|c| glob::Pattern::new(c).unwrap()),
            account_id: None,
            partition: None,
            region: None,
            delta_abs_max: None,
            signature: Some(signature.to_owned()),
            reason: "r".to_owned(),
            ticket: "t".to_owned(),
            owner: "o".to_owned(),
            expires: expires.parse().unwrap(),
        }
    }

    /// A live waiver covers the failing diffs of its signature its other filters match, and
    /// nothing else; an expired one covers nothing and counts what it matched.
    #[test]
    fn a_waiver_by_signature_covers_its_signature_only() {
        let mut diffs = vec![
            diff(DiffClass::AmountMismatch, "fee.platform"), // sig-a: covered
            diff(DiffClass::SubMinorUnit, "fee.platform"),   // sig-a, informational
            diff(DiffClass::AmountMismatch, "fee.support"),  // sig-b: its waiver expired
            diff(DiffClass::AmountMismatch, "tax.vat"),      // sig-a, outside the glob
            diff(DiffClass::MissingInModern, "fee.platform"), // sig-c: no waiver
        ];
        let causes = Causes {
            of_diff: ["sig-a", "sig-a", "sig-b", "sig-a", "sig-c"]
                .map(str::to_owned)
                .to_vec(),
            ..Causes::default()
        };
        let waivers = [
            waiver("W-A", "sig-a", Some("fee.*"), "2026-12-31"),
            waiver("W-B", "sig-b", None, "2026-01-31"),
        ];
        let today = "2026-11-25".parse().unwrap();
        let done = waive_by_signature(&mut diffs, &causes, &waivers, today);
        assert_eq!(done.waived, [0]);
        assert_eq!(done.hits, [1, 0]);
        assert_eq!(done.expired_hits, [0, 1]);
        let waived: Vec<Option<&str>> = diffs.iter().map(|d| d.waiver.as_deref()).collect();
        assert_eq!(waived, [Some("W-A"), None, None, None, None]);
    }
}
