//! The sample *modern* bill-computation stack: an HTTP JSON service.
//!
//! A system under test, not part of billshadow, written apart from the legacy sample as a
//! second team would. It bills from the same `data/` (see `billshadow generate cohort`) and
//! carries four deliberate, documented defects, each confined to some partitions or regions so
//! that some cells are at parity and others are not:
//!
//! 1. partition p2 in eu-west-1: proration divides by a 30-day month instead of the period's
//!    days, so accounts that started mid-period get a different plan fee (and so promotion and
//!    VAT);
//! 2. region me-south-1 (BHD): amounts are rounded to 2 decimals as if every currency had
//!    cents, though the Bahraini dinar has 3;
//! 3. partition p3: the WELCOME10 promotion credit is never issued;
//! 4. partition p1 in ap-northeast-1 (JPY): tiers are applied "all units" (the whole quantity
//!    at the price of the tier it reaches) instead of graduated.
//!
//! `GET /v1/accounts/{account_id}/bill?period_start=YYYY-MM-DD` answers
//! `{"account_id": …, "lines": [{…canonical fields, amounts as strings…}]}`; `GET /health`.
//! Fault injection for tests: `--fail-rate`, `--slow-rate` with `--slow-ms`, `--malformed-rate`,
//! `--crash-after N` (the process exits after N bill requests).
//!
//! `--fix N` (repeatable) bills as if defect N above were fixed, so a test can see a cause go
//! away between two runs.
//!
//! `--echo` bills any account with one fixed line carrying its id as received (to show ids
//! arrive intact); `--watch-stdin` stops the service when its stdin closes (when whoever
//! started it dies).
//!
//! Usage: billshadow-sample-modern --data DIR --listen 127.0.0.1:PORT [--fix N]… [--echo] [--watch-stdin] [faults…]
//! `GET /version` answers its version, in the body and the `x-service-version` header.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserialize;

#[derive(Deserialize)]
struct PriceBook {
    period_start: NaiveDate,
    period_end: NaiveDate,
    plans: HashMap<String, Plan>,
    metrics: Vec<Metric>,
    promos: HashMap<String, Promo>,
    taxes: HashMap<String, Decimal>,
}

#[derive(Deserialize)]
struct Plan {
    fee: HashMap<String, Decimal>,
}

#[derive(Deserialize)]
struct Metric {
    code: String,
    unit: String,
    description: String,
    tiers: Vec<Tier>,
}

#[derive(Deserialize)]
struct Tier {
    up_to: Option<Decimal>,
    price: HashMap<String, Decimal>,
}

#[derive(Deserialize)]
struct Promo {
    percent_of_fee: Option<Decimal>,
    fixed: Option<HashMap<String, Decimal>>,
}

#[derive(Deserialize, Clone)]
struct Customer {
    account_id: String,
    customer_id: String,
    partition: String,
    region: String,
    currency: String,
    plan: String,
    start_date: NaiveDate,
    promo: String,
}

/// The defects `--fix` turned off, by number (1 to 4), set once at start.
static DEFECTS_FIXED: std::sync::OnceLock<[bool; 4]> = std::sync::OnceLock::new();

/// Whether defect `n` (1 to 4, as numbered above) is in force.
fn defect(n: usize) -> bool {
    !DEFECTS_FIXED.get().is_some_and(|fixed| fixed[n - 1])
}

#[derive(Default)]
struct Faults {
    fail_rate: f64,
    slow_rate: f64,
    slow_ms: u64,
    malformed_rate: f64,
    crash_after: Option<u64>,
}

struct Service {
    book: PriceBook,
    customers: HashMap<String, Customer>,
    usage: HashMap<String, Vec<(String, Decimal)>>,
    faults: Faults,
    requests: AtomicU64,
    rng: std::sync::Mutex<fastrand::Rng>,
    /// Bill every account, known or not, with one fixed line carrying its id as received.
    echo: bool,
}

#[derive(Deserialize)]
struct BillQuery {
    period_start: Option<NaiveDate>,
}

