//! `billshadow report`, `explain`, `metrics` and `serve`: stored runs rendered for people and machines.
//! Everything comes from the store; nothing is compared again.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use billshadow_comparisons::{Diff, DiffClass};

use crate::args::{
    CausesArgs, CompareArgs, CompareFormat, ExplainArgs, MetricsArgs, ReportArgs, ServeArgs,
};
use crate::controller::policy::Policy;
use crate::exit::{Code, Outcome, unavailable};
use crate::output::Destination;
use crate::report::render;
use crate::run::causes::RunCauses;
use crate::store::{Access, Store, default_url, diff_of_value};
use crate::support::runtime;

pub(crate) fn report(args: ReportArgs) -> Outcome {
    runtime()?.block_on(async {
        let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
        let run = store.resolve(&args.run).await?;
        let policy = args.policy.as_deref().map(Policy::load).transpose()?;
        let template = args
            .template
            .as_deref()
            .map(crate::support::read_named)
            .transpose()?;
        let mut out = Destination::open(args.out.as_deref())?;
        let result = render(
            &store,
            run,
            policy.as_ref(),
            args.format,
            template,
            out.writer(),
        )
        .await;
        store.close().await;
        let code = result?;
        out.finish()?;
        if let Some(path) = &args.out {
            crate::note!("wrote {}", path.display());
        }
        Ok(code)
    })
}

pub(crate) fn explain(args: ExplainArgs) -> Outcome {
    let (which, account) = match (&args.first, &args.second) {
        (run, Some(account)) => (run.clone(), account.clone()),
        (account, None) => ("latest".to_owned(), account.clone()),
    };
    runtime()?
        .block_on(async {
            let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
            let run = store.resolve(&which).await?;
            if store.cohort_cell(&run.id, &account).await?.is_none() {
                return Err(crate::usage!(
                    "the account `{account}` is not in run {}'s cohort",
                    run.id
                ));
            }
            let (diffs, evidence) = store.account_detail(&run.id, &account).await?;
            let causes = account_causes(&store, &run.id, &account).await;
            store.close().await;
            let causes = causes?;
            let diffs: Vec<Diff> = diffs
                .into_iter()
                .map(diff_of_value)
                .collect::<anyhow::Result<_>>()
                .with_context(|| format!("a stored diff of {account} does not read back"))?;
            let parse = |side: &str, s: &str| {
                serde_json::from_str::<Vec<serde_json::Value>>(s)
                    .with_context(|| {
                        format!("the stored {side} bill of {account} does not read back")
                    })
                    .map_err(unavailable)
            };
            let (legacy, modern) = match evidence {
                Some((l, m)) => (parse("legacy", &l)?, parse("modern", &m)?),
                None => (Vec::new(), Vec::new()),
            };
            let mut out = std::io::stdout().lock();
            let written = match args.format {
                crate::args::TableFormat::Json => {
                    let mut doc =
                        billshadow_reports::explain::to_json(&account, &diffs, &legacy, &modern);
                    doc["signatures"] = causes_json(&causes);
                    serde_json::to_writer_pretty(&mut out, &doc)
                        .map_err(std::io::Error::other)
                        .and_then(|()| writeln!(out))
                }
                crate::args::TableFormat::Text => {
                    let color = crate::output::stdout_colour();
                    if diffs.is_empty() {
                        writeln!(
                            out,
                            "account {account}: at parity in run {}; nothing to explain",
                            run.id
                        )
                    } else {
                        billshadow_reports::explain::write_text(
                            &mut out, &account, &diffs, &legacy, &modern, color,
                        )
                        .and_then(|()| write_causes(&mut out, &causes))
                    }
                }
            };
            written.map_err(|e| unavailable(anyhow::Error::new(e).context("cannot write")))?;
            Ok(
                if diffs
                    .iter()
                    .any(|d| d.is_failing() && d.class != DiffClass::StackError)
                {
                    Code::Mismatch
                } else {
                    Code::Parity
                },
            )
        })
        .map_err(Into::into)
}

/// The signatures (id, hypothesis) an account's diffs belong to: the run's signatures,
/// stored with it (or computed on read over the whole run's diffs).
async fn account_causes(
    store: &Store,
    run_id: &str,
    account: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let causes = RunCauses::load(store, run_id).await?;
    let mut named: Vec<(String, String)> = Vec::new();
    for (seq, column) in store.account_signatures(run_id, account).await? {
        let Some(id) = causes.signature_of(account, seq, &column) else {
            continue;
        };
        if named.iter().any(|(n, _)| n == id) {
            continue;
        }
        let hypothesis = causes.view.signatures.iter().find(|s| s.id == id);
        let hypothesis = hypothesis.map_or("(not among the signatures kept)", |s| &s.hypothesis);
        named.push((id.to_owned(), hypothesis.to_owned()));
    }
    Ok(named)
}

fn causes_json(causes: &[(String, String)]) -> serde_json::Value {
    let list = causes
        .iter()
        .map(|(id, hypothesis)| serde_json::json!({"id": id, "hypothesis": hypothesis}));
    serde_json::Value::Array(list.collect())
}

fn write_causes(out: &mut dyn Write, causes: &[(String, String)]) -> std::io::Result<()> {
    if causes.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "Causes (signatures of this account's diffs in the run):"
    )?;
    for (id, hypothesis) in causes {
        let hypothesis = billshadow_reports::clean(hypothesis);
        writeln!(out, "  {id}  {hypothesis}")?;
    }
    Ok(())
}

