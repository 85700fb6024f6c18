//! The diff engine: pairs the two sides' lines account by account, classifies every
//! difference, checks bill and customer totals, applies waivers and tallies a summary.
//!
//! It never fails on data: a mismatch is a value, not an `Err`. It never drops a
//! difference either: what passes the tolerance is still recorded as informational.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rustc_hash::FxHashMap;

use crate::config::{CompareConfig, KeyField};
use crate::model::{Field, Line, LineStore};
use crate::money::Currency;
use crate::pairing::{Pairing, pair_group};
use crate::summary::{Summary, Tally};

/// The stable names of the kinds of difference.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DiffClass {
    MissingInModern,
    MissingInLegacy,
    CurrencyMismatch,
    AmountMismatch,
    QuantityMismatch,
    UnitPriceMismatch,
    TotalMismatch,
    /// The account is billed to another customer (payer) on one side.
    CustomerChanged,
    StackError,
    /// Informational: the amounts differ by less than one minor unit.
    SubMinorUnit,
    /// Informational: the amounts differ by one minor unit or more, but less than a
    /// tolerance the spec widened.
    WithinTolerance,
    /// Informational: only cosmetic fields differ (description, unit, extra columns).
    DescriptionChanged,
}

impl DiffClass {
    pub const ALL: [DiffClass; 12] = [
        DiffClass::MissingInModern,
        DiffClass::MissingInLegacy,
        DiffClass::CurrencyMismatch,
        DiffClass::AmountMismatch,
        DiffClass::QuantityMismatch,
        DiffClass::UnitPriceMismatch,
        DiffClass::TotalMismatch,
        DiffClass::CustomerChanged,
        DiffClass::StackError,
        DiffClass::SubMinorUnit,
        DiffClass::WithinTolerance,
        DiffClass::DescriptionChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DiffClass::MissingInModern => "missing_in_modern",
            DiffClass::MissingInLegacy => "missing_in_legacy",
            DiffClass::CurrencyMismatch => "currency_mismatch",
            DiffClass::AmountMismatch => "amount_mismatch",
            DiffClass::QuantityMismatch => "quantity_mismatch",
            DiffClass::UnitPriceMismatch => "unit_price_mismatch",
            DiffClass::TotalMismatch => "total_mismatch",
            DiffClass::CustomerChanged => "customer_changed",
            DiffClass::StackError => "stack_error",
            DiffClass::SubMinorUnit => "sub_minor_unit",
            DiffClass::WithinTolerance => "within_tolerance",
            DiffClass::DescriptionChanged => "description_changed",
        }
    }

    pub fn from_name(name: &str) -> Option<DiffClass> {
        DiffClass::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Informational classes are recorded but never fail a comparison.
    pub fn is_informational(self) -> bool {
        matches!(
            self,
            DiffClass::SubMinorUnit | DiffClass::WithinTolerance | DiffClass::DescriptionChanged
        )
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What a diff is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Line,
    Bill,
    /// One invoice's total, when an account's bills span several invoices with the same ids on
    /// both sides.
    Invoice,
    Customer,
    Account,
}

/// One side's line (or total) as evidence: every field it carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Evidence {
    pub fn of_line(line: &Line<'_>) -> Evidence {
        let mut fields = BTreeMap::new();
        for field in Field::ALL {
            let value = line.get(field);
            if !value.is_empty() && !matches!(field, Field::AccountId | Field::Attributes) {
                fields.insert(field.name().to_owned(), value.to_owned());
            }
        }
        fields.insert("line_type".to_owned(), line.line_type().as_str().to_owned());
        fields.insert("currency".to_owned(), line.currency().code().to_owned());
        let attributes = line
            .attributes()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Evidence { fields, attributes }
    }

    pub fn of_total(total: Decimal, currency: Currency) -> Evidence {
        let amount = currency.present(total).to_string();
        Evidence {
            fields: BTreeMap::from([("amount".to_owned(), amount)]),
            attributes: BTreeMap::new(),
        }
    }
}