fn main() -> std::process::ExitCode {
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modern: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

fn start() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut data, mut listen) = (None, "127.0.0.1:8787".to_owned());
    let mut faults = Faults::default();
    let mut seed = 1u64;
    let mut echo = false;
    let mut fixed = [false; 4];
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--data" => data = Some(value()?),
            "--listen" => listen = value()?,
            "--fail-rate" => {
                faults.fail_rate = value()?.parse().map_err(|e| format!("--fail-rate: {e}"))?
            }
            "--slow-rate" => {
                faults.slow_rate = value()?.parse().map_err(|e| format!("--slow-rate: {e}"))?
            }
            "--slow-ms" => {
                faults.slow_ms = value()?.parse().map_err(|e| format!("--slow-ms: {e}"))?
            }
            "--malformed-rate" => {
                faults.malformed_rate = value()?
                    .parse()
                    .map_err(|e| format!("--malformed-rate: {e}"))?
            }
            "--crash-after" => {
                faults.crash_after = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--crash-after: {e}"))?,
                )
            }
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--watch-stdin" => {
                // Stop when whoever started us goes away (our stdin closes).
                std::thread::spawn(|| {
                    let mut sink = Vec::new();
                    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
                    std::process::exit(0);
                });
            }
            "--echo" => echo = true,
            "--fix" => {
                let n: usize = value()?.parse().map_err(|e| format!("--fix: {e}"))?;
                let defect = fixed
                    .get_mut(n.wrapping_sub(1))
                    .ok_or(format!("--fix {n}: the defects are numbered 1 to 4"))?;
                *defect = true;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let _ = DEFECTS_FIXED.set(fixed);
    let data = data.unwrap_or_default();
    if data.is_empty() && !echo {
        return Err("--data DIR is required".to_owned());
    }
    let mut service = if echo {
        empty(faults, seed)
    } else {
        load(Path::new(&data), faults, seed)?
    };
    service.echo = echo;
    let service = Arc::new(service);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            // Its version, in a header (and the body), for a run to record.
            .route(
                "/version",
                get(|| async {
                    let version = concat!("billshadow-sample-modern ", env!("CARGO_PKG_VERSION"));
                    ([("x-service-version", version)], version)
                }),
            )
            .route("/v1/accounts/{account_id}/bill", get(bill_handler))
            .with_state(service);
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// A service with no accounts, for `--echo`.
fn empty(faults: Faults, seed: u64) -> Service {
    let date = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default();
    Service {
        book: PriceBook {
            period_start: date,
            period_end: date,
            plans: HashMap::new(),
            metrics: Vec::new(),
            promos: HashMap::new(),
            taxes: HashMap::new(),
        },
        customers: HashMap::new(),
        usage: HashMap::new(),
        faults,
        requests: AtomicU64::new(0),
        rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        echo: true,
    }
}

fn load(data: &Path, faults: Faults, seed: u64) -> Result<Service, String> {
    let text = std::fs::read_to_string(data.join("pricebook.toml"))
        .map_err(|e| format!("pricebook.toml: {e}"))?;
    let book: PriceBook = toml::from_str(&text).map_err(|e| format!("pricebook.toml: {e}"))?;
    let mut customers = HashMap::new();
    let mut reader = csv::Reader::from_path(data.join("accounts.csv"))
        .map_err(|e| format!("accounts.csv: {e}"))?;
    for row in reader.deserialize::<Customer>() {
        let c = row.map_err(|e| format!("accounts.csv: {e}"))?;
        customers.insert(c.account_id.clone(), c);
    }
    let mut usage: HashMap<String, Vec<(String, Decimal)>> = HashMap::new();
    let mut reader =
        csv::Reader::from_path(data.join("usage.csv")).map_err(|e| format!("usage.csv: {e}"))?;
    for row in reader.records() {
        let row = row.map_err(|e| format!("usage.csv: {e}"))?;
        let quantity = row[2]
            .parse::<Decimal>()
            .map_err(|e| format!("usage.csv: {e}"))?;
        usage
            .entry(row[0].to_owned())
            .or_default()
            .push((row[1].to_owned(), quantity));
    }
    Ok(Service {
        book,
        customers,
        usage,
        faults,
        requests: AtomicU64::new(0),
        rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
        echo: false,
    })
}

async fn bill_handler(
    State(s): State<Arc<Service>>,
    UrlPath(account_id): UrlPath<String>,
    Query(q): Query<BillQuery>,
) -> Response {
    let n = s.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if s.faults.crash_after.is_some_and(|limit| n > limit) {
        eprintln!("modern: crashing after {} requests (--crash-after)", n - 1);
        std::process::exit(70);
    }
    let (fail, slow, malformed) = {
        let mut rng = s.rng.lock().unwrap_or_else(|e| e.into_inner());
        (
            rng.f64() < s.faults.fail_rate,
            rng.f64() < s.faults.slow_rate,
            rng.f64() < s.faults.malformed_rate,
        )
    };
    if slow {
        tokio::time::sleep(std::time::Duration::from_millis(s.faults.slow_ms)).await;
    }
    if fail {
        return (StatusCode::SERVICE_UNAVAILABLE, "overloaded, try again").into_response();
    }
    let body = if s.echo {
        let line = serde_json::json!({
            "period_start": "2026-10-01", "period_end": "2026-10-31", "charge_code": "echo", "line_type": "fee",
            "amount": "1.00", "currency": "USD", "partition": "p0", "region": "us-east-1",
        });
        serde_json::json!({ "account_id": account_id, "lines": [line] }).to_string()
    } else {
        let Some(customer) = s.customers.get(&account_id) else {
            return (StatusCode::NOT_FOUND, format!("no account {account_id}")).into_response();
        };
        if q.period_start.is_some_and(|p| p != s.book.period_start) {
            return (StatusCode::NOT_FOUND, "no bill for that period").into_response();
        }
        match compute(&s, customer) {
            Ok(lines) => {
                serde_json::json!({ "account_id": account_id, "lines": lines }).to_string()
            }
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        }
    };
    if malformed {
        let cut = body.len() / 2;
        return (
            [("content-type", "application/json")],
            body[..cut].to_owned(),
        )
            .into_response();
    }
    ([("content-type", "application/json")], body).into_response()
}

struct Line {
    charge_code: String,
    line_type: &'static str,
    description: String,
    quantity: Option<Decimal>,
    unit: String,
    unit_price: Option<Decimal>,
    amount: Decimal,
}

/// One customer's bill as JSON lines: the plan fee, one line per metric used, the promotion's
/// credit and the tax, in that order.
fn compute(s: &Service, c: &Customer) -> Result<Vec<serde_json::Value>, String> {
    let book = &s.book;
    let places = rounding_places(c);
    let plan = plan_line(book, c, places)?;
    let fee_amount = plan.amount;
    let mut lines = vec![plan];

    for (code, quantity) in s.usage.get(&c.account_id).map(Vec::as_slice).unwrap_or(&[]) {
        lines.push(usage_line(book, c, code, *quantity, places)?);
    }

    let skip_promo = defect(3) && c.partition == "p3" && c.promo == "WELCOME10"; // Defect 3.
    if !c.promo.is_empty() && !skip_promo {
        lines.push(promo_line(book, c, fee_amount, places)?);
    }

    let rate = book.taxes.get(&c.region).copied().unwrap_or_default();
    if !rate.is_zero() {
        lines.push(tax_line(&lines, rate, places));
    }

    Ok(lines.into_iter().map(|l| to_json(book, c, l)).collect())
}

/// Decimal places a customer's amounts are rounded to, half away from zero.
fn rounding_places(c: &Customer) -> u32 {
    match c.currency.as_str() {
        "JPY" => 0,
        "BHD" if defect(2) && c.region == "me-south-1" => 2, // Defect 2: the dinar rounded to cents.
        "BHD" => 3,
        _ => 2,
    }
}

fn round(value: Decimal, places: u32) -> Decimal {
    value.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero)
}

