//! Diff signatures: a comparison's diffs grouped by cause.
//!
//! Diffs that share a class, the fields that differ, a scope (charge code, line type,
//! currency, cell, as far as the shape needs one) and a **shape** (`shape.rs`: fewer decimals,
//! another rounding mode, another day count, a constant ratio or offset, a sign flip, a unit
//! scale, a currency relabel, missing lines) are one signature, with a plain-language
//! hypothesis, counts, money per currency, cells and example accounts.
//!
//! Knock-on diffs follow their cause: a tax line, a bill's total, or a credit whose amount
//! shows no shape of its own, in an account that has another diff, belong to the signature
//! of that account's largest other diff (`follows`), so one defect is one signature.
//!
//! Pure, and it never changes a diff: it only reads them. Every figure is exact
//! (`rust_decimal`); nothing here depends on the order of the diffs but the examples, which
//! are the smallest account ids.

mod hypothesis;
mod near_miss;
mod shape;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;

use crate::difference::{Diff, DiffClass, Scope};
use shape::{Amounts, Observed};
pub use shape::{Rounding, Shape, Side};

/// At most this many signatures are kept in full; the rest are counted (`Causes::left_off`).
pub const SIGNATURES_MAX: usize = 200;
/// At most this many example accounts per signature.
pub const EXAMPLES_MAX: usize = 5;
/// At most this many cells listed per signature (`Signature::cells_total` counts them all).
pub const CELLS_MAX: usize = 20;

/// Net and gross money a signature moves in one currency: Σ delta and Σ |delta|.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Money {
    pub net: Decimal,
    pub gross: Decimal,
}

/// One cause: its diffs' common description and their figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `sig-` and 16 hex digits: FNV-1a 64 of the recipe (`id_recipe`).
    pub id: String,
    pub class: DiffClass,
    pub fields: Vec<String>,
    pub shape: Shape,
    /// What every diff of the signature shares (none when they differ).
    pub charge_code: Option<String>,
    pub line_type: Option<String>,
    pub currency: Option<String>,
    pub cell: Option<String>,
    pub hypothesis: String,
    /// Every diff of the signature, follow-ons included.
    pub diffs: u64,
    /// Of which knock-on diffs (tax, totals, derived credits) of the same accounts.
    pub follow_on: u64,
    /// Of which failing (neither informational nor waived).
    pub failing: u64,
    pub accounts: u64,
    pub money: BTreeMap<String, Money>,
    /// The cells (`partition/region`) affected, at most `CELLS_MAX`.
    pub cells: Vec<String>,
    pub cells_total: u64,
    /// The smallest account ids, at most `EXAMPLES_MAX`.
    pub examples: Vec<String>,
}

/// Ranks signatures: failing ones first; then by money — each signature's share of the gross
/// money that differs in each currency (Σ |Δ| of the signature in it ÷ Σ |Δ| of every
/// signature in it), added over its currencies, so amounts in two currencies are never added
/// to each other; then by accounts, diffs, and id (a total order: the ranking never depends on
/// the diffs' order).
fn rank(signatures: &mut [Signature]) {
    let mut gross: BTreeMap<&str, Decimal> = BTreeMap::new();
    for s in signatures.iter() {
        for (currency, m) in &s.money {
            *gross.entry(currency.as_str()).or_default() += m.gross;
        }
    }
    let shares: Vec<Decimal> = signatures
        .iter()
        .map(|s| {
            s.money
                .iter()
                .filter_map(|(currency, m)| {
                    let total = gross.get(currency.as_str())?;
                    (!total.is_zero()).then(|| m.gross / *total)
                })
                .sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..signatures.len()).collect();
    order.sort_by(|&i, &j| {
        let (a, b) = (&signatures[i], &signatures[j]);
        (b.failing > 0, shares[j], b.accounts, b.diffs, &a.id).cmp(&(
            a.failing > 0,
            shares[i],
            a.accounts,
            a.diffs,
            &b.id,
        ))
    });
    let ranked: Vec<Signature> = order.iter().map(|&i| signatures[i].clone()).collect();
    signatures.clone_from_slice(&ranked);
}

/// A comparison's signatures, ranked, and the signature of each diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causes {
    /// Ranked (`rank`): failing ones first, then by money, accounts, diffs, id; at most
    /// `SIGNATURES_MAX`.
    pub signatures: Vec<Signature>,
    /// Signatures past `SIGNATURES_MAX`, counted but not kept.
    pub left_off: u64,
    /// The signature id of each diff, in the order of the diffs given.
    pub of_diff: Vec<String>,
}