/// One difference between the two sides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Diff {
    pub account_id: Option<String>,
    pub class: DiffClass,
    pub scope: Scope,
    pub charge_code: Option<String>,
    /// The match key's other components (for bills: the billing period).
    pub key: BTreeMap<String, String>,
    pub legacy: Option<Evidence>,
    pub modern: Option<Evidence>,
    /// modern − legacy, when both are in one currency.
    pub delta: Option<Decimal>,
    pub currency: Option<Currency>,
    /// Every field that differs.
    pub fields: Vec<String>,
    /// The id of the waiver that covers this diff.
    pub waiver: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modern_line: Option<u32>,
    /// Free text, for diffs that carry a message (stack errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Diff {
    /// Fails the comparison: a non-informational class that no waiver covers.
    pub fn is_failing(&self) -> bool {
        !self.class.is_informational() && self.waiver.is_none()
    }
}

/// The result of comparing two sides.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub summary: Summary,
    pub diffs: Vec<Diff>,
}

impl Comparison {
    /// True when the verdict is parity: no failing diff, nothing left out.
    pub fn at_parity(&self) -> bool {
        self.summary.is_parity()
    }
}

/// Compares two sides with one thread.
pub fn compare(legacy: &LineStore, modern: &LineStore, config: &CompareConfig) -> Comparison {
    compare_with_threads(legacy, modern, config, 1)
}