/// `billshadow causes`: a stored run's diffs grouped into signatures. It reads every diff of
/// the run (as `show --format json` does); the signatures kept are capped.
pub(crate) fn causes(args: CausesArgs) -> Outcome {
    runtime()?.block_on(async {
        let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
        let run = store.resolve(&args.run).await?;
        let causes = RunCauses::load(&store, &run.id).await;
        store.close().await;
        let causes = causes?;
        let failing = causes.any_failing();
        let causes = causes.view;
        let mut out = std::io::stdout().lock();
        let written = match args.format {
            crate::args::TableFormat::Json => {
                billshadow_reports::causes::write_json(&mut out, Some(&run.id), &causes)
            }
            crate::args::TableFormat::Text => writeln!(out, "run {}", run.id).and_then(|()| {
                billshadow_reports::causes::write_text(&mut out, &causes, args.limit, Some(&run.id))
            }),
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => {
                other.map_err(|e| unavailable(anyhow::Error::new(e).context("cannot write")))?
            }
        }
        Ok(if failing {
            Code::Mismatch
        } else {
            Code::Parity
        })
    })
}

/// `billshadow compare RUN_A RUN_B`: how accounts and signatures moved between two stored
/// runs. Both runs' causes are read as stored (computed on read for a run without them); the
/// accounts are counted by the store.
pub(crate) fn compare(args: CompareArgs) -> Outcome {
    use billshadow_reports::compare::{AccountMoves, EXAMPLES_MAX, RunChange};
    runtime()?.block_on(async {
        let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
        let read = async {
            let a = store.resolve(&args.run_a).await?;
            let b = store.resolve(&args.run_b).await?;
            if a.id == b.id {
                return Err(crate::usage!(
                    "`{}` and `{}` are both run {}: compare two different runs",
                    args.run_a,
                    args.run_b,
                    a.id
                ));
            }
            let mut moves = AccountMoves::default();
            for (from, to, n) in store.account_moves(&a.id, &b.id).await? {
                let slot = match (from.as_deref(), to.as_deref()) {
                    (Some("parity"), Some("mismatch")) => &mut moves.newly_mismatched,
                    (Some("mismatch"), Some("parity")) => &mut moves.newly_at_parity,
                    (Some("mismatch"), Some("mismatch")) => &mut moves.still_mismatched,
                    (Some("parity"), Some("parity")) => &mut moves.still_at_parity,
                    (Some(_), None) => &mut moves.only_in_a,
                    (None, Some(_)) => &mut moves.only_in_b,
                    _ => &mut moves.errored,
                };
                *slot += n;
            }
            for (key, from, to) in [
                ("newly_mismatched", "parity", "mismatch"),
                ("newly_at_parity", "mismatch", "parity"),
                ("still_mismatched", "mismatch", "mismatch"),
            ] {
                let examples = store
                    .accounts_moved(&a.id, &b.id, from, to, EXAMPLES_MAX)
                    .await?;
                moves.examples.insert(key, examples);
            }
            let causes_a = RunCauses::load(&store, &a.id).await?;
            let causes_b = RunCauses::load(&store, &b.id).await?;
            Ok(RunChange::new(
                &a.id,
                &b.id,
                moves,
                &causes_a.view,
                &causes_b.view,
            ))
        };
        let change: anyhow::Result<RunChange> = read.await;
        store.close().await;
        let change = change?;
        let mut out = std::io::stdout().lock();
        let written = match args.format {
            CompareFormat::Json => billshadow_reports::compare::write_json(&mut out, &change),
            CompareFormat::Text => billshadow_reports::compare::write_text(&mut out, &change),
            CompareFormat::Md => {
                out.write_all(billshadow_reports::compare::markdown(&change).as_bytes())
            }
        };
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => {
                other.map_err(|e| unavailable(anyhow::Error::new(e).context("cannot write")))?
            }
        }
        Ok(if change.worse() {
            Code::Mismatch
        } else {
            Code::Parity
        })
    })
}

/// Serves the latest run's metrics on `/metrics` (and `/healthz`) until stopped.
pub(crate) fn metrics(args: MetricsArgs) -> Outcome {
    listen_and_serve(
        &args.listen,
        args.store.as_deref(),
        args.policy,
        "the latest run's metrics on http://{}/metrics",
    )
}

/// Serves the gate of `args.policy` on `/gate/{partition}/{region}`, with `/metrics` and
/// `/healthz`, until stopped. The policy is read once, at start: a bad one fails there, never
/// at a caller's request.
pub(crate) fn serve(args: ServeArgs) -> Outcome {
    listen_and_serve(
        &args.listen,
        args.store.as_deref(),
        Some(args.policy),
        "the gate on http://{}/gate/PARTITION/REGION, with /metrics and /healthz",
    )
}

/// The `metrics_server` on `listen` over one read-only store pool opened here for its life;
/// `what` says what is served (`{}` is the address).
fn listen_and_serve(
    listen: &str,
    store: Option<&str>,
    policy: Option<PathBuf>,
    what: &str,
) -> Outcome {
    runtime()?.block_on(async move {
        let store = Store::open_with(&default_url(store), Access::ReadOnly).await?;
        if let Some(policy) = &policy {
            Policy::load(policy)?;
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| crate::usage!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr()?.to_string();
        crate::note!(
            "serving {} (store {})",
            what.replace("{}", &address),
            store.url
        );
        crate::report::metrics_server::serve(listener, store, policy).await?;
        Ok(Code::Parity)
    })
}
