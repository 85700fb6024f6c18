//! `generate pair --defects`: systematic defects, each one rule the modern side gets wrong,
//! injected into many accounts, with one-off noise (the classes of a plain `generate pair`)
//! on other accounts, deterministic by seed.
//!
//! The answer file is the generator's own account of what it did: per defect its
//! parameters, the rule a correct diagnosis names (`expected.rule`, in the vocabulary of a
//! signature's `rule`, and words its hypothesis must hold), and every line it changed. The
//! changed lines are found by comparing each account's legacy and modern lines here, field
//! by field, never by the diff engine, so the two check each other.

use std::collections::BTreeMap;

use anyhow::Context;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use super::{CLASSES, GenLine, account_lines, inject, minor, write_csvs};
use crate::args::{DefectKind, PairArgs};
use crate::exit::{Code, Outcome, input};

/// Every kind, in the order the answer file lists them.
const KINDS: [DefectKind; 10] = [
    DefectKind::RoundingMode,
    DefectKind::Decimals,
    DefectKind::PriceRatio,
    DefectKind::TaxRate,
    DefectKind::Proration,
    DefectKind::FeeOffset,
    DefectKind::SignFlip,
    DefectKind::MissingSku,
    DefectKind::PeriodEndShift,
    DefectKind::RegionRename,
];

/// The VAT rate both sides bill, but for the tax-rate defect's modern side.
const VAT: Decimal = Decimal::from_parts(20, 0, 0, false, 2);
const MODERN_VAT: Decimal = Decimal::from_parts(21, 0, 0, false, 2);
/// The price-ratio defect: modern's unit price of the SKU is legacy's × 23/20.
const PRICE_RATIO: (u32, u32) = (23, 20);
const PRICE_SKU: &str = "compute.hours";
/// The fee-offset defect: modern's JPY platform fee is this much higher.
const FEE_OFFSET: i64 = 300;
/// Proration: legacy divides a part month by 31 days, modern by 30.
const LEGACY_MONTH: u32 = 31;
const MODERN_MONTH: u32 = 30;
const RENAMED_FROM: &str = "eu-west-1";
const RENAMED_TO: &str = "eu-west";
const SHIFTED_END: &str = "2026-11-01";

fn name(kind: DefectKind) -> &'static str {
    match kind {
        DefectKind::All => "all",
        DefectKind::RoundingMode => "rounding_mode",
        DefectKind::Decimals => "decimals",
        DefectKind::PriceRatio => "price_ratio",
        DefectKind::TaxRate => "tax_rate",
        DefectKind::Proration => "proration",
        DefectKind::FeeOffset => "fee_offset",
        DefectKind::SignFlip => "sign_flip",
        DefectKind::MissingSku => "missing_sku",
        DefectKind::PeriodEndShift => "period_end_shift",
        DefectKind::RegionRename => "region_rename",
    }
}

/// The one currency a defect is confined to, if any (a rounding rule or a price book is
/// per currency).
fn currency_of(kind: DefectKind) -> Option<&'static str> {
    match kind {
        DefectKind::RoundingMode => Some("USD"),
        DefectKind::Decimals => Some("BHD"),
        DefectKind::PriceRatio => Some("GBP"),
        DefectKind::TaxRate => Some("EUR"),
        DefectKind::FeeOffset => Some("JPY"),
        _ => None,
    }
}

fn applies_to(kind: DefectKind, line: &GenLine) -> bool {
    match kind {
        DefectKind::RegionRename => line.region == RENAMED_FROM,
        _ => currency_of(kind).is_none_or(|c| c == line.currency),
    }
}

/// Weight of a kind among an account's candidates: a kind confined to a small currency
/// weighs more, so each defect reaches a comparable number of accounts.
fn weight(kind: DefectKind) -> u32 {
    match currency_of(kind) {
        Some("USD") | None => 1,
        Some(_) => 4,
    }
}

/// One line as the answer file names it: what identifies it in a diff's evidence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct LineRef {
    account_id: String,
    charge_code: String,
    line_type: &'static str,
    usage_start: Option<String>,
}

fn line_ref(line: &GenLine) -> LineRef {
    LineRef {
        account_id: line.account.clone(),
        charge_code: line.charge_code.clone(),
        line_type: line.line_type,
        usage_start: line.usage_day.map(|d| format!("2026-10-{d:02}")),
    }
}

