//! The diff engine: pairs the two sides' lines account by account, classifies every
//! difference, checks bill and customer totals, applies waivers and tallies a summary.
//!
//! It never fails on data: a mismatch is a value, not an `Err`. It never drops a
//! difference either: what passes the tolerance is still recorded as informational.

mod accounts;
mod bills;
mod keys;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rust_decimal::Decimal;

use accounts::AccountIndex;
use bills::{
    BillTotal, CustomerLine, add_customer_totals, agreed, bill_of, customer_changed, non_empty,
    totals_diff,
};
use keys::{Keyed, group_end, key_hashes, key_order, keyed_lines};

use crate::config::{CompareConfig, KeyField};
use crate::difference::{Diff, DiffClass, Evidence, Fields, Scope};
use crate::model::{Field, Line, LineStore};
use crate::money::Currency;
use crate::pairing::{Pairing, pair_group};
use crate::summary::{CustomerTotals, Summary, Tally};

/// The result of comparing two sides.
#[derive(Debug, Clone)]
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
    compare_inner(legacy, modern, config, threads, false).0
}

/// Each customer's totals in one currency, as one comparison added them up.
pub type CustomerPart = ((String, Currency), CustomerTotals);

/// Compares some of a customer's accounts (a shadow run's batch), leaving the customers'
/// totals to be compared once all their accounts are in: the comparison has no customer
/// diffs and counts no customer, and each customer's totals in this comparison are returned
/// instead (whatever `config.customer_totals` says), sorted, to be added up across
/// comparisons (`CustomerTotals::add`) and judged by `customer_total_diff`. Adding the
/// parts of every account gives what `compare` of all of them at once would compare.
pub fn compare_deferring_customers(
    legacy: &LineStore,
    modern: &LineStore,
    config: &CompareConfig,
) -> (Comparison, Vec<CustomerPart>) {
    compare_inner(legacy, modern, config, 1, true)
}

/// A customer's totals in one currency judged as `compare` judges them: a `total_mismatch`
/// diff of scope customer when the bills of the customer that no `total_mismatch` already
/// reports differ by the total tolerance or more, with the first live waiver covering it.
pub fn customer_total_diff(
    customer: &str,
    currency: Currency,
    totals: &CustomerTotals,
    config: &CompareConfig,
) -> Option<Diff> {
    let diff = customer_diff(customer, currency, totals, config)?;
    Some(apply_waiver(config, diff).0)
}

fn compare_inner(
    legacy: &LineStore,
    modern: &LineStore,
    config: &CompareConfig,
    threads: usize,
    defer_customers: bool,
) -> (Comparison, Vec<CustomerPart>) {
    let collect_customers = config.customer_totals || defer_customers;
    let (mut diffs, mut tally) = compare_part(legacy, modern, config, threads, collect_customers);
    let customers = if defer_customers {
        tally.take_customers()
    } else {
        diffs.extend(customer_diffs(config, &mut tally));
        Vec::new()
    };
    let summary = tally.finish(config);
    debug_assert_eq!(
        summary.diffs_failing,
        diffs.iter().filter(|d| d.is_failing()).count() as u64
    );
    (Comparison { summary, diffs }, customers)
}

/// Compares two sides' accounts: their diffs, accounts in name order, and the tally (the
/// customers' totals in it when `collect_customers`), the customers not yet judged.
pub(crate) fn compare_part(
    legacy: &LineStore,
    modern: &LineStore,
    config: &CompareConfig,
    threads: usize,
    collect_customers: bool,
) -> (Vec<Diff>, Tally) {
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
        collect_customers,
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
    (diffs, tally)
}

/// Customer totals drift that no bill shows: the bills of a customer that are each within a
/// minor unit can still add up to a difference on the customer's invoice.
pub(crate) fn customer_diffs(config: &CompareConfig, tally: &mut Tally) -> Vec<Diff> {
    let mut out = Vec::new();
    for ((customer, currency), acc) in tally.customers_sorted() {
        if let Some(diff) = customer_diff(&customer, currency, &acc, config) {
            out.push(waive(config, diff, tally));
        }
    }
    tally.customers_mismatched = out.len() as u64;
    out
}

/// Marks the diff with the first live waiver that covers it; counts the expired ones that
/// would have.
fn waive(config: &CompareConfig, diff: Diff, tally: &mut Tally) -> Diff {
    tally.count_diff(&diff);
    let (diff, waived) = apply_waiver(config, diff);
    for i in waived.expired {
        tally.waiver_expired_hits[i] += 1;
    }
    match waived.by {
        Some(i) => {
            tally.waiver_hits[i] += 1;
            tally.waived += 1;
        }
        None if !diff.class.is_informational() => tally.diffs_failing += 1,
        None => {}
    }
    diff
}