/// Compares two sides, spreading accounts over `threads` threads. The result does not
/// depend on the number of threads.
pub fn compare_with_threads(
    legacy: &LineStore,
    modern: &LineStore,
    config: &CompareConfig,
    threads: usize,
) -> Comparison {
    // Both passes read each side in file order, which is what memory is fastest at; the
    // per-account work that follows jumps around.
    let threads = threads.clamp(1, 64);
    let hashes = || {
        (
            key_hashes(&config.key, legacy),
            key_hashes(&config.key, modern),
        )
    };
    let (accounts, (legacy_hashes, modern_hashes)) = if threads == 1 {
        (AccountIndex::build(legacy, modern), hashes())
    } else {
        std::thread::scope(|scope| {
            let hashes = scope.spawn(hashes);
            let accounts = AccountIndex::build(legacy, modern);
            (
                accounts,
                hashes
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        })
    };
    let chunk = accounts.order.len().div_ceil(threads).max(1);
    let engine = Engine {
        legacy,
        modern,
        legacy_hashes,
        modern_hashes,
        config,
    };
    let parts: Vec<(Vec<Diff>, Tally)> = if threads == 1 {
        vec![engine.compare_accounts(&accounts, &accounts.order)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = accounts
                .order
                .chunks(chunk)
                .map(|slice| {
                    let (engine, accounts) = (&engine, &accounts);
                    scope.spawn(move || engine.compare_accounts(accounts, slice))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut diffs = Vec::new();
    let mut tally = Tally::new(config);
    for (part_diffs, part_tally) in parts {
        diffs.extend(part_diffs);
        tally.merge(part_tally);
    }
    tally.lines_legacy = legacy.len() as u64;
    tally.lines_modern = modern.len() as u64;
    diffs.extend(engine.customer_diffs(&mut tally));
    let summary = tally.finish(config);
    debug_assert_eq!(
        summary.diffs_failing,
        diffs.iter().filter(|d| d.is_failing()).count() as u64
    );
    Comparison { summary, diffs }
}

/// Lines of both sides grouped by account, accounts in name order.
struct AccountIndex<'s> {
    names: Vec<&'s str>,
    /// Per side: line indices ordered by account, and where each account's run starts.
    legacy_lines: Vec<u32>,
    legacy_starts: Vec<u32>,
    modern_lines: Vec<u32>,
    modern_starts: Vec<u32>,
    order: Vec<u32>,
}

impl<'s> AccountIndex<'s> {
    fn build(legacy: &'s LineStore, modern: &'s LineStore) -> AccountIndex<'s> {
        let mut ids: FxHashMap<&'s str, u32> = FxHashMap::default();
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
                    let next = names.len() as u32;
                    let id = *ids.entry(name).or_insert_with(|| {
                        names.push(name);
                        next
                    });
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

    fn legacy(&self, account: u32) -> &[u32] {
        let a = account as usize;
        &self.legacy_lines[self.legacy_starts[a] as usize..self.legacy_starts[a + 1] as usize]
    }

    fn modern(&self, account: u32) -> &[u32] {
        let a = account as usize;
        &self.modern_lines[self.modern_starts[a] as usize..self.modern_starts[a + 1] as usize]
    }
}

/// A counting sort of line indices by account: stable, so file order is kept per account.
fn bucket(account_of_line: &[u32], accounts: usize) -> (Vec<u32>, Vec<u32>) {
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

struct Engine<'s> {
    legacy: &'s LineStore,
    modern: &'s LineStore,
    /// The match key's hash of every line, per side.
    legacy_hashes: Vec<u64>,
    modern_hashes: Vec<u64>,
    config: &'s CompareConfig,
}

/// One bill's totals in one currency, while an account is compared.
struct BillTotal<'s> {
    period_start: &'s str,
    period_end: &'s str,
    currency: Currency,
    legacy: Decimal,
    modern: Decimal,
    /// Customer, partition and region of the first line of each side.
    legacy_meta: Option<[&'s str; 3]>,
    modern_meta: Option<[&'s str; 3]>,
}

impl BillTotal<'_> {
    /// Customer, partition and region as both sides agree on them: a value one side gives
    /// and the other contradicts is no one's, so a waiver scoped to it does not apply.
    fn meta(&self, i: usize) -> Option<String> {
        agreed(
            self.legacy_meta.map(|m| m[i]),
            self.modern_meta.map(|m| m[i]),
        )
    }
}

fn agreed(legacy: Option<&str>, modern: Option<&str>) -> Option<String> {
    match (legacy, modern) {
        (Some(a), Some(b)) if a != b => None,
        (Some(a), _) | (None, Some(a)) => non_empty(a),
        (None, None) => None,
    }
}

impl<'s> Engine<'s> {
    fn compare_accounts(&self, accounts: &AccountIndex<'s>, slice: &[u32]) -> (Vec<Diff>, Tally) {
        let mut diffs = Vec::new();
        let mut tally = Tally::new(self.config);
        let mut scratch = Scratch::default();
        for &account in slice {
            let first = diffs.len();
            self.compare_account(
                accounts.legacy(account),
                accounts.modern(account),
                &mut scratch,
                &mut diffs,
                &mut tally,
            );
            let account_diffs = &diffs[first..];
            tally.count_account(account_diffs);
            debug_assert!(
                account_diffs
                    .iter()
                    .all(|d| d.account_id.as_deref() == Some(accounts.names[account as usize]))
            );
        }
        (diffs, tally)
    }

    fn compare_account(
        &self,
        legacy_ids: &[u32],
        modern_ids: &[u32],
        scratch: &mut Scratch,
        diffs: &mut Vec<Diff>,
        tally: &mut Tally,
    ) {
        let key = &self.config.key;
        let (legacy, modern) = (self.legacy, self.modern);
        keyed_lines(
            key,
            legacy,
            &self.legacy_hashes,
            legacy_ids,
            &mut scratch.legacy,
        );
        keyed_lines(
            key,
            modern,
            &self.modern_hashes,
            modern_ids,
            &mut scratch.modern,
        );

        let mut bills: Vec<BillTotal<'s>> = Vec::new();
        // Each line's customer, read while its amount is: lines are scattered in memory, so
        // each is visited once here.
        let mut customers: Vec<CustomerLine<'s>> = Vec::new();
        for (store, lines, is_legacy) in [
            (legacy, &scratch.legacy, true),
            (modern, &scratch.modern, false),
        ] {
            for k in lines {
                let line = store.line(k.line as usize);
                let bill = bill_of(&mut bills, &line, is_legacy);
                if is_legacy {
                    bills[bill].legacy += line.amount();
                } else {
                    bills[bill].modern += line.amount();
                }
                let customer = line.get(Field::CustomerId);
                if !customer.is_empty() {
                    customers.push(CustomerLine {
                        customer,
                        bill,
                        is_legacy,
                        amount: line.amount(),
                    });
                }
            }
        }

        let first_diff = diffs.len();
        let (l, m) = (&scratch.legacy, &scratch.modern);
        let (mut li, mut mi) = (0, 0);
        while li < l.len() || mi < m.len() {
            let order = match (l.get(li), m.get(mi)) {
                (Some(a), Some(b)) => key_order(key, legacy, a, modern, b),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let l_end = if order != Ordering::Greater {
                group_end(key, legacy, l, li)
            } else {
                li
            };
            let m_end = if order != Ordering::Less {
                group_end(key, modern, m, mi)
            } else {
                mi
            };
            scratch.group_l.clear();
            scratch.group_l.extend(l[li..l_end].iter().map(|k| k.line));
            scratch.group_m.clear();
            scratch.group_m.extend(m[mi..m_end].iter().map(|k| k.line));
            pair_group(
                legacy,
                &scratch.group_l,
                modern,
                &scratch.group_m,
                &self.config.ignored,
                &mut scratch.pairs,
            );
            for pairing in &scratch.pairs {
                let diff = match *pairing {
                    Pairing::Both(a, b) => {
                        tally.lines_matched += 1;
                        self.compare_pair(&legacy.line(a as usize), &modern.line(b as usize))
                    }
                    Pairing::LegacyOnly(a) => {
                        Some(self.missing(&legacy.line(a as usize), DiffClass::MissingInModern))
                    }
                    Pairing::ModernOnly(b) => {
                        Some(self.missing(&modern.line(b as usize), DiffClass::MissingInLegacy))
                    }
                };
                if let Some(diff) = diff {
                    if matches!(pairing, Pairing::Both(..)) && !diff.class.is_informational() {
                        tally.lines_mismatched += 1;
                    }
                    diffs.push(self.waive(diff, tally));
                }
            }
            (li, mi) = (l_end, m_end);
        }
        // Groups were visited in hash order; a reader wants them in key order.
        diffs[first_diff..].sort_by(|a, b| {
            (
                &a.charge_code,
                &a.key,
                a.class,
                a.legacy_line,
                a.modern_line,
            )
                .cmp(&(
                    &b.charge_code,
                    &b.key,
                    b.class,
                    b.legacy_line,
                    b.modern_line,
                ))
        });

        let account_id = legacy_ids
            .first()
            .map(|&i| legacy.line(i as usize))
            .or_else(|| modern_ids.first().map(|&i| modern.line(i as usize)))
            .map(|line| line.get(Field::AccountId))
            .unwrap_or_default();
        let mut flagged_bills = Vec::with_capacity(bills.len());
        for bill in &bills {
            tally.add_currency_totals(bill.currency, bill.legacy, bill.modern);
            let delta = bill.modern - bill.legacy;
            let flagged = delta.abs() >= self.config.tolerances.total.in_currency(bill.currency);
            flagged_bills.push(flagged);
            if flagged {
                let diff = self.total_mismatch(account_id, bill, delta);
                diffs.push(self.waive(diff, tally));
            }
        }
        if self.config.customer_totals {
            add_customer_totals(&bills, &flagged_bills, &customers, tally);
        }
        if !legacy_ids.is_empty() && !modern_ids.is_empty() && !self.config.ignored.customer_id {
            if let Some(diff) = customer_changed(account_id, &customers) {
                diffs.push(self.waive(diff, tally));
            }
        }
        self.invoice_totals(account_id, &scratch.legacy, &scratch.modern, diffs, tally);
    }

    /// Invoice totals, per currency, for accounts billed on several invoices whose ids both
    /// sides share: a bill can balance while money moved between two of its invoices.
    fn invoice_totals(
        &self,
        account_id: &str,
        l: &[Keyed],
        m: &[Keyed],
        diffs: &mut Vec<Diff>,
        tally: &mut Tally,
    ) {
        let (legacy, modern) = (self.legacy, self.modern);
        let invoice = |store: &'s LineStore, k: &Keyed| {
            let line = store.line(k.line as usize);
            (line.get(Field::InvoiceId), line.currency(), line.amount())
        };
        let mut totals: BTreeMap<(&str, Currency), (Decimal, Decimal, bool, bool)> =
            BTreeMap::new();
        for (id, currency, amount) in l
            .iter()
            .map(|k| invoice(legacy, k))
            .filter(|(id, ..)| !id.is_empty())
        {
            let t = totals.entry((id, currency)).or_default();
            t.0 += amount;
            t.2 = true;
        }
        for (id, currency, amount) in m
            .iter()
            .map(|k| invoice(modern, k))
            .filter(|(id, ..)| !id.is_empty())
        {
            let t = totals.entry((id, currency)).or_default();
            t.1 += amount;
            t.3 = true;
        }
        let invoices: std::collections::BTreeSet<&str> = totals.keys().map(|(id, _)| *id).collect();
        if invoices.len() < 2 {
            return;
        }
        for ((id, currency), (l_total, m_total, on_legacy, on_modern)) in totals {
            let delta = m_total - l_total;
            if !(on_legacy && on_modern)
                || delta.abs() < self.config.tolerances.total.in_currency(currency)
            {
                continue;
            }
            let diff = Diff {
                account_id: Some(account_id.to_owned()),
                class: DiffClass::TotalMismatch,
                scope: Scope::Invoice,
                charge_code: None,
                key: BTreeMap::from([("invoice_id".to_owned(), id.to_owned())]),
                legacy: Some(Evidence::of_total(l_total, currency)),
                modern: Some(Evidence::of_total(m_total, currency)),
                delta: Some(currency.present(delta)),
                currency: Some(currency),
                fields: vec!["total".into()],
                waiver: None,
                customer_id: None,
                partition: None,
                region: None,
                legacy_line: None,
                modern_line: None,
                detail: None,
            };
            diffs.push(self.waive(diff, tally));
        }
    }

    fn compare_pair(&self, a: &Line<'_>, b: &Line<'_>) -> Option<Diff> {
        let ignored = &self.config.ignored;
        let mut fields: Vec<String> = Vec::new();
        let currency_differs = a.currency() != b.currency();
        if currency_differs {
            fields.push("currency".into());
        }
        let delta = b.amount() - a.amount();
        if !delta.is_zero() {
            fields.push("amount".into());
        }
        let quantity_differs =
            !ignored.quantity && !decimal_text_eq(a.get(Field::Quantity), b.get(Field::Quantity));
        if quantity_differs {
            fields.push("quantity".into());
        }
        let unit_price_differs = !ignored.unit_price
            && !decimal_text_eq(a.get(Field::UnitPrice), b.get(Field::UnitPrice));
        if unit_price_differs {
            fields.push("unit_price".into());
        }
        let cosmetic_start = fields.len();
        if !ignored.unit && a.get(Field::Unit) != b.get(Field::Unit) {
            fields.push("unit".into());
        }
        if !ignored.description && a.get(Field::Description) != b.get(Field::Description) {
            fields.push("description".into());
        }
        // Only when the match key leaves it out can the two charge codes differ.
        if a.get(Field::ChargeCode) != b.get(Field::ChargeCode) {
            fields.push("charge_code".into());
        }
        if !ignored.all_attributes && a.get(Field::Attributes) != b.get(Field::Attributes) {
            attribute_differences(a, b, ignored, &mut fields);
        }
        if fields.is_empty() {
            return None;
        }
        let currency = a.currency();
        // The tighter of the two sides' tolerances, so that naming the sides the other way
        // round never loosens a comparison.
        let tolerance_of = |line: &Line<'_>| {
            self.config
                .tolerances
                .for_line(line.get(Field::ChargeCode), line.line_type())
                .in_currency(currency)
        };
        let tolerance = tolerance_of(a).min(tolerance_of(b));
        let class = if currency_differs {
            DiffClass::CurrencyMismatch
        } else if delta.abs() >= tolerance {
            DiffClass::AmountMismatch
        } else if quantity_differs {
            DiffClass::QuantityMismatch
        } else if unit_price_differs {
            DiffClass::UnitPriceMismatch
        } else if delta.abs() >= currency.minor_unit() {
            DiffClass::WithinTolerance
        } else if !delta.is_zero() {
            DiffClass::SubMinorUnit
        } else if fields.len() > cosmetic_start {
            DiffClass::DescriptionChanged
        } else {
            return None;
        };
        let mut diff = self.line_diff(a, class);
        diff.modern = Some(Evidence::of_line(b));
        diff.modern_line = Some(b.source_line());
        let both = |field: Field| agreed(Some(a.get(field)), Some(b.get(field)));
        diff.charge_code = both(Field::ChargeCode);
        diff.customer_id = both(Field::CustomerId);
        diff.partition = both(Field::Partition);
        diff.region = both(Field::Region);
        diff.delta = (!currency_differs).then(|| currency.present(delta));
        // Two currencies: the diff is in neither.
        diff.currency = (!currency_differs).then_some(currency);
        diff.fields = fields;
        Some(diff)
    }

    fn missing(&self, line: &Line<'_>, class: DiffClass) -> Diff {
        let mut diff = self.line_diff(line, class);
        diff.fields = vec!["line".into()];
        let amount = line.amount();
        if class == DiffClass::MissingInLegacy {
            diff.legacy_line = None;
            diff.modern_line = Some(line.source_line());
            diff.modern = diff.legacy.take();
            diff.delta = Some(line.currency().present(amount));
        } else {
            diff.delta = Some(line.currency().present(-amount));
        }
        diff
    }

    /// A line diff with the legacy side filled from `line`.
    fn line_diff(&self, line: &Line<'_>, class: DiffClass) -> Diff {
        let key = self
            .config
            .key
            .iter()
            .filter(|k| !matches!(k, KeyField::Text(Field::AccountId | Field::ChargeCode)))
            .map(|k| (k.name(), k.value(line).into_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        Diff {
            account_id: Some(line.get(Field::AccountId).to_owned()),
            class,
            scope: Scope::Line,
            charge_code: non_empty(line.get(Field::ChargeCode)),
            key,
            legacy: Some(Evidence::of_line(line)),
            modern: None,
            delta: None,
            currency: Some(line.currency()),
            fields: Vec::new(),
            waiver: None,
            customer_id: non_empty(line.get(Field::CustomerId)),
            partition: non_empty(line.get(Field::Partition)),
            region: non_empty(line.get(Field::Region)),
            legacy_line: Some(line.source_line()),
            modern_line: None,
            detail: None,
        }
    }

    fn total_mismatch(&self, account_id: &str, bill: &BillTotal<'_>, delta: Decimal) -> Diff {
        Diff {
            account_id: Some(account_id.to_owned()),
            class: DiffClass::TotalMismatch,
            scope: Scope::Bill,
            charge_code: None,
            key: BTreeMap::from([
                ("period_start".to_owned(), bill.period_start.to_owned()),
                ("period_end".to_owned(), bill.period_end.to_owned()),
            ]),
            legacy: Some(Evidence::of_total(bill.legacy, bill.currency)),
            modern: Some(Evidence::of_total(bill.modern, bill.currency)),
            delta: Some(bill.currency.present(delta)),
            currency: Some(bill.currency),
            fields: vec!["total".into()],
            waiver: None,
            customer_id: bill.meta(0),
            partition: bill.meta(1),
            region: bill.meta(2),
            legacy_line: None,
            modern_line: None,
            detail: None,
        }
    }

    /// Customer totals drift that no bill shows: the bills of a customer that are each
    /// within a minor unit can still add up to a difference on the customer's invoice.
    fn customer_diffs(&self, tally: &mut Tally) -> Vec<Diff> {
        let mut out = Vec::new();
        for ((customer, currency), acc) in tally.customers_sorted() {
            let unflagged_delta = acc.unflagged_modern - acc.unflagged_legacy;
            if unflagged_delta.abs() < self.config.tolerances.total.in_currency(currency) {
                continue;
            }
            let diff = Diff {
                account_id: None,
                class: DiffClass::TotalMismatch,
                scope: Scope::Customer,
                charge_code: None,
                key: BTreeMap::new(),
                // What the evidence shows adds up to the delta exactly: the customer's bills
                // that no total_mismatch already reports.
                legacy: Some(Evidence::of_total(acc.unflagged_legacy, currency)),
                modern: Some(Evidence::of_total(acc.unflagged_modern, currency)),
                delta: Some(currency.present(unflagged_delta)),
                currency: Some(currency),
                fields: vec!["total".into()],
                waiver: None,
                customer_id: Some(customer),
                partition: None,
                region: None,
                legacy_line: None,
                modern_line: None,
                detail: (acc.unflagged_legacy != acc.legacy || acc.unflagged_modern != acc.modern)
                    .then(|| {
                        format!(
                            "the customer's bills not reported as total_mismatch; all its bills: legacy {}, modern {}",
                            currency.present(acc.legacy),
                            currency.present(acc.modern)
                        )
                    }),
            };
            out.push(self.waive(diff, tally));
        }
        tally.customers_mismatched = out.len() as u64;
        out
    }

    /// Marks the diff with the first live waiver that covers it; counts the expired ones
    /// that would have.
    fn waive(&self, mut diff: Diff, tally: &mut Tally) -> Diff {
        tally.count_diff(&diff);
        if diff.class.is_informational() {
            return diff;
        }
        for (i, waiver) in self.config.waivers.iter().enumerate() {
            if !waiver_covers(waiver, &diff) {
                continue;
            }
            if waiver.is_expired(self.config.today) {
                tally.waiver_expired_hits[i] += 1;
                continue;
            }
            tally.waiver_hits[i] += 1;
            tally.waived += 1;
            diff.waiver = Some(waiver.id.clone());
            return diff;
        }
        tally.diffs_failing += 1;
        diff
    }
}

/// One line's customer, side, bill and amount, for the account's customer checks.
struct CustomerLine<'s> {
    customer: &'s str,
    /// Index into the account's bills.
    bill: usize,
    is_legacy: bool,
    amount: Decimal,
}

/// Each side's lines counted to that side's own customer: an account that moved from one
/// customer to another changes both customers' totals.
fn add_customer_totals(
    bills: &[BillTotal<'_>],
    flagged: &[bool],
    customers: &[CustomerLine<'_>],
    tally: &mut Tally,
) {
    // (customer, currency, legacy?, flagged) → amount; an account has few of them.
    let mut sums: Vec<(&str, Currency, bool, bool, Decimal)> = Vec::new();
    for c in customers {
        let (currency, bill_flagged) = (bills[c.bill].currency, flagged[c.bill]);
        match sums.iter_mut().find(|s| {
            s.0 == c.customer && s.1 == currency && s.2 == c.is_legacy && s.3 == bill_flagged
        }) {
            Some(s) => s.4 += c.amount,
            None => sums.push((c.customer, currency, c.is_legacy, bill_flagged, c.amount)),
        }
    }
    for (customer, currency, is_legacy, bill_flagged, amount) in sums {
        tally.add_customer_amount(customer, currency, is_legacy, bill_flagged, amount);
    }
}

/// The account's customers on each side (ids on its lines), when the two sides differ.
fn customer_changed(account_id: &str, customers: &[CustomerLine<'_>]) -> Option<Diff> {
    let side = |is_legacy: bool| customers.iter().filter(move |c| c.is_legacy == is_legacy);
    // The usual case: one customer per side.
    let only = |is_legacy: bool| {
        let first = side(is_legacy).next().map(|c| c.customer);
        side(is_legacy)
            .all(|c| Some(c.customer) == first)
            .then_some(first)
    };
    if let (Some(l), Some(m)) = (only(true), only(false))
        && l == m
    {
        return None;
    }
    let ids = |is_legacy: bool| {
        let mut ids: Vec<&str> = side(is_legacy).map(|c| c.customer).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (l, m) = (ids(true), ids(false));
    if l == m {
        return None;
    }
    let evidence = |ids: &[&str]| Evidence {
        fields: BTreeMap::from([("customer_id".to_owned(), ids.join(", "))]),
        attributes: BTreeMap::new(),
    };
    Some(Diff {
        account_id: Some(account_id.to_owned()),
        class: DiffClass::CustomerChanged,
        scope: Scope::Account,
        charge_code: None,
        key: BTreeMap::new(),
        legacy: Some(evidence(&l)),
        modern: Some(evidence(&m)),
        delta: None,
        currency: None,
        fields: vec!["customer_id".into()],
        waiver: None,
        customer_id: None,
        partition: None,
        region: None,
        legacy_line: None,
        modern_line: None,
        detail: None,
    })
}

#[derive(Default)]
struct Scratch {
    legacy: Vec<Keyed>,
    modern: Vec<Keyed>,
    group_l: Vec<u32>,
    group_m: Vec<u32>,
    pairs: Vec<Pairing>,
}

/// The index of the line's bill (period and currency) among the account's bills.
fn bill_of<'s>(bills: &mut Vec<BillTotal<'s>>, line: &Line<'s>, is_legacy: bool) -> usize {
    let (start, end, currency) = (
        line.get(Field::PeriodStart),
        line.get(Field::PeriodEnd),
        line.currency(),
    );
    let found = bills
        .iter()
        .position(|b| b.period_start == start && b.period_end == end && b.currency == currency);
    let index = found.unwrap_or_else(|| {
        bills.push(BillTotal {
            period_start: start,
            period_end: end,
            currency,
            legacy: Decimal::ZERO,
            modern: Decimal::ZERO,
            legacy_meta: None,
            modern_meta: None,
        });
        bills.len() - 1
    });
    let bill = &mut bills[index];
    let meta = if is_legacy {
        &mut bill.legacy_meta
    } else {
        &mut bill.modern_meta
    };
    meta.get_or_insert_with(|| {
        [
            line.get(Field::CustomerId),
            line.get(Field::Partition),
            line.get(Field::Region),
        ]
    });
    index
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A line with the hash of its match key, so that sorting and merging compare one integer
/// first and the key's text only when hashes tie.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    hash: u64,
    amount: Decimal,
    line: u32,
}

fn key_hashes(key: &[KeyField], store: &LineStore) -> Vec<u64> {
    store.lines().map(|line| key_hash(key, &line)).collect()
}

fn key_hash(key: &[KeyField], line: &Line<'_>) -> u64 {
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
fn key_order(
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
fn keyed_lines(
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

fn group_end(key: &[KeyField], store: &LineStore, lines: &[Keyed], start: usize) -> usize {
    let first = &lines[start];
    let mut end = start + 1;
    while end < lines.len() && key_order(key, store, first, store, &lines[end]) == Ordering::Equal {
        end += 1;
    }
    end
}

/// Numeric equality of two validated decimal texts; bytes first, parse only if they differ.
fn decimal_text_eq(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (
        crate::money::parse_decimal(a),
        crate::money::parse_decimal(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn attribute_differences(
    a: &Line<'_>,
    b: &Line<'_>,
    ignored: &crate::config::Ignored,
    fields: &mut Vec<String>,
) {
    let left: BTreeMap<&str, &str> = a.attributes().collect();
    let right: BTreeMap<&str, &str> = b.attributes().collect();
    let names: std::collections::BTreeSet<&str> =
        left.keys().chain(right.keys()).copied().collect();
    for name in names {
        if left.get(name) != right.get(name) && !ignored.attribute(name) {
            fields.push(format!("attributes.{name}"));
        }
    }
}

fn waiver_covers(waiver: &crate::config::Waiver, diff: &Diff) -> bool {
    let glob_ok = |pattern: &Option<glob::Pattern>, value: &Option<String>| match pattern {
        None => true,
        Some(p) => value.as_deref().is_some_and(|v| p.matches(v)),
    };
    let eq_ok = |want: &Option<String>, value: &Option<String>| want.is_none() || want == value;
    waiver.class.is_none_or(|c| c == diff.class)
        && glob_ok(&waiver.charge_code, &diff.charge_code)
        && glob_ok(&waiver.account_id, &diff.account_id)
        && eq_ok(&waiver.partition, &diff.partition)
        && eq_ok(&waiver.region, &diff.region)
        && waiver
            .delta_abs_max
            .is_none_or(|max| diff.delta.is_some_and(|d| d.abs() <= max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_stable() {
        for class in DiffClass::ALL {
            assert_eq!(DiffClass::from_name(class.as_str()), Some(class));
            assert_eq!(
                class.index(),
                DiffClass::ALL.iter().position(|c| *c == class).unwrap()
            );
        }
    }
}
