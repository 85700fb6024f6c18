//! `billshadow generate pair`: a legacy/modern canonical pair with known injected
//! differences of every class, and an answer file listing exactly the diffs a correct
//! comparison reports.
//!
//! The answers for bill and customer totals are computed here from the generated lines
//! with plain sums, independently of the diff engine, so the two check each other.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use billshadow_adapters::live::AccountRequest;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

use crate::args::PairArgs;
use crate::exit::{Code, Outcome, input};

mod defects;

const PERIOD_START: &str = "2026-10-01";
const PERIOD_END: &str = "2026-10-31";
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-northeast-1"];

/// One generated line item.
#[derive(Debug, Clone)]
struct GenLine {
    account: String,
    customer: String,
    partition: String,
    region: &'static str,
    period_end: &'static str,
    charge_code: String,
    line_type: &'static str,
    description: String,
    quantity: Option<Decimal>,
    unit: &'static str,
    unit_price: Option<Decimal>,
    amount: Decimal,
    currency: &'static str,
    usage_day: Option<u32>,
    /// A line that shares its match key with another (kept out of most injections).
    duplicate: bool,
}

/// One diff the comparison must report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Expected {
    pub(crate) account_id: Option<String>,
    pub(crate) customer_id: Option<String>,
    pub(crate) class: &'static str,
    pub(crate) charge_code: Option<String>,
    pub(crate) delta: Option<String>,
    /// `None` for a currency mismatch: the diff is in neither currency.
    pub(crate) currency: Option<String>,
}

#[derive(Serialize)]
struct Answers {
    seed: u64,
    accounts: u32,
    lines_legacy: usize,
    lines_modern: usize,
    injected: BTreeMap<&'static str, u64>,
    diffs: Vec<Expected>,
}

fn minor(currency: &str) -> Decimal {
    match currency {
        "JPY" => Decimal::ONE,
        "BHD" => Decimal::new(1, 3),
        _ => Decimal::new(1, 2),
    }
}

fn round(value: Decimal, currency: &str) -> Decimal {
    value.round_dp_with_strategy(
        minor(currency).scale(),
        RoundingStrategy::MidpointAwayFromZero,
    )
}

pub(crate) fn run_pair(args: PairArgs) -> Outcome {
    if args.accounts == 0 || args.lines_per_account == 0 {
        return Err(crate::usage!("--accounts and --lines-per-account must be at least 1").into());
    }
    if args.inject_percent > 100 {
        return Err(crate::usage!("--inject-percent must be between 0 and 100").into());
    }
    if !args.defects.is_empty() {
        return defects::run(&args);
    }
    if args.answers.is_some() {
        return Err(crate::usage!("--answers goes with --defects").into());
    }
    let summary = generate(&args).map_err(input)?;
    crate::note!(
        "wrote {} legacy and {} modern lines, {} expected diffs, to {}",
        summary.lines_legacy,
        summary.lines_modern,
        summary.diffs.len(),
        args.out.display()
    );
    Ok(Code::Parity)
}

/// Accounts generated, written and let go together: the modern side's lines are shuffled
/// within such a window, so a pair of any size is made in bounded memory (about 200 MB). A
/// multiple of three, so that a customer's accounts (three each) share a window.
const WINDOW_ACCOUNTS: u32 = 15_000;

/// What the generation carries from one window of accounts to the next.
struct Generator {
    rng: fastrand::Rng,
    lines_per_account: u32,
    inject_percent: u32,
    next_class: usize,
    drift_customers: u32,
    previous_injected: bool,
    expected: Vec<Expected>,
    injected: BTreeMap<&'static str, u64>,
}

fn currency_of_customer(c: u32) -> &'static str {
    match c % 40 {
        7 | 27 => "JPY",
        13 | 33 => "BHD",
        3 | 23 => "EUR",
        5 | 15 => "GBP",
        _ => "USD",
    }
}

/// Usage charge codes, their unit and their price per unit in USD.
const USAGE: [(&str, &str, &str); 3] = [
    ("compute.hours", "h", "0.0416"),
    ("storage.gb", "GB-mo", "0.023"),
    ("egress.gb", "GB", "0.09"),
];