struct Engine<'s> {
    legacy: &'s LineStore,
    modern: &'s LineStore,
    /// The match key's hash of every line, per side.
    legacy_hashes: Vec<u64>,
    modern_hashes: Vec<u64>,
    config: &'s CompareConfig,
    /// Each line's amount is added to its customer's totals (`config.customer_totals`, or
    /// the totals are wanted for later).
    collect_customers: bool,
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

    /// Compares one account: its lines key group by key group, then its bill totals, its
    /// customer and its invoice totals.
    fn compare_account(
        &self,
        legacy_ids: &[u32],
        modern_ids: &[u32],
        scratch: &mut Scratch,
        diffs: &mut Vec<Diff>,
        tally: &mut Tally,
    ) {
        let key = &self.config.key;
        keyed_lines(
            key,
            self.legacy,
            &self.legacy_hashes,
            legacy_ids,
            &mut scratch.legacy,
        );
        keyed_lines(
            key,
            self.modern,
            &self.modern_hashes,
            modern_ids,
            &mut scratch.modern,
        );
        let (bills, customers) = self.bill_totals(scratch);

        let first_diff = diffs.len();
        self.compare_key_groups(scratch, diffs, tally);
        sort_in_key_order(&mut diffs[first_diff..]);

        let account_id = self.account_id(legacy_ids, modern_ids);
        let flagged_bills = self.compare_bill_totals(account_id, &bills, diffs, tally);
        if self.collect_customers {
            add_customer_totals(&bills, &flagged_bills, &customers, tally);
        }
        if !legacy_ids.is_empty() && !modern_ids.is_empty() && !self.config.ignored.customer_id {
            if let Some(diff) = customer_changed(account_id, &customers) {
                diffs.push(self.waive(diff, tally));
            }
        }
        self.invoice_totals(account_id, &scratch.legacy, &scratch.modern, diffs, tally);
    }

    /// Each side's total per bill (period and currency), and each line's customer, read
    /// while its amount is: lines are scattered in memory, so each is visited once here.
    fn bill_totals(&self, scratch: &Scratch) -> (Vec<BillTotal<'s>>, Vec<CustomerLine<'s>>) {
        let mut bills: Vec<BillTotal<'s>> = Vec::new();
        let mut customers: Vec<CustomerLine<'s>> = Vec::new();
        for (store, lines, is_legacy) in [
            (self.legacy, &scratch.legacy, true),
            (self.modern, &scratch.modern, false),
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
        (bills, customers)
    }

    /// Merges the two sides' keyed lines key group by key group; pairs each group and
    /// compares each pair.
    fn compare_key_groups(&self, scratch: &mut Scratch, diffs: &mut Vec<Diff>, tally: &mut Tally) {
        let key = &self.config.key;
        let (legacy, modern) = (self.legacy, self.modern);
        let Scratch {
            legacy: l,
            modern: m,
            group_l,
            group_m,
            pairs,
        } = scratch;
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
            group_l.clear();
            group_l.extend(l[li..l_end].iter().map(|k| k.line));
            group_m.clear();
            group_m.extend(m[mi..m_end].iter().map(|k| k.line));
            pair_group(
                legacy,
                group_l,
                modern,
                group_m,
                &self.config.ignored,
                pairs,
            );
            self.compare_pairings(pairs, diffs, tally);
            (li, mi) = (l_end, m_end);
        }
    }

    /// Classifies each pairing of one key group: a pair compared, a line missing on a side.
    fn compare_pairings(&self, pairs: &[Pairing], diffs: &mut Vec<Diff>, tally: &mut Tally) {
        let (legacy, modern) = (self.legacy, self.modern);
        for pairing in pairs {
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
    }

    /// The account's id, from its first line on either side.
    fn account_id(&self, legacy_ids: &[u32], modern_ids: &[u32]) -> &'s str {
        legacy_ids
            .first()
            .map(|&i| self.legacy.line(i as usize))
            .or_else(|| modern_ids.first().map(|&i| self.modern.line(i as usize)))
            .map(|line| line.get(Field::AccountId))
            .unwrap_or_default()
    }

    /// Adds each bill to the currency totals and flags a bill whose totals differ by the
    /// total tolerance or more; returns which bills were flagged, in `bills`' order.
    fn compare_bill_totals(
        &self,
        account_id: &str,
        bills: &[BillTotal<'s>],
        diffs: &mut Vec<Diff>,
        tally: &mut Tally,
    ) -> Vec<bool> {
        let mut flagged_bills = Vec::with_capacity(bills.len());
        for bill in bills {
            tally.add_currency_totals(bill.currency, bill.legacy, bill.modern);
            let delta = bill.modern - bill.legacy;
            let flagged = delta.abs() >= self.config.tolerances.total.in_currency(bill.currency);
            flagged_bills.push(flagged);
            if flagged {
                let diff = self.total_mismatch(account_id, bill);
                diffs.push(self.waive(diff, tally));
            }
        }
        flagged_bills
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
                key: Fields::from([("invoice_id", id)]),
                ..totals_diff(Scope::Invoice, currency, l_total, m_total)
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
            charge_code: non_empty(line.get(Field::ChargeCode)),
            key,
            legacy: Some(Evidence::of_line(line)),
            currency: Some(line.currency()),
            customer_id: non_empty(line.get(Field::CustomerId)),
            partition: non_empty(line.get(Field::Partition)),
            region: non_empty(line.get(Field::Region)),
            legacy_line: Some(line.source_line()),
            ..Diff::new(class, Scope::Line)
        }
    }

    fn total_mismatch(&self, account_id: &str, bill: &BillTotal<'_>) -> Diff {
        Diff {
            account_id: Some(account_id.to_owned()),
            key: Fields::from([
                ("period_start", bill.period_start),
                ("period_end", bill.period_end),
            ]),
            customer_id: bill.meta(0),
            partition: bill.meta(1),
            region: bill.meta(2),
            ..totals_diff(Scope::Bill, bill.currency, bill.legacy, bill.modern)
        }
    }

    fn waive(&self, diff: Diff, tally: &mut Tally) -> Diff {
        waive(self.config, diff, tally)
    }
}

