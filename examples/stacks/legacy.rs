//! The sample *legacy* bill-computation stack: a batch program, run per batch of accounts,
//! that prints their bills as canonical CSV on stdout.
//!
//! It is a system under test, not part of billshadow: the demo and the tests shadow-run it
//! against the modern sample stack. It bills from `data/` written by
//! `billshadow generate cohort`: monthly plan fees prorated by day for accounts that started
//! during the period, graduated tiered usage, promotions as credits, and tax by region on the
//! invoice subtotal. Every line is rounded half away from zero to the currency's minor unit.
//! It reads only its batch's rows of the data files, through their indexes (`index.rs`).
//!
//! Usage: billshadow-sample-legacy --data DIR [--echo] ACCOUNT...
//!        (`--echo` prints one fixed line per account id given, to show argv arrives intact)
//!        billshadow-sample-legacy --version

mod index;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};

struct Account {
    customer_id: String,
    partition: String,
    region: String,
    currency: String,
    plan: String,
    start: NaiveDate,
    promo: String,
}

struct Book {
    period_start: NaiveDate,
    period_end: NaiveDate,
    raw: toml::Table,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("legacy: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut data: Option<PathBuf> = None;
    let mut echo = false;
    let mut accounts = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--version" => {
                println!("billshadow-sample-legacy {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            "--data" => data = args.next().map(PathBuf::from),
            "--echo" => echo = true,
            _ => accounts.push(arg),
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let header = "account_id,customer_id,partition,region,period_start,period_end,charge_code,line_type,description,quantity,unit,unit_price,amount,currency";
    writeln!(out, "{header}").map_err(|e| e.to_string())?;
    if echo {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut out);
        for account in &accounts {
            w.write_record([
                account.as_str(),
                "",
                "p0",
                "us-east-1",
                "2026-10-01",
                "2026-10-31",
                "echo",
                "fee",
                "echo",
                "",
                "",
                "",
                "1.00",
                "USD",
            ])
            .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
        return Ok(());
    }
    let data = data.ok_or("--data DIR is required")?;
    let book = load_book(&data)?;
    let known = index::Index::open(&data.join("accounts.csv"))?;
    let usage = index::Index::open(&data.join("usage.csv"))?;
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(&mut out);
    for id in &accounts {
        let Some(account) = known.rows(id)?.first().map(account).transpose()? else {
            eprintln!("legacy: unknown account {id}, skipped");
            continue;
        };
        let used = usage
            .rows(id)?
            .iter()
            .map(|row| {
                let quantity: Decimal = row[2].parse().map_err(|e| format!("usage.csv: {e}"))?;
                Ok((row[1].to_owned(), quantity))
            })
            .collect::<Result<Vec<_>, String>>()?;
        for line in bill(&book, id, &account, &used)? {
            w.write_record(&line).map_err(|e| e.to_string())?;
        }
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(())
}

fn load_book(data: &Path) -> Result<Book, String> {
    let text = std::fs::read_to_string(data.join("pricebook.toml"))
        .map_err(|e| format!("pricebook.toml: {e}"))?;
    let raw: toml::Table = toml::from_str(&text).map_err(|e| format!("pricebook.toml: {e}"))?;
    let date = |key: &str| -> Result<NaiveDate, String> {
        let s = raw
            .get(key)
            .and_then(|v| v.as_str())
            .ok_or(format!("pricebook.toml: no {key}"))?;
        NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|e| e.to_string())
    };
    Ok(Book {
        period_start: date("period_start")?,
        period_end: date("period_end")?,
        raw,
    })
}

/// One row of `accounts.csv`.
fn account(row: &csv::StringRecord) -> Result<Account, String> {
    let start =
        NaiveDate::parse_from_str(&row[6], "%Y-%m-%d").map_err(|e| format!("accounts.csv: {e}"))?;
    Ok(Account {
        customer_id: row[1].to_owned(),
        partition: row[2].to_owned(),
        region: row[3].to_owned(),
        currency: row[4].to_owned(),
        plan: row[5].to_owned(),
        start,
        promo: row[7].to_owned(),
    })
}

fn minor_digits(currency: &str) -> u32 {
    match currency {
        "JPY" => 0,
        "BHD" => 3,
        _ => 2,
    }
}

fn round(value: Decimal, currency: &str) -> Decimal {
    value.round_dp_with_strategy(
        minor_digits(currency),
        RoundingStrategy::MidpointAwayFromZero,
    )
}

fn price(table: Option<&toml::Value>, currency: &str) -> Result<Decimal, String> {
    let text = table
        .and_then(|t| t.get(currency))
        .and_then(|v| v.as_str())
        .ok_or(format!("no {currency} price"))?;
    text.parse().map_err(|e| format!("price {text}: {e}"))
}

/// One line of a bill: charge code, line type, description, quantity, unit, unit price, amount.
struct Line<'a>(
    String,
    &'static str,
    String,
    Option<Decimal>,
    &'a str,
    Option<Decimal>,
    Decimal,
);

/// One account's lines, as CSV records: the plan fee, one line per metric used, the promotion's
/// credit and the tax, in that order.
fn bill(
    book: &Book,
    id: &str,
    a: &Account,
    usage: &[(String, Decimal)],
) -> Result<Vec<Vec<String>>, String> {
    let plan = plan_line(book, a)?;
    let fee_amount = plan.6;
    let mut lines: Vec<Line<'_>> = vec![plan];

    let metrics = book
        .raw
        .get("metrics")
        .and_then(|m| m.as_array())
        .ok_or("no metrics")?;
    for (code, quantity) in usage {
        lines.push(usage_line(metrics, code, *quantity, &a.currency)?);
    }

    if !a.promo.is_empty() {
        lines.push(promo_line(book, a, fee_amount)?);
    }

    let rate = tax_rate(book, &a.region)?;
    if !rate.is_zero() {
        lines.push(tax_line(&lines, rate, &a.currency));
    }

    Ok(lines
        .into_iter()
        .map(|line| record(book, id, a, line))
        .collect())
}

/// The plan's monthly fee, prorated by day for an account that started during the period.
fn plan_line<'a>(book: &Book, a: &Account) -> Result<Line<'a>, String> {
    let period_days = Decimal::from((book.period_end - book.period_start).num_days() + 1);
    let active_from = a.start.max(book.period_start);
    let active_days = Decimal::from((book.period_end - active_from).num_days() + 1);
    let plan = book
        .raw
        .get("plans")
        .and_then(|p| p.get(&a.plan))
        .ok_or(format!("unknown plan {}", a.plan))?;
    let fee = price(plan.get("fee"), &a.currency)?;
    let fee_amount = round(fee * active_days / period_days, &a.currency);
    Ok(Line(
        format!("plan.{}", a.plan),
        "recurring",
        format!("{} plan", a.plan),
        Some(Decimal::ONE),
        "",
        Some(fee),
        fee_amount,
    ))
}

/// One metric's usage, priced through its tiers.
fn usage_line<'a>(
    metrics: &'a [toml::Value],
    code: &str,
    quantity: Decimal,
    currency: &str,
) -> Result<Line<'a>, String> {
    let metric = metrics
        .iter()
        .find(|m| m.get("code").and_then(|c| c.as_str()) == Some(code))
        .ok_or(format!("unknown metric {code}"))?;
    let tiers = metric
        .get("tiers")
        .and_then(|t| t.as_array())
        .ok_or("no tiers")?;
    let amount = graduated(tiers, quantity, currency)?;
    let unit = metric.get("unit").and_then(|u| u.as_str()).unwrap_or("");
    let description = metric
        .get("description")
        .and_then(|u| u.as_str())
        .unwrap_or(code);
    Ok(Line(
        code.to_owned(),
        "usage",
        description.to_owned(),
        Some(quantity),
        unit,
        None,
        round(amount, currency),
    ))
}