/// Account `i`'s bill: `k` charge lines, on some accounts a duplicate key or an enterprise
/// commitment, and the tax on the lot.
fn account_lines(i: u32, k: u32, rng: &mut fastrand::Rng) -> Vec<GenLine> {
    let base = account_base(i);
    let fx = fx_rate(base.currency);
    let mut lines = Vec::new();
    for j in 0..k {
        lines.push(charge_line(&base, j, fx, rng));
    }
    if i % 25 == 11 {
        add_duplicate_key(&mut lines, fx);
    }
    if i % 200 == 17 {
        lines.push(enterprise_commitment(&base));
    }
    let tax = tax_line(&base, &lines);
    lines.push(tax);
    lines
}

/// What every line of account `i` shares: account, customer (three accounts each), cell
/// and the customer's currency.
fn account_base(i: u32) -> GenLine {
    let customer = i / 3;
    GenLine {
        account: format!("acct-{i:07}"),
        customer: format!("cust-{customer:06}"),
        partition: format!("p{}", i % 4),
        region: REGIONS[(i as usize / 4) % REGIONS.len()],
        period_end: PERIOD_END,
        charge_code: String::new(),
        line_type: "usage",
        description: String::new(),
        quantity: None,
        unit: "",
        unit_price: None,
        amount: Decimal::ZERO,
        currency: currency_of_customer(customer),
        usage_day: None,
        duplicate: false,
    }
}

/// Prices are set in USD and converted at a fixed rate.
fn fx_rate(currency: &str) -> Decimal {
    match currency {
        "JPY" => Decimal::from(150),
        "BHD" => Decimal::new(377, 3),
        _ => Decimal::ONE,
    }
}

/// The account's `j`th line, in rounds of six: a platform fee, a promotional credit, then
/// usage lines (one usage day per round).
fn charge_line(base: &GenLine, j: u32, fx: Decimal, rng: &mut fastrand::Rng) -> GenLine {
    let currency = base.currency;
    let mut line = base.clone();
    match j % 6 {
        0 => {
            line.charge_code = "platform.fee".into();
            line.line_type = "recurring";
            line.description = "Platform fee".into();
            line.quantity = Some(Decimal::ONE);
            line.amount = round(Decimal::from(49) * fx, currency);
            line.unit_price = Some(line.amount);
        }
        1 => {
            line.charge_code = "promo.credit".into();
            line.line_type = "credit";
            line.description = "Promotional credit".into();
            line.amount = -round(Decimal::from(rng.u32(1..=50)) * fx, currency);
        }
        _ => {
            let (code, unit, price) = USAGE[(j as usize) % USAGE.len()];
            let price: Decimal = price.parse().unwrap_or_default();
            let quantity = Decimal::from(rng.u32(1..=5000));
            line.charge_code = code.into();
            line.description = format!("{code} usage");
            line.unit = unit;
            line.quantity = Some(quantity);
            line.unit_price = Some(price * fx);
            line.amount = round(quantity * price * fx, currency);
            line.usage_day = Some(1 + j / 6);
        }
    }
    if j / 6 > 0 && line.usage_day.is_none() {
        // Recurring and credit lines repeat as distinct charge codes past the first round.
        line.charge_code = format!("{}.{}", line.charge_code, j / 6);
    }
    line
}

/// A second line with the first usage line's key, far apart in amount.
fn add_duplicate_key(lines: &mut Vec<GenLine>, fx: Decimal) {
    let Some(first) = lines.iter().position(|l| l.usage_day.is_some()) else {
        return;
    };
    let mut dup = lines[first].clone();
    dup.amount = round(
        dup.amount * Decimal::from(100) + Decimal::from(1000) * fx,
        dup.currency,
    );
    dup.quantity = None;
    dup.unit_price = None;
    dup.duplicate = true;
    lines[first].duplicate = true;
    lines.push(dup);
}

/// A line with an amount near the top of the allowed range (below 10^18 in minor units).
fn enterprise_commitment(base: &GenLine) -> GenLine {
    let mut big = base.clone();
    big.charge_code = "enterprise.commit".into();
    big.line_type = "fixed";
    big.description = "Enterprise commitment".into();
    big.amount = match base.currency {
        "JPY" => Decimal::from(123_456_789_012_345_i64),
        "BHD" => "123456789012345.678".parse().unwrap_or_default(),
        _ => "123456789012345.67".parse().unwrap_or_default(),
    };
    big
}