/// Which waiver covered a diff (its index), and the expired ones that would have.
#[derive(Default)]
struct Waived {
    by: Option<usize>,
    expired: Vec<usize>,
}

/// Marks the diff with the first live waiver that covers it (informational diffs are never
/// waived).
fn apply_waiver(config: &CompareConfig, mut diff: Diff) -> (Diff, Waived) {
    let mut waived = Waived::default();
    if diff.class.is_informational() {
        return (diff, waived);
    }
    for (i, waiver) in config.waivers.iter().enumerate() {
        if !waiver_covers(waiver, &diff) {
            continue;
        }
        if waiver.is_expired(config.today) {
            waived.expired.push(i);
            continue;
        }
        waived.by = Some(i);
        diff.waiver = Some(waiver.id.clone());
        return (diff, waived);
    }
    (diff, waived)
}

/// Customer totals drift that no bill shows: the bills of a customer that are each within a
/// minor unit can still add up to a difference on the customer's invoice. Not yet waived.
fn customer_diff(
    customer: &str,
    currency: Currency,
    acc: &CustomerTotals,
    config: &CompareConfig,
) -> Option<Diff> {
    let unflagged_delta = acc.unflagged_modern - acc.unflagged_legacy;
    if unflagged_delta.abs() < config.tolerances.total.in_currency(currency) {
        return None;
    }
    Some(Diff {
        customer_id: Some(customer.to_owned()),
        detail: (acc.unflagged_legacy != acc.legacy || acc.unflagged_modern != acc.modern).then(
            || {
                format!(
                    "the customer's bills not reported as total_mismatch; all its bills: legacy {}, modern {}",
                    currency.present(acc.legacy),
                    currency.present(acc.modern)
                )
            },
        ),
        // What the evidence shows adds up to the delta exactly: the customer's bills that no
        // total_mismatch already reports.
        ..totals_diff(
            Scope::Customer,
            currency,
            acc.unflagged_legacy,
            acc.unflagged_modern,
        )
    })
}

/// Key groups are visited in hash order; a reader wants an account's diffs in key order.
fn sort_in_key_order(diffs: &mut [Diff]) {
    diffs.sort_by(|a, b| {
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
}

#[derive(Default)]
struct Scratch {
    legacy: Vec<Keyed>,
    modern: Vec<Keyed>,
    group_l: Vec<u32>,
    group_m: Vec<u32>,
    pairs: Vec<Pairing>,
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
    // A waiver by signature waits for the signatures (`signature::waive_by_signature`).
    waiver.signature.is_none() && waiver_matches(waiver, diff)
}

/// Whether a waiver's filters other than its signature match a diff.
pub(crate) fn waiver_matches(waiver: &crate::config::Waiver, diff: &Diff) -> bool {
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