/// Graduated tiers: each tier prices only the units that fall within it. Not rounded.
fn graduated(tiers: &[toml::Value], quantity: Decimal, currency: &str) -> Result<Decimal, String> {
    let mut remaining = quantity;
    let mut floor = Decimal::ZERO;
    let mut amount = Decimal::ZERO;
    for tier in tiers {
        let ceiling = match tier.get("up_to").and_then(|u| u.as_str()) {
            Some(u) => u.parse::<Decimal>().map_err(|e| e.to_string())?,
            None => Decimal::MAX,
        };
        let in_tier = remaining.min(ceiling - floor);
        if in_tier <= Decimal::ZERO {
            break;
        }
        amount += in_tier * price(tier.get("price"), currency)?;
        remaining -= in_tier;
        floor = ceiling;
    }
    Ok(amount)
}

/// The account's promotion as a credit: a share of the prorated plan fee, or a fixed amount.
fn promo_line<'a>(book: &Book, a: &Account, fee_amount: Decimal) -> Result<Line<'a>, String> {
    let promo = book
        .raw
        .get("promos")
        .and_then(|p| p.get(&a.promo))
        .ok_or(format!("unknown promo {}", a.promo))?;
    let credit = if let Some(percent) = promo.get("percent_of_fee").and_then(|p| p.as_str()) {
        round(
            fee_amount * percent.parse::<Decimal>().map_err(|e| e.to_string())?,
            &a.currency,
        )
    } else {
        price(promo.get("fixed"), &a.currency)?
    };
    Ok(Line(
        format!("promo.{}", a.promo.to_lowercase()),
        "credit",
        format!("Promotion {}", a.promo),
        None,
        "",
        None,
        -credit,
    ))
}

/// The region's tax rate; a region the price book does not list is not taxed.
fn tax_rate(book: &Book, region: &str) -> Result<Decimal, String> {
    book.raw
        .get("taxes")
        .and_then(|t| t.get(region))
        .and_then(|r| r.as_str())
        .unwrap_or("0")
        .parse()
        .map_err(|e: rust_decimal::Error| e.to_string())
}

/// Tax on the invoice subtotal of the lines so far; a subtotal below zero is taxed as zero.
fn tax_line<'a>(lines: &[Line<'_>], rate: Decimal, currency: &str) -> Line<'a> {
    let subtotal: Decimal = lines
        .iter()
        .map(|l| l.6)
        .sum::<Decimal>()
        .max(Decimal::ZERO);
    Line(
        "tax.vat".to_owned(),
        "tax",
        "VAT".to_owned(),
        None,
        "",
        None,
        round(subtotal * rate, currency),
    )
}

/// One line as a canonical CSV record, with the account's identity and the period.
fn record(book: &Book, id: &str, a: &Account, line: Line<'_>) -> Vec<String> {
    let Line(code, line_type, description, quantity, unit, unit_price, amount) = line;
    vec![
        id.to_owned(),
        a.customer_id.clone(),
        a.partition.clone(),
        a.region.clone(),
        book.period_start.to_string(),
        book.period_end.to_string(),
        code,
        line_type.to_owned(),
        description,
        quantity.map(|q| q.to_string()).unwrap_or_default(),
        unit.to_owned(),
        unit_price.map(|p| p.to_string()).unwrap_or_default(),
        amount.to_string(),
        a.currency.clone(),
    ]
}