/// What a correct diagnosis of a defect names.
#[derive(Debug, Serialize)]
struct ExpectedRule {
    /// A signature's `shape`.
    shape: &'static str,
    /// A signature's `rule`: the shape with its values.
    rule: String,
    /// Words the signature's hypothesis holds (the rule and its value in plain language).
    hypothesis_contains: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DefectAnswer {
    kind: &'static str,
    parameters: BTreeMap<&'static str, String>,
    expected: ExpectedRule,
    accounts: u64,
    /// Lines changed (a line missing or renamed counts once, by its legacy identity).
    lines_changed: u64,
    lines: Vec<LineRef>,
}

#[derive(Debug, Serialize)]
struct Noise {
    account_id: String,
    class: &'static str,
}

#[derive(Serialize)]
struct DefectAnswers {
    schema: &'static str,
    seed: u64,
    accounts: u32,
    lines_legacy: usize,
    lines_modern: usize,
    defects: Vec<DefectAnswer>,
    /// One-off differences on accounts without a defect.
    noise: Vec<Noise>,
}

fn ratio_text(n: u32, d: u32) -> String {
    format!("{n}/{d}")
}

/// A defect's parameters from `(name, value)` pairs.
fn parameters(pairs: &[(&'static str, &str)]) -> BTreeMap<&'static str, String> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// What the defect's signature must say: its shape, rule, and words of its hypothesis.
fn expected_rule(shape: &'static str, rule: String, words: &[&str]) -> ExpectedRule {
    ExpectedRule {
        shape,
        rule,
        hypothesis_contains: words.iter().map(|w| (*w).to_owned()).collect(),
    }
}

fn parameters_of(kind: DefectKind) -> (BTreeMap<&'static str, String>, ExpectedRule) {
    let (p, rule) = (parameters, expected_rule);
    match kind {
        DefectKind::RoundingMode => (
            p(&[
                ("currency", "USD"),
                ("legacy", "half_up"),
                ("modern", "half_even"),
                ("decimals", "2"),
            ]),
            rule(
                "rounding_mode",
                "rounding_mode:2:half_up:half_even".into(),
                &["USD", "half even instead of half up", "2 decimals"],
            ),
        ),
        DefectKind::Decimals => (
            p(&[
                ("currency", "BHD"),
                ("legacy_decimals", "3"),
                ("modern_decimals", "2"),
            ]),
            rule(
                "fewer_decimals",
                "fewer_decimals:modern:2".into(),
                &["BHD", "2 decimals instead of 3"],
            ),
        ),
        DefectKind::PriceRatio => {
            let (n, d) = PRICE_RATIO;
            let k = ratio_text(n, d);
            (
                p(&[
                    ("currency", "GBP"),
                    ("charge_code", PRICE_SKU),
                    ("ratio", &k),
                ]),
                rule(
                    "ratio",
                    format!("ratio:{k}"),
                    &["GBP", PRICE_SKU, &format!("× {k}")],
                ),
            )
        }
        DefectKind::TaxRate => {
            let (n, d) = reduced(MODERN_VAT, VAT);
            let k = ratio_text(n, d);
            (
                p(&[
                    ("currency", "EUR"),
                    ("legacy_rate", &VAT.to_string()),
                    ("modern_rate", &MODERN_VAT.to_string()),
                ]),
                rule(
                    "ratio",
                    format!("ratio:{k}"),
                    &["EUR", "tax.vat", &format!("× {k}")],
                ),
            )
        }
        DefectKind::Proration => {
            let (l, m) = (LEGACY_MONTH.to_string(), MODERN_MONTH.to_string());
            (
                p(&[
                    ("charge_code", "platform.fee"),
                    ("legacy_days", &l),
                    ("modern_days", &m),
                ]),
                rule(
                    "proration",
                    format!("proration:{l}:{m}"),
                    &[&format!("over {m} days instead of {l}"), "platform.fee"],
                ),
            )
        }
        _ => other_parameters(kind),
    }
}

/// `parameters_of` for the kinds that are not about amounts' arithmetic.
fn other_parameters(kind: DefectKind) -> (BTreeMap<&'static str, String>, ExpectedRule) {
    let (p, rule) = (parameters, expected_rule);
    match kind {
        DefectKind::FeeOffset => {
            let delta = FEE_OFFSET.to_string();
            (
                p(&[
                    ("currency", "JPY"),
                    ("charge_code", "platform.fee"),
                    ("offset", &delta),
                ]),
                rule(
                    "offset",
                    format!("offset:{delta}"),
                    &["JPY", "platform.fee", &format!("by +{delta} each")],
                ),
            )
        }
        DefectKind::SignFlip => (
            p(&[("charge_code", "promo.credit")]),
            rule(
                "sign_flip",
                "sign_flip".into(),
                &["promo.credit", "opposite sign"],
            ),
        ),
        DefectKind::MissingSku => (
            p(&[("charge_code", "egress.gb")]),
            rule(
                "missing",
                "missing:modern".into(),
                &["does not bill", "egress.gb"],
            ),
        ),
        DefectKind::PeriodEndShift => (
            p(&[
                ("legacy_period_end", super::PERIOD_END),
                ("modern_period_end", SHIFTED_END),
            ]),
            rule(
                "key_mismatch",
                "key_mismatch:period_end:+1 days".into(),
                &["period_end +1 days"],
            ),
        ),
        _ => (
            p(&[
                ("legacy_region", RENAMED_FROM),
                ("modern_region", RENAMED_TO),
            ]),
            rule(
                "key_mismatch",
                format!("key_mismatch:region:{RENAMED_FROM}→{RENAMED_TO}"),
                &[&format!("region differently ({RENAMED_FROM}→{RENAMED_TO})")],
            ),
        ),
    }
}

/// a / b as a fraction in lowest terms (both positive decimals).
fn reduced(a: Decimal, b: Decimal) -> (u32, u32) {
    let scale = a.scale().max(b.scale());
    let whole = |x: Decimal| {
        let mut x = x;
        x.rescale(scale);
        u32::try_from(x.mantissa()).unwrap_or(1)
    };
    let (n, d) = (whole(a), whole(b));
    let mut g = (n, d);
    while g.1 != 0 {
        g = (g.1, g.0 % g.1);
    }
    let g = g.0.max(1);
    (n / g, d / g)
}

/// How one side computes what it derives: usage amounts, tax, decimals.
#[derive(Clone, Copy)]
struct Rules {
    rounding: RoundingStrategy,
    /// Decimals every amount is rounded to; `None`: the currency's minor unit.
    decimals: Option<u32>,
    vat: Decimal,
}

const LEGACY_RULES: Rules = Rules {
    rounding: RoundingStrategy::MidpointAwayFromZero,
    decimals: None,
    vat: VAT,
};

impl Rules {
    fn round(self, value: Decimal, currency: &str) -> Decimal {
        let decimals = self.decimals.unwrap_or(minor(currency).scale());
        value.round_dp_with_strategy(decimals, self.rounding)
    }
}

pub(super) fn run(args: &PairArgs) -> Outcome {
    if args.defect_percent > 100 || args.defect_percent + args.inject_percent > 100 {
        return Err(crate::usage!(
            "--defect-percent and --inject-percent must add up to at most 100"
        )
        .into());
    }
    let mut kinds: Vec<DefectKind> = if args.defects.contains(&DefectKind::All) {
        KINDS.to_vec()
    } else {
        args.defects.clone()
    };
    kinds.sort();
    kinds.dedup();
    let generated = generate(args, &kinds);
    let mut rng = generated.rng.clone();
    write_csvs(&args.out, &generated.legacy, &generated.modern, &mut rng).map_err(input)?;
    let answers_path = args
        .answers
        .clone()
        .unwrap_or_else(|| args.out.join("answers.json"));
    let answers = DefectAnswers {
        schema: "billshadow.defects/v1",
        seed: args.seed,
        accounts: args.accounts,
        lines_legacy: generated.legacy.len(),
        lines_modern: generated.modern.len(),
        defects: generated.defects,
        noise: generated.noise,
    };
    let written = serde_json::to_vec_pretty(&answers)
        .context("cannot write the answer file")
        .and_then(|bytes| {
            std::fs::write(&answers_path, bytes)
                .with_context(|| format!("cannot write {}", answers_path.display()))
        });
    written.map_err(input)?;
    let changed: u64 = answers.defects.iter().map(|d| d.lines_changed).sum();
    crate::note!(
        "wrote {} legacy and {} modern lines to {}: {} defects changing {changed} lines, \
         noise on {} accounts; answers in {}",
        answers.lines_legacy,
        answers.lines_modern,
        args.out.display(),
        answers.defects.len(),
        answers.noise.len(),
        answers_path.display()
    );
    Ok(Code::Parity)
}

struct Generated {
    legacy: Vec<GenLine>,
    modern: Vec<GenLine>,
    defects: Vec<DefectAnswer>,
    noise: Vec<Noise>,
    rng: fastrand::Rng,
}

fn generate(args: &PairArgs, kinds: &[DefectKind]) -> Generated {
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let mut out = Generated {
        legacy: Vec::new(),
        modern: Vec::new(),
        defects: kinds
            .iter()
            .map(|&kind| {
                let (parameters, expected) = parameters_of(kind);
                DefectAnswer {
                    kind: name(kind),
                    parameters,
                    expected,
                    accounts: 0,
                    lines_changed: 0,
                    lines: Vec::new(),
                }
            })
            .collect(),
        noise: Vec::new(),
        rng: rng.clone(),
    };
    let mut next_class = 0usize;
    for i in 0..args.accounts {
        let mut lines = account_lines(i, args.lines_per_account, &mut rng);
        // The tax line is derived: each side computes its own below.
        lines.pop();
        let roll = rng.u32(0..100);
        let candidates: Vec<(usize, DefectKind)> = kinds
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, k)| applies_to(*k, &lines[0]))
            .collect();
        if roll < args.defect_percent && !candidates.is_empty() {
            let total: u32 = candidates.iter().map(|(_, k)| weight(*k)).sum();
            let mut pick = rng.u32(0..total);
            let (slot, kind) = candidates
                .iter()
                .copied()
                .find(|(_, k)| {
                    let w = weight(*k);
                    let hit = pick < w;
                    pick = pick.saturating_sub(w);
                    hit
                })
                .unwrap_or(candidates[0]);
            let (legacy, modern) = apply(kind, lines, &mut rng);
            let changed = changed_lines(&legacy, &modern);
            let answer = &mut out.defects[slot];
            answer.accounts += 1;
            answer.lines_changed += changed.len() as u64;
            answer.lines.extend(changed);
            out.legacy.extend(legacy);
            out.modern.extend(modern);
            continue;
        }
        let legacy = with_tax(lines, LEGACY_RULES);
        let mut modern = legacy.clone();
        if roll < args.defect_percent + args.inject_percent {
            let class = CLASSES[next_class % CLASSES.len()];
            next_class += 1;
            let mut ignored = Vec::new();
            inject(class, &legacy, &mut modern, &mut rng, &mut ignored);
            out.noise.push(Noise {
                account_id: legacy[0].account.clone(),
                class,
            });
        }
        out.legacy.extend(legacy);
        out.modern.extend(modern);
    }
    out.rng = rng;
    out
}

/// The lines with their tax line, computed by `rules` (none on a credit balance).
fn with_tax(mut lines: Vec<GenLine>, rules: Rules) -> Vec<GenLine> {
    let Some(first) = lines.first() else {
        return lines;
    };
    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    let mut tax = first.clone();
    tax.charge_code = "tax.vat".into();
    tax.line_type = "tax";
    tax.description = "VAT".into();
    tax.quantity = None;
    tax.unit = "";
    tax.unit_price = None;
    tax.usage_day = None;
    tax.duplicate = false;
    tax.amount = rules.round(subtotal.max(Decimal::ZERO) * rules.vat, first.currency);
    lines.push(tax);
    lines
}

fn is_usage(line: &GenLine) -> bool {
    line.usage_day.is_some() && !line.duplicate && line.quantity.is_some()
}

/// An account's legacy and modern lines under `kind`.
fn apply(
    kind: DefectKind,
    lines: Vec<GenLine>,
    rng: &mut fastrand::Rng,
) -> (Vec<GenLine>, Vec<GenLine>) {
    let mut legacy = lines;
    let mut modern_rules = LEGACY_RULES;
    match kind {
        DefectKind::RoundingMode => {
            modern_rules.rounding = RoundingStrategy::MidpointNearestEven;
            // Quantities of the storage lines that land on a half cent rounded the two
            // ways apart, so the rule shows on the account.
            for line in legacy
                .iter_mut()
                .filter(|l| is_usage(l) && l.charge_code == "storage.gb")
            {
                let price = line.unit_price.unwrap_or_default();
                for _ in 0..10_000 {
                    let q = Decimal::from(rng.u32(1..=5000));
                    let exact = q * price;
                    let up = LEGACY_RULES.round(exact, line.currency);
                    if up != modern_rules.round(exact, line.currency) {
                        line.quantity = Some(q);
                        line.amount = up;
                        break;
                    }
                }
            }
        }
        DefectKind::Decimals => modern_rules.decimals = Some(2),
        DefectKind::TaxRate => modern_rules.vat = MODERN_VAT,
        DefectKind::Proration => {
            // The account started on day 32 − days: a part month.
            let days = rng.u32(1..=MODERN_MONTH);
            if let Some(fee) = legacy.iter_mut().find(|l| l.charge_code == "platform.fee") {
                let full = fee.unit_price.unwrap_or(fee.amount);
                fee.amount = LEGACY_RULES.round(
                    full * Decimal::from(days) / Decimal::from(LEGACY_MONTH),
                    fee.currency,
                );
            }
            let mut modern: Vec<GenLine> = legacy.clone();
            if let Some(fee) = modern.iter_mut().find(|l| l.charge_code == "platform.fee") {
                let full = fee.unit_price.unwrap_or(fee.amount);
                fee.amount = LEGACY_RULES.round(
                    full * Decimal::from(days) / Decimal::from(MODERN_MONTH),
                    fee.currency,
                );
            }
            return (
                with_tax(legacy, LEGACY_RULES),
                with_tax(modern, LEGACY_RULES),
            );
        }
        _ => {}
    }
    let mut modern = legacy.clone();
    change_modern(kind, &mut modern, modern_rules);
    (
        with_tax(legacy, LEGACY_RULES),
        with_tax(modern, modern_rules),
    )
}

/// What `kind` changes on an account's modern lines (before its tax line).
fn change_modern(kind: DefectKind, modern: &mut Vec<GenLine>, modern_rules: Rules) {
    match kind {
        DefectKind::RoundingMode => {
            for line in modern.iter_mut().filter(|l| is_usage(l)) {
                let exact = line.quantity.unwrap_or_default() * line.unit_price.unwrap_or_default();
                line.amount = modern_rules.round(exact, line.currency);
            }
        }
        DefectKind::Decimals => {
            for line in modern.iter_mut() {
                let exact = match (line.quantity, line.unit_price) {
                    (Some(q), Some(p)) if is_usage(line) => q * p,
                    _ => line.amount,
                };
                line.amount = modern_rules.round(exact, line.currency);
            }
        }
        DefectKind::PriceRatio => {
            let (n, d) = PRICE_RATIO;
            for line in modern
                .iter_mut()
                .filter(|l| is_usage(l) && l.charge_code == PRICE_SKU)
            {
                let price =
                    line.unit_price.unwrap_or_default() * Decimal::from(n) / Decimal::from(d);
                line.unit_price = Some(price);
                line.amount =
                    modern_rules.round(line.quantity.unwrap_or_default() * price, line.currency);
            }
        }
        DefectKind::FeeOffset => {
            for line in modern
                .iter_mut()
                .filter(|l| l.charge_code == "platform.fee")
            {
                line.amount += Decimal::from(FEE_OFFSET);
                line.unit_price = Some(line.amount);
            }
        }
        DefectKind::SignFlip => {
            for line in modern
                .iter_mut()
                .filter(|l| l.charge_code == "promo.credit")
            {
                line.amount = -line.amount;
            }
        }
        DefectKind::MissingSku => modern.retain(|l| l.charge_code != "egress.gb"),
        DefectKind::PeriodEndShift => {
            for line in modern.iter_mut() {
                line.period_end = SHIFTED_END;
            }
        }
        DefectKind::RegionRename => {
            for line in modern.iter_mut() {
                line.region = RENAMED_TO;
            }
        }
        // Rules only (set by `apply`), or nothing on the lines.
        DefectKind::TaxRate | DefectKind::Proration | DefectKind::All => {}
    }
}

/// What a line bills, as compared here: every field a stack writes but the description.
fn billed(
    line: &GenLine,
) -> (
    String,
    &'static str,
    &'static str,
    Option<Decimal>,
    Option<Decimal>,
    Decimal,
    &'static str,
) {
    (
        line.customer.clone(),
        line.region,
        line.period_end,
        line.quantity,
        line.unit_price,
        line.amount,
        line.currency,
    )
}

/// The lines of one account that differ between the sides, by identity (charge code, line
/// type, usage day): each side's lines of an identity, in order, compared field by field.
fn changed_lines(legacy: &[GenLine], modern: &[GenLine]) -> Vec<LineRef> {
    type Billed = (
        String,
        &'static str,
        &'static str,
        Option<Decimal>,
        Option<Decimal>,
        Decimal,
        &'static str,
    );
    let mut sides: BTreeMap<LineRef, (Vec<Billed>, Vec<Billed>)> = BTreeMap::new();
    for l in legacy {
        sides.entry(line_ref(l)).or_default().0.push(billed(l));
    }
    for m in modern {
        sides.entry(line_ref(m)).or_default().1.push(billed(m));
    }
    sides
        .into_iter()
        .filter_map(|(r, (mut l, mut m))| {
            l.sort();
            m.sort();
            (l != m).then_some(r)
        })
        .collect()
}