impl Causes {
    /// The signatures of `diffs` (a comparison's or a run's; failing and informational).
    pub fn of(diffs: &[Diff]) -> Causes {
        let mut observed: Vec<Observed> = diffs.iter().map(shape::observe).collect();
        for (i, shape) in near_miss::near_misses(diffs) {
            observed[i] = Observed::Fixed(shape);
        }
        let follows = follows(diffs, &observed);
        let groups = group(diffs, &observed, &follows);
        let mut followers: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, place) in follows.iter().enumerate() {
            if let Place::After(cause) = place {
                followers.entry(*cause).or_default().push(i);
            }
        }
        let mut of_diff = vec![String::new(); diffs.len()];
        let mut built = Vec::with_capacity(groups.len());
        for (key, own) in groups {
            let id = key.id();
            let members: Vec<usize> = own
                .iter()
                .chain(
                    own.iter()
                        .flat_map(|i| followers.get(i).into_iter().flatten()),
                )
                .copied()
                .collect();
            for &i in &members {
                of_diff[i].clone_from(&id);
            }
            built.push(build(diffs, key, &own, &members));
        }
        rank(&mut built);
        let left_off = built.len().saturating_sub(SIGNATURES_MAX) as u64;
        built.truncate(SIGNATURES_MAX);
        Causes {
            signatures: built,
            left_off,
            of_diff,
        }
    }

    /// The signature of diff `index`, when there is one.
    pub fn signature_of(&self, index: usize) -> Option<&str> {
        self.of_diff
            .get(index)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// Where a diff goes: its own group, or the group of another diff of its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Own,
    /// Follows the diff at this index (itself `Own`).
    After(usize),
}

/// Knock-on diffs follow their account's cause: the account's largest diff (by |delta|) of
/// the lowest `knock_on` level present, so tax lines and totals follow a plan fee, and a
/// total follows a tax line when the tax line is all there is.
fn follows(diffs: &[Diff], observed: &[Observed]) -> Vec<Place> {
    let levels: Vec<u8> = diffs
        .iter()
        .zip(observed)
        .map(|(d, o)| knock_on(d, o))
        .collect();
    // The lowest level, then the largest |delta|; on a tie, content decides, never the order
    // of the diffs.
    let rank = |j: usize| {
        let d = &diffs[j];
        let size = d.delta.map(|x| x.abs()).unwrap_or_default();
        (
            std::cmp::Reverse(levels[j]),
            size,
            std::cmp::Reverse((&d.charge_code, d.class, &d.fields, &d.key)),
        )
    };
    let mut cause_of: HashMap<&str, usize> = HashMap::new();
    for (i, d) in diffs.iter().enumerate() {
        let Some(account) = d.account_id.as_deref() else {
            continue;
        };
        cause_of
            .entry(account)
            .and_modify(|best| {
                if rank(i) > rank(*best) {
                    *best = i;
                }
            })
            .or_insert(i);
    }
    diffs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let cause = d.account_id.as_deref().and_then(|a| cause_of.get(a));
            match cause {
                Some(&cause) if levels[i] > levels[cause] => Place::After(cause),
                _ => Place::Own,
            }
        })
        .collect()
}

/// 0: a diff that may be a cause; 1: a line that follows others (tax, or a credit or
/// discount with no shape of its own, or only a hinted one: a share of a fee); 2: a total.
fn knock_on(diff: &Diff, observed: &Observed) -> u8 {
    if diff.scope != Scope::Line {
        return if diff.class == DiffClass::TotalMismatch {
            2
        } else {
            0
        };
    }
    match line_type_of(diff).as_deref() {
        Some("tax") => 1,
        // A hint of fewer decimals (`-2.00` against `-2.07`) is no shape of its own either.
        Some("credit" | "discount")
            if matches!(observed, Observed::Numeric(_) | Observed::Weak(..)) =>
        {
            1
        }
        _ => 0,
    }
}

fn line_type_of(diff: &Diff) -> Option<String> {
    diff.key
        .get("line_type")
        .or_else(|| diff.legacy.as_ref().and_then(|e| e.fields.get("line_type")))
        .or_else(|| diff.modern.as_ref().and_then(|e| e.fields.get("line_type")))
        .map(str::to_owned)
}

fn cell_of(diff: &Diff) -> Option<String> {
    match (diff.partition.as_deref(), diff.region.as_deref()) {
        (None, None) => None,
        (p, r) => Some(format!("{}/{}", p.unwrap_or("-"), r.unwrap_or("-"))),
    }
}