/// The plan's fee; a customer who started during the period pays for the days they had.
fn plan_line(book: &PriceBook, c: &Customer, places: u32) -> Result<Line, String> {
    let cur = c.currency.as_str();
    let plan = book
        .plans
        .get(&c.plan)
        .ok_or(format!("no plan {}", c.plan))?;
    let fee = *plan.fee.get(cur).ok_or(format!("no {cur} fee"))?;
    let first = c.start_date.max(book.period_start);
    let days = Decimal::from((book.period_end - first).num_days() + 1);
    let month = if defect(1) && c.partition == "p2" && c.region == "eu-west-1" {
        Decimal::from(30) // Defect 1.
    } else {
        Decimal::from((book.period_end - book.period_start).num_days() + 1)
    };
    let fee_amount = if first == book.period_start {
        fee
    } else {
        round(fee * days / month, places)
    };
    Ok(Line {
        charge_code: format!("plan.{}", c.plan),
        line_type: "recurring",
        description: format!("{} plan", c.plan),
        quantity: Some(Decimal::ONE),
        unit: String::new(),
        unit_price: Some(fee),
        amount: fee_amount,
    })
}

/// One metric's usage, priced through its tiers.
fn usage_line(
    book: &PriceBook,
    c: &Customer,
    code: &str,
    quantity: Decimal,
    places: u32,
) -> Result<Line, String> {
    let metric = book
        .metrics
        .iter()
        .find(|m| m.code == code)
        .ok_or(format!("no metric {code}"))?;
    let all_units = defect(4) && c.partition == "p1" && c.region == "ap-northeast-1"; // Defect 4.
    let amount = tiered(metric, quantity, &c.currency, all_units)?;
    Ok(Line {
        charge_code: code.to_owned(),
        line_type: "usage",
        description: metric.description.clone(),
        quantity: Some(quantity),
        unit: metric.unit.clone(),
        unit_price: None,
        amount: round(amount, places),
    })
}