/// VAT at 20 % of the bill's subtotal (none on a credit balance).
fn tax_line(base: &GenLine, lines: &[GenLine]) -> GenLine {
    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    let mut tax = base.clone();
    tax.charge_code = "tax.vat".into();
    tax.line_type = "tax";
    tax.description = "VAT".into();
    tax.amount = round(
        subtotal.max(Decimal::ZERO) * Decimal::new(2, 1),
        base.currency,
    );
    tax
}

const CLASSES: [&str; 12] = [
    "missing_in_modern",
    "missing_in_legacy",
    "amount_mismatch",
    "quantity_mismatch",
    "unit_price_mismatch",
    "currency_mismatch",
    "sub_minor_unit",
    "hidden_total_drift",
    "description_changed",
    "big_amount_mismatch",
    "missing_duplicate",
    "credit_mismatch",
];

/// Generates the pair window by window, writing each window's lines before the next is
/// made, then the answers.
fn generate(args: &PairArgs) -> anyhow::Result<Answers> {
    let mut generator = Generator {
        rng: fastrand::Rng::with_seed(args.seed),
        lines_per_account: args.lines_per_account,
        inject_percent: args.inject_percent,
        next_class: 0,
        drift_customers: 0,
        previous_injected: false,
        expected: Vec::new(),
        injected: BTreeMap::new(),
    };
    let mut writer = PairWriter::create(&args.out, &mut generator.rng)?;
    let mut start = 0;
    while start < args.accounts {
        let end = args.accounts.min(start.saturating_add(WINDOW_ACCOUNTS));
        let (legacy, modern) = generator.window(start..end);
        // Every account of a customer is in this window, so its totals are complete.
        generator.expected.extend(expected_totals(&legacy, &modern));
        writer.write(&legacy, modern, &mut generator.rng)?;
        start = end;
    }
    let (lines_legacy, lines_modern) = (writer.lines_legacy, writer.lines_modern);
    writer.finish()?;
    generator.expected.sort();
    let answers = Answers {
        seed: args.seed,
        accounts: args.accounts,
        lines_legacy,
        lines_modern,
        injected: generator.injected,
        diffs: generator.expected,
    };
    let path = args.out.join("answers.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&answers)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(answers)
}

impl Generator {
    /// The legacy and modern lines of the accounts in `accounts`, in account order.
    fn window(&mut self, accounts: std::ops::Range<u32>) -> (Vec<GenLine>, Vec<GenLine>) {
        let (mut legacy_out, mut modern_out) = (Vec::new(), Vec::new());
        let rng = &mut self.rng;
        for i in accounts {
            let lines = account_lines(i, self.lines_per_account, rng);
            let mut modern = lines.clone();
            let customer = i / 3;
            let injected = rng.u32(0..100) < self.inject_percent;
            if injected {
                let class = CLASSES[self.next_class % CLASSES.len()];
                self.next_class += 1;
                inject(class, &lines, &mut modern, rng, &mut self.expected);
                *self.injected.entry(class).or_default() += 1;
            } else if i % 3 == 1
                && customer % 17 == 5
                && self.drift_customers < 50
                && !self.previous_injected
            {
                // Customer-level drift: this account and the previous one of its customer
                // (in this window: windows hold whole customers) each drift by 0.6 of a
                // minor unit (never a bill mismatch), together 1.2.
                self.drift_customers += 1;
                *self.injected.entry("customer_drift").or_default() += 1;
                add_sub_minor(&mut modern, Decimal::new(6, 1), &mut self.expected);
                let previous_account = format!("acct-{:07}", i - 1);
                if let Some(start) = modern_out.iter().position(|l: &GenLine| {
                    l.account == previous_account && l.usage_day.is_some() && !l.duplicate
                }) {
                    let mut single = vec![modern_out[start].clone()];
                    add_sub_minor(&mut single, Decimal::new(6, 1), &mut self.expected);
                    modern_out[start] = single.remove(0);
                }
            }
            legacy_out.extend(lines);
            modern_out.extend(modern);
            self.previous_injected = injected;
        }
        (legacy_out, modern_out)
    }
}

fn add_sub_minor(lines: &mut [GenLine], fraction: Decimal, expected: &mut Vec<Expected>) {
    if let Some(line) = lines
        .iter_mut()
        .find(|l| l.usage_day.is_some() && !l.duplicate)
    {
        let delta = minor(line.currency) * fraction;
        line.amount += delta;
        expected.push(expect(line, "sub_minor_unit", Some(delta)));
    }
}

fn expect(line: &GenLine, class: &'static str, delta: Option<Decimal>) -> Expected {
    Expected {
        account_id: Some(line.account.clone()),
        customer_id: None,
        class,
        charge_code: Some(line.charge_code.clone()),
        delta: delta.map(|d| d.normalize().to_string()),
        currency: Some(line.currency.to_owned()),
    }
}

fn pick(
    lines: &[GenLine],
    rng: &mut fastrand::Rng,
    want: impl Fn(&GenLine) -> bool,
) -> Option<usize> {
    let candidates: Vec<usize> = (0..lines.len()).filter(|&i| want(&lines[i])).collect();
    (!candidates.is_empty()).then(|| candidates[rng.usize(0..candidates.len())])
}

/// Lines most injections may touch: not one of a pair sharing a match key.
fn plain(line: &GenLine) -> bool {
    !line.duplicate
}

/// Makes the modern side differ from the legacy one by one difference of `class`, and
/// records what the comparison must report for it.
fn inject(
    class: &'static str,
    legacy: &[GenLine],
    modern: &mut Vec<GenLine>,
    rng: &mut fastrand::Rng,
    expected: &mut Vec<Expected>,
) {
    match class {
        "missing_in_modern" => {
            if let Some(i) = pick(modern, rng, plain) {
                let gone = modern.remove(i);
                expected.push(expect(&gone, class, Some(-gone.amount)));
            }
        }
        "missing_in_legacy" => add_adhoc_fee(&legacy[0], modern, rng, expected),
        "amount_mismatch" | "credit_mismatch" | "big_amount_mismatch" => {
            shift_amount(class, modern, rng, expected);
        }
        "quantity_mismatch" => {
            if let Some(i) = pick(modern, rng, |l| plain(l) && l.quantity.is_some()) {
                modern[i].quantity = modern[i].quantity.map(|q| q + Decimal::ONE);
                expected.push(expect(&modern[i], class, None));
            }
        }
        "unit_price_mismatch" => {
            if let Some(i) = pick(modern, rng, |l| plain(l) && l.unit_price.is_some()) {
                modern[i].unit_price = modern[i].unit_price.map(|p| p + Decimal::new(1, 3));
                expected.push(expect(&modern[i], class, None));
            }
        }
        "currency_mismatch" => switch_currency(modern, rng, expected),
        "sub_minor_unit" => {
            if let Some(i) = pick(modern, rng, plain) {
                let delta = minor(modern[i].currency) * Decimal::new(4, 1);
                modern[i].amount += delta;
                expected.push(expect(&modern[i], class, Some(delta)));
            }
        }
        "hidden_total_drift" => drift_three_lines(modern, expected),
        "description_changed" => {
            if let Some(i) = pick(modern, rng, plain) {
                modern[i].description = format!("{} (v2)", modern[i].description);
                expected.push(expect(&modern[i], class, None));
            }
        }
        "missing_duplicate" => drop_duplicate(modern, rng, expected),
        _ => {}
    }
}

/// A one-time fee only the modern side bills (a `missing_in_legacy`).
fn add_adhoc_fee(
    first: &GenLine,
    modern: &mut Vec<GenLine>,
    rng: &mut fastrand::Rng,
    expected: &mut Vec<Expected>,
) {
    let mut extra = first.clone();
    extra.charge_code = "adhoc.fee".into();
    extra.line_type = "one_time";
    extra.description = "Ad-hoc fee".into();
    extra.quantity = None;
    extra.unit_price = None;
    extra.usage_day = None;
    extra.amount = round(
        Decimal::from(rng.u32(1..=300)) * minor(extra.currency) * Decimal::from(100),
        extra.currency,
    );
    expected.push(expect(&extra, "missing_in_legacy", Some(extra.amount)));
    modern.push(extra);
}

/// One line's amount moved by 1 to 500 minor units either way: a credit line for
/// `credit_mismatch`, the enterprise commitment for `big_amount_mismatch` (any plain line
/// when the account has none). Every one is reported as an `amount_mismatch`.
fn shift_amount(
    class: &'static str,
    modern: &mut [GenLine],
    rng: &mut fastrand::Rng,
    expected: &mut Vec<Expected>,
) {
    let target = match class {
        "credit_mismatch" => pick(modern, rng, |l| l.line_type == "credit"),
        "big_amount_mismatch" => pick(modern, rng, |l| l.charge_code == "enterprise.commit"),
        _ => None,
    }
    .or_else(|| pick(modern, rng, plain));
    let Some(i) = target else {
        return;
    };
    let steps = Decimal::from(rng.u32(1..=500))
        * if rng.bool() {
            Decimal::ONE
        } else {
            Decimal::NEGATIVE_ONE
        };
    let delta = steps * minor(modern[i].currency);
    modern[i].amount += delta;
    expected.push(expect(&modern[i], "amount_mismatch", Some(delta)));
}

/// One line billed in another currency: the diff is in neither currency.
fn switch_currency(modern: &mut [GenLine], rng: &mut fastrand::Rng, expected: &mut Vec<Expected>) {
    let Some(i) = pick(modern, rng, plain) else {
        return;
    };
    modern[i].currency = if modern[i].currency == "USD" {
        "EUR"
    } else {
        "USD"
    };
    let mut e = expect(&modern[i], "currency_mismatch", None);
    e.currency = None;
    expected.push(e);
}

/// Three lines each 0.4 of a minor unit off: none a line mismatch, together a total one
/// (`hidden_total_drift`).
fn drift_three_lines(modern: &mut [GenLine], expected: &mut Vec<Expected>) {
    let mut changed = 0;
    for line in modern.iter_mut().filter(|l| plain(l)).take(3) {
        let delta = minor(line.currency) * Decimal::new(4, 1);
        line.amount += delta;
        expected.push(expect(line, "sub_minor_unit", Some(delta)));
        changed += 1;
    }
    debug_assert!(changed == 3 || modern.len() < 3);
}

/// One of a pair of lines sharing a key missing on the modern side (a plain line when the
/// account has no such pair).
fn drop_duplicate(
    modern: &mut Vec<GenLine>,
    rng: &mut fastrand::Rng,
    expected: &mut Vec<Expected>,
) {
    let dup = modern
        .iter()
        .rposition(|l| l.duplicate)
        .or_else(|| pick(modern, rng, plain));
    if let Some(i) = dup {
        let gone = modern.remove(i);
        expected.push(expect(&gone, "missing_in_modern", Some(-gone.amount)));
    }
}

/// Bill totals (per account and currency; one billing period) and customer totals, from
/// plain sums: a bill differing by a minor unit or more is a `total_mismatch`; a customer
/// whose bills that are not themselves mismatched add up to a minor unit or more is one too.
fn expected_totals(legacy: &[GenLine], modern: &[GenLine]) -> Vec<Expected> {
    let mut bills: BTreeMap<(String, &str), (Decimal, Decimal, String)> = BTreeMap::new();
    for l in legacy {
        bills
            .entry((l.account.clone(), l.currency))
            .or_insert((Decimal::ZERO, Decimal::ZERO, l.customer.clone()))
            .0 += l.amount;
    }
    for m in modern {
        bills
            .entry((m.account.clone(), m.currency))
            .or_insert((Decimal::ZERO, Decimal::ZERO, m.customer.clone()))
            .1 += m.amount;
    }
    let mut out = Vec::new();
    let mut customers: BTreeMap<(String, &str), Decimal> = BTreeMap::new();
    for ((account, currency), (l, m, customer)) in bills {
        let delta = m - l;
        if delta.abs() >= minor(currency) {
            out.push(Expected {
                account_id: Some(account),
                customer_id: None,
                class: "total_mismatch",
                charge_code: None,
                delta: Some(delta.normalize().to_string()),
                currency: Some(currency.to_owned()),
            });
        } else {
            *customers.entry((customer, currency)).or_default() += delta;
        }
    }
    for ((customer, currency), delta) in customers {
        if delta.abs() >= minor(currency) {
            out.push(Expected {
                account_id: None,
                customer_id: Some(customer),
                class: "total_mismatch",
                charge_code: None,
                delta: Some(delta.normalize().to_string()),
                currency: Some(currency.to_owned()),
            });
        }
    }
    out
}

/// The canonical CSV's columns as the generator writes them: a line's account fields (as a
/// cohort has them), then the line's own.
const COLUMNS: [&str; 15] = {
    let a = AccountRequest::FIELDS;
    [
        a[0],
        a[1],
        a[2],
        a[3],
        a[4],
        a[5],
        "charge_code",
        "line_type",
        "description",
        "quantity",
        "unit",
        "unit_price",
        "amount",
        "currency",
        "usage_start",
    ]
};

/// Spells a decimal in one of the ways the canonical format allows, all equal in value.
fn spell(value: Decimal, style: u32) -> String {
    let plain = value.to_string();
    match style {
        1 => {
            if plain.contains('.') {
                format!("{plain}0")
            } else {
                format!("{plain}.0")
            }
        }
        2 => format!("{}E-{}", value.mantissa(), value.scale()),
        3 => format!("{plain}E0"),
        4 => match plain.strip_prefix('-') {
            Some(rest) => format!("-00{rest}"),
            None => format!("00{plain}"),
        },
        _ => plain,
    }
}

fn row(line: &GenLine, columns: &[&str], style: u32) -> Vec<String> {
    let usage_start = line
        .usage_day
        .map(|d| format!("2026-10-{d:02}"))
        .unwrap_or_default();
    columns
        .iter()
        .map(|c| match *c {
            "account_id" => line.account.clone(),
            "customer_id" => line.customer.clone(),
            "partition" => line.partition.clone(),
            "region" => line.region.to_owned(),
            "period_start" => PERIOD_START.to_owned(),
            "period_end" => line.period_end.to_owned(),
            "charge_code" => line.charge_code.clone(),
            "line_type" => line.line_type.to_owned(),
            "description" => line.description.clone(),
            "quantity" => line.quantity.map(|q| spell(q, style)).unwrap_or_default(),
            "unit" => line.unit.to_owned(),
            "unit_price" => line.unit_price.map(|p| spell(p, style)).unwrap_or_default(),
            "amount" => spell(line.amount, style),
            "currency" => line.currency.to_owned(),
            "usage_start" => usage_start.clone(),
            _ => String::new(),
        })
        .collect()
}

/// Writes legacy.csv as generated and modern.csv with its columns in another order, every
/// line in another place and numbers spelled differently (none of which is a difference).
fn write_csvs(
    dir: &Path,
    legacy: &[GenLine],
    modern: &[GenLine],
    rng: &mut fastrand::Rng,
) -> anyhow::Result<()> {
    let mut writer = PairWriter::create(dir, rng)?;
    writer.write(legacy, modern.to_vec(), rng)?;
    writer.finish()
}

/// The two CSV files of a pair, written a window of accounts at a time.
struct PairWriter {
    legacy: csv::Writer<std::fs::File>,
    modern: csv::Writer<std::fs::File>,
    /// The modern file's column order.
    columns: Vec<&'static str>,
    paths: [std::path::PathBuf; 2],
    lines_legacy: usize,
    lines_modern: usize,
}

impl PairWriter {
    /// Creates both files with their headers; the modern file's columns in an order drawn
    /// from `rng`.
    fn create(dir: &Path, rng: &mut fastrand::Rng) -> anyhow::Result<PairWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let paths = [dir.join("legacy.csv"), dir.join("modern.csv")];
        let open = |path: &Path| {
            csv::Writer::from_path(path)
                .with_context(|| format!("cannot create {}", path.display()))
        };
        let mut columns = COLUMNS.to_vec();
        let mut legacy = open(&paths[0])?;
        legacy.write_record(COLUMNS)?;
        rng.shuffle(&mut columns);
        let mut modern = open(&paths[1])?;
        modern.write_record(&columns)?;
        Ok(PairWriter {
            legacy,
            modern,
            columns,
            paths,
            lines_legacy: 0,
            lines_modern: 0,
        })
    }

    /// Writes a window's lines: legacy's as they are, modern's shuffled and spelled
    /// differently.
    fn write(
        &mut self,
        legacy: &[GenLine],
        mut modern: Vec<GenLine>,
        rng: &mut fastrand::Rng,
    ) -> anyhow::Result<()> {
        rng.shuffle(&mut modern);
        for line in legacy {
            self.legacy.write_record(row(line, &COLUMNS, 0))?;
        }
        for line in &modern {
            self.modern
                .write_record(row(line, &self.columns, rng.u32(0..5)))?;
        }
        self.lines_legacy += legacy.len();
        self.lines_modern += modern.len();
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        for (writer, path) in [
            (&mut self.legacy, &self.paths[0]),
            (&mut self.modern, &self.paths[1]),
        ] {
            writer
                .flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}
