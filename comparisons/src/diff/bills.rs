//! An account's bills (period and currency) and customers while it is compared: each side's
//! totals per bill, and the customer checks (totals per customer, a customer changed).

use crate::difference::Fields;

use rust_decimal::Decimal;

use crate::difference::{Diff, DiffClass, Evidence, Scope};
use crate::model::{Field, Line};
use crate::money::Currency;
use crate::summary::Tally;

/// One bill's totals in one currency, while an account is compared.
pub(super) struct BillTotal<'s> {
    pub(super) period_start: &'s str,
    pub(super) period_end: &'s str,
    pub(super) currency: Currency,
    pub(super) legacy: Decimal,
    pub(super) modern: Decimal,
    /// Customer, partition and region each side's lines of the bill all share (empty where
    /// they differ).
    pub(super) legacy_meta: Option<[&'s str; 3]>,
    pub(super) modern_meta: Option<[&'s str; 3]>,
}

impl BillTotal<'_> {
    /// Customer, partition and region as both sides agree on them: a value one side gives
    /// and the other contradicts is no one's, so a waiver scoped to it does not apply.
    pub(super) fn meta(&self, i: usize) -> Option<String> {
        agreed(
            self.legacy_meta.map(|m| m[i]),
            self.modern_meta.map(|m| m[i]),
        )
    }
}

pub(super) fn agreed(legacy: Option<&str>, modern: Option<&str>) -> Option<String> {
    match (legacy, modern) {
        (Some(a), Some(b)) if a != b => None,
        (Some(a), _) | (None, Some(a)) => non_empty(a),
        (None, None) => None,
    }
}

/// One line's customer, side, bill and amount, for the account's customer checks.
pub(super) struct CustomerLine<'s> {
    pub(super) customer: &'s str,
    /// Index into the account's bills.
    pub(super) bill: usize,
    pub(super) is_legacy: bool,
    pub(super) amount: Decimal,
}

/// Each side's lines counted to that side's own customer: an account that moved from one
/// customer to another changes both customers' totals.
pub(super) fn add_customer_totals(
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
pub(super) fn customer_changed(account_id: &str, customers: &[CustomerLine<'_>]) -> Option<Diff> {
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
        fields: Fields::from([("customer_id", ids.join(", "))]),
        attributes: Fields::new(),
    };
    Some(Diff {
        account_id: Some(account_id.to_owned()),
        legacy: Some(evidence(&l)),
        modern: Some(evidence(&m)),
        fields: vec!["customer_id".into()],
        ..Diff::new(DiffClass::CustomerChanged, Scope::Account)
    })
}

/// A `total_mismatch` about `scope` (a bill, an invoice, a customer): both sides' totals in
/// one currency as evidence, the delta modern − legacy as the currency writes it.
pub(super) fn totals_diff(
    scope: Scope,
    currency: Currency,
    legacy: Decimal,
    modern: Decimal,
) -> Diff {
    Diff {
        legacy: Some(Evidence::of_total(legacy, currency)),
        modern: Some(Evidence::of_total(modern, currency)),
        delta: Some(currency.present(modern - legacy)),
        currency: Some(currency),
        fields: vec!["total".into()],
        ..Diff::new(DiffClass::TotalMismatch, scope)
    }
}

/// The index of the line's bill (period and currency) among the account's bills.
pub(super) fn bill_of<'s>(
    bills: &mut Vec<BillTotal<'s>>,
    line: &Line<'s>,
    is_legacy: bool,
) -> usize {
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
    let values = [
        line.get(Field::CustomerId),
        line.get(Field::Partition),
        line.get(Field::Region),
    ];
    match meta {
        None => *meta = Some(values),
        // A value the side's lines of the bill do not all share is none: which line came
        // first must not decide it.
        Some(seen) => {
            for (seen, value) in seen.iter_mut().zip(values) {
                if *seen != value {
                    *seen = "";
                }
            }
        }
    }
    index
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