/// The customer's promotion as a credit: a share of the plan fee charged, or a fixed amount.
fn promo_line(
    book: &PriceBook,
    c: &Customer,
    fee_amount: Decimal,
    places: u32,
) -> Result<Line, String> {
    let cur = c.currency.as_str();
    let promo = book
        .promos
        .get(&c.promo)
        .ok_or(format!("no promo {}", c.promo))?;
    let credit = match (&promo.percent_of_fee, &promo.fixed) {
        (Some(p), _) => round(fee_amount * *p, places),
        (None, Some(fixed)) => round(*fixed.get(cur).ok_or(format!("no {cur} credit"))?, places),
        (None, None) => Decimal::ZERO,
    };
    Ok(Line {
        charge_code: format!("promo.{}", c.promo.to_lowercase()),
        line_type: "credit",
        description: format!("Promotion {}", c.promo),
        quantity: None,
        unit: String::new(),
        unit_price: None,
        amount: -credit,
    })
}

/// Tax on the subtotal of the lines so far, never on less than zero.
fn tax_line(lines: &[Line], rate: Decimal, places: u32) -> Line {
    let subtotal: Decimal = lines.iter().map(|l| l.amount).sum();
    Line {
        charge_code: "tax.vat".to_owned(),
        line_type: "tax",
        description: "VAT".to_owned(),
        quantity: None,
        unit: String::new(),
        unit_price: None,
        amount: round(subtotal.max(Decimal::ZERO) * rate, places),
    }
}

/// One line as the service answers it, its amount written with the currency's minor digits.
fn to_json(book: &PriceBook, c: &Customer, l: Line) -> serde_json::Value {
    let cur = c.currency.as_str();
    let exponent = match cur {
        "JPY" => 0,
        "BHD" => 3,
        _ => 2,
    };
    let mut amount = l.amount;
    amount.rescale(exponent);
    serde_json::json!({
        "customer_id": c.customer_id, "partition": c.partition, "region": c.region,
        "period_start": book.period_start.to_string(), "period_end": book.period_end.to_string(),
        "charge_code": l.charge_code, "line_type": l.line_type, "description": l.description,
        "quantity": l.quantity.map(|q| q.to_string()), "unit": l.unit,
        "unit_price": l.unit_price.map(|p| p.to_string()),
        "amount": amount.to_string(), "currency": cur,
    })
}

fn tiered(
    metric: &Metric,
    quantity: Decimal,
    currency: &str,
    all_units: bool,
) -> Result<Decimal, String> {
    let mut total = Decimal::ZERO;
    let mut below = Decimal::ZERO;
    for tier in &metric.tiers {
        let price = *tier
            .price
            .get(currency)
            .ok_or(format!("no {currency} price for {}", metric.code))?;
        let top = tier.up_to.unwrap_or(Decimal::MAX);
        if all_units {
            if quantity <= top {
                return Ok(quantity * price);
            }
            continue;
        }
        if quantity <= below {
            break;
        }
        total += (quantity.min(top) - below) * price;
        below = top;
    }
    Ok(total)
}