/// What makes diffs one signature: class, fields, the scope the shape needs, the shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct GroupKey {
    class: DiffClass,
    fields: Vec<String>,
    /// (name, value) pairs in the recipe's order.
    scope: Vec<(&'static str, String)>,
    shape: Shape,
}

impl GroupKey {
    /// The id recipe: `billshadow.signature/v1`, class, fields joined by `,`, each scope
    /// part as `name=value` joined by `;`, the shape's key (`Shape::key`), separated by
    /// U+001F; hashed with FNV-1a 64 and written as `sig-` and 16 lower-case hex digits.
    fn id(&self) -> String {
        let scope: Vec<String> = self.scope.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let recipe = format!(
            "billshadow.signature/v1\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            self.class.as_str(),
            self.fields.join(","),
            scope.join(";"),
            self.shape.key()
        );
        format!("sig-{:016x}", fnv1a(recipe.as_bytes()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The scope parts a shape's signature is keyed by: a rounding rule holds for a currency, a
/// day count for a line type, a price, fee or missing line for one charge code; a pricing
/// rule with no constant for a line type in one currency and cell.
fn scope_for(diff: &Diff, shape: &Shape) -> Vec<(&'static str, String)> {
    // Only the parts the shape needs are built: this runs for every diff.
    let charge_code = || ("charge_code", diff.charge_code.clone().unwrap_or_default());
    let line_type = || ("line_type", line_type_of(diff).unwrap_or_default());
    let currency = || ("currency", currency_of(diff).unwrap_or_default());
    let cell = || ("cell", cell_of(diff).unwrap_or_default());
    match shape {
        Shape::FewerDecimals { .. } | Shape::RoundingMode { .. } => vec![currency()],
        Shape::Proration { .. } => vec![line_type()],
        Shape::CurrencyRelabel { .. } | Shape::KeyMismatch { .. } => vec![],
        Shape::Missing { .. } | Shape::SignFlip | Shape::UnitScale { .. } | Shape::Other => {
            vec![charge_code(), line_type()]
        }
        Shape::Ratio { .. } | Shape::Offset { .. } => {
            vec![charge_code(), line_type(), currency()]
        }
        Shape::Varied => vec![line_type(), currency(), cell()],
    }
}

fn currency_of(diff: &Diff) -> Option<String> {
    diff.currency.map(|c| c.code().to_owned()).or_else(|| {
        diff.legacy
            .as_ref()
            .or(diff.modern.as_ref())
            .and_then(|e| e.fields.get("currency").map(str::to_owned))
    })
}

/// Every own diff's group, in three passes: shapes a diff shows alone; amounts judged
/// together per charge code, line type and currency (a constant offset or ratio); what
/// shows no constant, together per line type, currency and cell.
fn group(
    diffs: &[Diff],
    observed: &[Observed],
    follows: &[Place],
) -> BTreeMap<GroupKey, Vec<usize>> {
    let mut groups: BTreeMap<GroupKey, Vec<usize>> = BTreeMap::new();
    let mut numeric: BTreeMap<GroupKey, Vec<(usize, Amounts)>> = BTreeMap::new();
    let mut weak: BTreeMap<GroupKey, Vec<(usize, Amounts)>> = BTreeMap::new();
    for (i, d) in diffs.iter().enumerate() {
        if follows[i] != Place::Own {
            continue;
        }
        let (shape, amounts) = match &observed[i] {
            Observed::Fixed(shape) => (shape.clone(), None),
            Observed::Weak(shape, a) => (shape.clone(), Some(*a)),
            // Keyed as an offset until the group is judged.
            Observed::Numeric(a) => (NUMERIC, Some(*a)),
        };
        // Both halves of a near miss are one signature, under the legacy half's class.
        let near_miss = matches!(shape, Shape::KeyMismatch { .. });
        let key = GroupKey {
            class: if near_miss {
                DiffClass::MissingInModern
            } else {
                d.class
            },
            fields: d.fields.clone(),
            scope: scope_for(d, &shape),
            shape,
        };
        match (amounts, &observed[i]) {
            (Some(a), Observed::Weak(..)) => weak.entry(key).or_default().push((i, a)),
            (Some(a), _) => numeric.entry(key).or_default().push((i, a)),
            (None, _) => groups.entry(key).or_default().push(i),
        }
    }
    settle_weak(diffs, weak, &mut groups, &mut numeric);
    merge_roundings(&mut groups);
    let judged: Vec<(GroupKey, Shape, Vec<usize>)> = numeric
        .into_iter()
        .flat_map(|(key, members)| {
            let amounts: Vec<Amounts> = members.iter().map(|(_, a)| *a).collect();
            shape::judge(&amounts)
                .into_iter()
                .map(|(shape, part)| {
                    let part = part.into_iter().map(|j| members[j].0).collect();
                    (key.clone(), shape, part)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let per_cell = rules_per_cell(diffs, &judged);
    for (key, shape, members) in judged {
        let cell = shared(members.iter().map(|&i| cell_of(&diffs[i])));
        let bucket = (
            key.class,
            key.fields.clone(),
            key.scope.get(1..).unwrap_or_default().to_vec(),
            cell,
        );
        let shape = if per_cell.contains(&bucket) {
            Shape::Varied
        } else {
            shape
        };
        for i in members {
            let key = GroupKey {
                scope: scope_for(&diffs[i], &shape),
                shape: shape.clone(),
                ..key.clone()
            };
            groups.entry(key).or_default().push(i);
        }
    }
    groups
}

/// The key numeric diffs are grouped under until the group is judged.
const NUMERIC: Shape = Shape::Offset {
    delta: Decimal::ZERO,
};

/// A hinted rounding rule is one when at least this many diffs hint at it (or one shows it
/// outright): one `11.90` against `11.91` is chance (one in ten), three are not.
const WEAK_SUPPORT_MIN: usize = 3;

/// Hinted roundings (`Observed::Weak`) join their rule's group when the rule has support,
/// else go back to the numeric diffs of their charge code.
fn settle_weak(
    diffs: &[Diff],
    weak: BTreeMap<GroupKey, Vec<(usize, Amounts)>>,
    groups: &mut BTreeMap<GroupKey, Vec<usize>>,
    numeric: &mut BTreeMap<GroupKey, Vec<(usize, Amounts)>>,
) {
    let mut support: BTreeMap<GroupKey, usize> = BTreeMap::new();
    for key in groups.keys() {
        if matches!(key.shape, Shape::FewerDecimals { .. }) {
            *support.entry(rounding_rule(key).0).or_default() += WEAK_SUPPORT_MIN;
        }
    }
    for (key, members) in &weak {
        *support.entry(rounding_rule(key).0).or_default() += members.len();
    }
    for (key, members) in weak {
        if support[&rounding_rule(&key).0] >= WEAK_SUPPORT_MIN {
            groups
                .entry(key)
                .or_default()
                .extend(members.iter().map(|(i, _)| *i));
            continue;
        }
        for (i, a) in members {
            let numeric_key = GroupKey {
                scope: scope_for(&diffs[i], &NUMERIC),
                shape: NUMERIC,
                ..key.clone()
            };
            numeric.entry(numeric_key).or_default().push((i, a));
        }
    }
}

/// A rounding group's rule (its key with the decimals left out) and its decimals.
fn rounding_rule(key: &GroupKey) -> (GroupKey, u32) {
    match key.shape {
        Shape::FewerDecimals { coarser, decimals } => (
            GroupKey {
                shape: Shape::FewerDecimals {
                    coarser,
                    decimals: 0,
                },
                ..key.clone()
            },
            decimals,
        ),
        _ => (key.clone(), 0),
    }
}

/// A value rounded to 2 decimals may be written with 1 or 0 (`12.50`, `12.00`): the groups of
/// one rounding rule that differ only in the decimals seen are one, with the most decimals.
fn merge_roundings(groups: &mut BTreeMap<GroupKey, Vec<usize>>) {
    let rounding_keys: Vec<GroupKey> = groups
        .keys()
        .filter(|k| matches!(k.shape, Shape::FewerDecimals { .. }))
        .cloned()
        .collect();
    let mut most: BTreeMap<GroupKey, u32> = BTreeMap::new();
    for key in &rounding_keys {
        let (rule, decimals) = rounding_rule(key);
        let best = most.entry(rule).or_default();
        *best = (*best).max(decimals);
    }
    for key in rounding_keys {
        let (rule, _) = rounding_rule(&key);
        let Shape::FewerDecimals { coarser, .. } = key.shape else {
            continue;
        };
        let target = GroupKey {
            shape: Shape::FewerDecimals {
                coarser,
                decimals: most[&rule],
            },
            ..key.clone()
        };
        if target != key {
            let members = groups.remove(&key).unwrap_or_default();
            groups.entry(target).or_default().extend(members);
        }
    }
}

/// A bucket of judged groups: class, fields, line type and currency (the key's scope after
/// the charge code), and the one cell every member is in.
type Bucket = (
    DiffClass,
    Vec<String>,
    Vec<(&'static str, String)>,
    Option<String>,
);

/// Buckets where several charge codes of one line type, currency and cell each differ by a
/// constant of their own (or none): one rule of that cell (tiers, a price book) rather than
/// a price changed per charge code, so they are one `Varied` signature of the cell.
fn rules_per_cell(diffs: &[Diff], judged: &[(GroupKey, Shape, Vec<usize>)]) -> BTreeSet<Bucket> {
    // The charge codes (the key's first scope part) of each bucket: a charge code judged in
    // parts (a constant and the lines outside it) is still one.
    let mut codes: BTreeMap<Bucket, BTreeSet<&str>> = BTreeMap::new();
    for (key, _, members) in judged {
        let cell = shared(members.iter().map(|&i| cell_of(&diffs[i])));
        if cell.is_some() {
            let bucket = (
                key.class,
                key.fields.clone(),
                key.scope.get(1..).unwrap_or_default().to_vec(),
                cell,
            );
            let code = key.scope.first().map_or("", |(_, v)| v.as_str());
            codes.entry(bucket).or_default().insert(code);
        }
    }
    codes
        .into_iter()
        .filter(|(_, n)| n.len() >= 2)
        .map(|(bucket, _)| bucket)
        .collect()
}

/// A signature's figures over its own diffs and the ones that follow them.
fn build(diffs: &[Diff], key: GroupKey, own: &[usize], members: &[usize]) -> Signature {
    let mut figures = Figures::default();
    for (n, &i) in members.iter().enumerate() {
        figures.add(&diffs[i], n < own.len());
    }
    let common = |f: fn(&Diff) -> Option<String>| shared(own.iter().map(|&i| f(&diffs[i])));
    let charge_code = common(|d| d.charge_code.clone());
    let line_type = common(line_type_of);
    let currency = common(currency_of);
    let cell = common(cell_of);
    let partition = common(|d| d.partition.clone());
    let region = common(|d| d.region.clone());
    let id = key.id();
    let hypothesis = hypothesis::write(&hypothesis::Facts {
        class: key.class,
        shape: &key.shape,
        charge_code: charge_code.as_deref(),
        line_type: line_type.as_deref(),
        currency: currency.as_deref(),
        partition: partition.as_deref(),
        region: region.as_deref(),
        higher: figures.higher,
        paired: figures.paired,
    });
    let cells_total = figures.cells.len() as u64;
    Signature {
        id,
        class: key.class,
        fields: key.fields,
        shape: key.shape,
        charge_code,
        line_type,
        currency,
        cell,
        hypothesis,
        diffs: members.len() as u64,
        follow_on: (members.len() - own.len()) as u64,
        failing: figures.failing,
        accounts: figures.accounts.len() as u64,
        money: figures.money,
        cells: figures.cells.into_iter().take(CELLS_MAX).collect(),
        cells_total,
        examples: figures.accounts.into_iter().take(EXAMPLES_MAX).collect(),
    }
}

/// The one value every item has, if they all have the same.
fn shared(mut values: impl Iterator<Item = Option<String>>) -> Option<String> {
    let first = values.next()??;
    values
        .all(|v| v.as_deref() == Some(&first))
        .then_some(first)
}

#[derive(Default)]
struct Figures {
    failing: u64,
    accounts: BTreeSet<String>,
    cells: BTreeSet<String>,
    money: BTreeMap<String, Money>,
    /// Own paired lines where modern is higher, of all own paired lines.
    higher: u64,
    paired: u64,
}

impl Figures {
    /// Adds a diff; only the signature's own diffs (not its follow-ons) count as
    /// `higher` / `paired`, which describe the shape.
    fn add(&mut self, d: &Diff, own: bool) {
        self.failing += u64::from(d.is_failing());
        if let Some(a) = &d.account_id {
            self.accounts.insert(a.clone());
        }
        if let Some(c) = cell_of(d) {
            self.cells.insert(c);
        }
        if let (Some(delta), Some(currency)) = (d.delta, d.currency) {
            let money = self.money.entry(currency.code().to_owned()).or_default();
            money.net += delta;
            money.gross += delta.abs();
            if own && d.legacy.is_some() && d.modern.is_some() {
                self.paired += 1;
                self.higher += u64::from(delta.is_sign_positive() && !delta.is_zero());
            }
        }
    }
}
