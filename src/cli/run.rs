//! `billshadow run`, `runs` and `show`: shadow runs through live stacks, kept in the run store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::support::{runtime, sha256_hex};
use anyhow::Context;
use billshadow_adapters::Catalog;
use billshadow_adapters::live::{Stack, StackConfig, StartedStack};
use billshadow_comparisons::CompareConfig;

use crate::args::{RunArgs, RunsArgs, ShowArgs, TableFormat};
use crate::exit::{Code, Failure, Outcome, input, unavailable};
use crate::run::report::RunReport;
use crate::run::runner::{RunnerOptions, Split, execute};
use crate::spec::Spec;
use crate::store::{Access, NewRun, RunKind, RunStatus, Store, default_url};

fn run_id() -> String {
    let now = chrono::Utc::now();
    format!(
        "run-{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u16(..)
    )
}

/// Everything a run needs, resolved before any work starts.
struct Prepared {
    spec: Spec,
    spec_path: PathBuf,
    spec_text: String,
    legacy: StackConfig,
    modern: StackConfig,
    config: CompareConfig,
}

fn prepare(
    spec_path: &Path,
    spec_text: String,
    as_of: chrono::NaiveDate,
    calibrate: bool,
) -> Result<Prepared, Failure> {
    let spec = Spec::parse(spec_path, &spec_text)?;
    let catalog = Catalog::builtin()?;
    fn live<'a>(
        spec_path: &Path,
        name: &str,
        side: &'a crate::spec::SideSpec,
    ) -> Result<&'a crate::spec::live::LiveSpec, Failure> {
        side.live.as_ref().ok_or_else(|| {
            crate::usage!(
                "{}: [{name}] is not a live stack; a run needs `kind = \"command\"`, `\"http\"` or `\"sql\"` on both sides",
                spec_path.display()
            )
        }).map_err(Into::into)
    }
    let legacy_live = live(spec_path, "legacy", &spec.legacy)?;
    let legacy = legacy_live
        .resolve("legacy", &catalog)
        .map_err(|e| crate::usage!(e))?;
    let modern = if calibrate {
        let mut again = legacy.clone();
        again.side = "legacy (second replay)".to_owned();
        again
    } else {
        live(spec_path, "modern", &spec.modern)?
            .resolve("modern", &catalog)
            .map_err(|e| crate::usage!(e))?
    };
    let mut config = spec.config(as_of, &legacy.mapping, &modern.mapping)?;
    // Customers span accounts; a run compares one account at a time.
    config.customer_totals = false;
    Ok(Prepared {
        spec,
        spec_path: spec_path.to_path_buf(),
        spec_text,
        legacy,
        modern,
        config,
    })
}

/// Starts what the spec says to start, builds both stacks and checks they answer.
async fn connect(
    prepared: &Prepared,
    calibrate: bool,
) -> Result<(Vec<StartedStack>, Arc<Stack>, Arc<Stack>), Failure> {
    let mut started = Vec::new();
    let sides: &[(&str, &crate::spec::SideSpec)] = if calibrate {
        &[("legacy", &prepared.spec.legacy)]
    } else {
        &[
            ("legacy", &prepared.spec.legacy),
            ("modern", &prepared.spec.modern),
        ]
    };
    for (name, side) in sides {
        if let Some(start) = side.live.as_ref().and_then(|l| l.start.as_ref()) {
            let process = start
                .start()
                .await
                .map_err(|e| crate::failed!("cannot start the {name} stack: {e}"))?;
            started.push(process);
        }
    }
    let legacy = Arc::new(
        Stack::build(prepared.legacy.clone())
            .await
            .map_err(|e| crate::failed!("legacy stack: {e}"))?,
    );
    let modern = Arc::new(
        Stack::build(prepared.modern.clone())
            .await
            .map_err(|e| crate::failed!("modern stack: {e}"))?,
    );
    legacy
        .preflight()
        .await
        .map_err(|e| crate::failed!("the legacy stack is unreachable: {e}"))?;
    modern
        .preflight()
        .await
        .map_err(|e| crate::failed!("the modern stack is unreachable: {e}"))?;
    Ok((started, legacy, modern))
}

/// What a run has once it is set up: its id, its resolved spec, whether it is resumed, the
/// stacks (and the processes started for them) and the store, with the run created in it.
struct SetUp {
    run_id: String,
    prepared: Prepared,
    resumed: bool,
    /// Other workers may be doing the run too (`--join`, or `--run-id` of a run there).
    joined: bool,
    started: Vec<StartedStack>,
    legacy: Arc<Stack>,
    modern: Arc<Stack>,
    store: Store,
}

/// The run to do: a new one (its spec read and resolved) or, with `--resume`, the stored run
/// with its stored spec and as-of date.
async fn which_run(
    args: &RunArgs,
    store_url: &str,
    new_id: &str,
    as_of: chrono::NaiveDate,
) -> Result<(String, Prepared, bool), Failure> {
    Ok(match args.resume.as_ref().or(args.join.as_ref()) {
        Some(which) => {
            let store = Store::open_with(store_url, Access::ReadOnly).await?;
            let run = store.resolve(which).await?;
            let text = store.spec_text(&run.id).await?;
            // The date its waivers are judged against: never silently today's instead.
            let as_of =
                chrono::NaiveDate::parse_from_str(&run.as_of, "%Y-%m-%d").with_context(|| {
                    format!(
                        "run {}: its stored as_of date `{}` does not parse",
                        run.id, run.as_of
                    )
                })?;
            let calibration = run.kind == RunKind::Calibration;
            let prepared = prepare(Path::new(&run.spec_path), text, as_of, calibration)?;
            store.close().await;
            (run.id, prepared, true)
        }
        None => {
            let spec_path = args
                .spec
                .clone()
                .ok_or_else(|| crate::usage!("a run needs --spec FILE (or --resume RUN)"))?;
            let text = crate::support::read_named(&spec_path)?;
            (
                args.run_id.clone().unwrap_or_else(|| new_id.to_owned()),
                prepare(&spec_path, text, as_of, args.calibrate)?,
                false,
            )
        }
    })
}

/// Reads the spec and cohort, starts and checks the stacks, opens the store and creates the
/// run (or finds the one to resume).
async fn set_up(
    args: &RunArgs,
    store_url: &str,
    new_id: &str,
    as_of: chrono::NaiveDate,
) -> Result<SetUp, Failure> {
    let (run_id, prepared, resumed) = which_run(args, store_url, new_id, as_of).await?;
    let cohort = if resumed {
        None
    } else {
        let path = args
            .cohort
            .clone()
            .ok_or_else(|| crate::usage!("a run needs --cohort FILE"))?;
        crate::run::cohort::check(&path, prepared.spec.cohort)?;
        Some(path)
    };

    let (started, legacy, modern) = connect(&prepared, args.calibrate).await?;
    // A new run may create the store; a resumed one needs the store it was started in.
    let access = if resumed {
        Access::Write
    } else {
        Access::Create
    };
    let store = Store::open_with(store_url, access).await?;
    let mut joined = args.join.is_some();
    if let Some(path) = &cohort {
        let cohort_hash = crate::support::sha256_file_hex(path)?;
        let hashes = (sha256_hex(prepared.spec_text.as_bytes()), cohort_hash);
        // `--run-id` of a run already there: every worker of a batch job starts alike.
        if args.run_id.is_some() && store.run_hashes(&run_id).await?.is_some() {
            join_created(&store, &run_id, &hashes).await?;
            joined = true;
            return Ok(SetUp {
                run_id,
                prepared,
                resumed: true,
                joined,
                started,
                legacy,
                modern,
                store,
            });
        }
        let mut sides = vec![("legacy", &*legacy)];
        if !args.calibrate {
            sides.push(("modern", &*modern));
        }
        let versions = crate::versions::ask(&sides).await;
        let new = NewRun {
            id: &run_id,
            kind: if args.calibrate {
                RunKind::Calibration
            } else {
                RunKind::Shadow
            },
            started_by: &started_by(),
            spec_path: &prepared.spec_path.display().to_string(),
            spec_text: &prepared.spec_text,
            spec_hash: &sha256_hex(prepared.spec_text.as_bytes()),
            cohort_path: &path.display().to_string(),
            cohort_hash: &hashes.1,
            as_of: &prepared.config.today.to_string(),
            stack_versions: &crate::versions::to_stored(&versions),
        };
        let accounts = crate::run::cohort::open(path, prepared.spec.cohort)?;
        // A cohort error is input (2); a database error (a disk that fills) is the store's
        // failure (3, by its type), named.
        let created = store.create_run(&new, accounts).await;
        if let Err(e) = created {
            // Another worker created it first, with the same `--run-id`: join it.
            if args.run_id.is_none() || store.run_hashes(&run_id).await?.is_none() {
                return Err(input(crate::store::name_failure(e, store_url)).into());
            }
            join_created(&store, &run_id, &hashes).await?;
            joined = true;
        }
    } else {
        // Its diffs are about to change: its causes are computed on read until it completes.
        store.forget_causes(&run_id).await?;
        store.set_status(&run_id, RunStatus::Running).await?;
    }
    Ok(SetUp {
        run_id,
        prepared,
        resumed: joined || resumed,
        joined,
        started,
        legacy,
        modern,
        store,
    })
}

/// Joins the run `run_id` another worker created with `--run-id`: only with the same spec
/// and cohort (their SHA-256), or two workers would do different runs under one id.
async fn join_created(
    store: &Store,
    run_id: &str,
    (spec_hash, cohort_hash): &(String, String),
) -> Result<(), Failure> {
    let Some((spec, cohort)) = store.run_hashes(run_id).await? else {
        return Err(crate::usage!("no run `{run_id}` in the store {}", store.url).into());
    };
    if spec != *spec_hash || cohort != *cohort_hash {
        let what = if spec != *spec_hash { "spec" } else { "cohort" };
        return Err(crate::usage!(
            "the store {} holds a run `{run_id}` started with another {what}: a worker joins a run only with the same spec and cohort (or give another --run-id)",
            store.url
        )
        .into());
    }
    store.set_status(run_id, RunStatus::Running).await?;
    Ok(())
}

/// How this worker takes the run's accounts: its shard, else leased on PostgreSQL, else (a
/// SQLite run's one worker) all of them; a second worker without a shard on SQLite is
/// refused.
fn split_of(args: &RunArgs, store: &Store, run_id: &str, joined: bool) -> Result<Split, Failure> {
    Ok(match args.shard {
        Some(shard) => Split::Shard(shard),
        None if store.is_postgres() => Split::Leased {
            worker: worker_name(),
            lease: std::time::Duration::from_secs(args.lease),
        },
        None if joined => {
            return Err(crate::usage!(
                "run {run_id} is in the SQLite store {}, which has one worker per run: join it with --shard I/N (each worker its own shard), or keep the store in PostgreSQL, whose workers share a run's accounts",
                store.url
            )
            .into());
        }
        None => Split::All,
    })
}

/// A name for this worker, unique among a run's workers: its leases carry it.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

pub(crate) fn run(args: RunArgs) -> Outcome {
    runtime()?.block_on(run_async(args))
}

/// A run stopped while it was set up: a run already created is marked interrupted.
async fn abandon_set_up(args: &RunArgs, store_url: &str, new_id: &str) -> Code {
    if args.resume.is_none() {
        if let Ok(store) = Store::open_with(store_url, Access::Write).await {
            let _ = store.set_status(new_id, RunStatus::Interrupted).await;
            store.close().await;
        }
    }
    crate::note!("interrupted while setting up the run: nothing was compared");
    Code::Interrupted
}

/// `--retry-errors` needs a stored run.
fn check_retry_errors(args: &RunArgs) -> Result<(), Failure> {
    if args.retry_errors && args.resume.is_none() && args.join.is_none() {
        return Err(crate::usage!(
            "--retry-errors redoes the stack errors of a stored run: it needs --resume RUN or --join RUN"
        )
        .into());
    }
    Ok(())
}

async fn run_async(args: RunArgs) -> Outcome {
    let as_of = args
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    check_retry_errors(&args)?;
    let store_url = default_url(args.store.as_deref());
    let new_id = run_id();
    // A signal while the stacks start or the cohort is stored stops the run as well: the
    // processes started for it are stopped (dropped), a run already created is marked
    // interrupted, and the exit code is 130.
    let set_up = tokio::select! {
        set_up = set_up(&args, &store_url, &new_id, as_of) => set_up?,
        () = crate::run::runner::stop_requested() => {
            return Ok(abandon_set_up(&args, &store_url, &new_id).await);
        }
    };
    // The rest (stacks, started processes) is moved out of `set_up` where it is used.
    let SetUp { run_id, store, .. } = set_up;
    let split = split_of(&args, &store, &run_id, set_up.joined)?;
    let pending = store.pending_count(&run_id, args.retry_errors).await?;
    let total = store.resolve(&run_id).await?.accounts_total as u64;
    let shard = args
        .shard
        .map(|s| format!(", shard {s}"))
        .unwrap_or_default();
    crate::note!(
        "{} {run_id}{shard}: {} of {total} accounts to do (store {})",
        if set_up.joined {
            "joining"
        } else if set_up.resumed {
            "resuming"
        } else {
            "run"
        },
        pending,
        store.url
    );
    tracing::info!(run = %run_id, pending, total, "run started");

    let options = RunnerOptions {
        accounts_in_flight: args.concurrency.max(1),
        progress: !args.no_progress && !crate::output::quiet(),
        total,
        pending,
        retry_errors: args.retry_errors,
        writer: match &split {
            Split::Leased { worker, .. } => worker.clone(),
            Split::All | Split::Shard(_) => worker_name(),
        },
        split,
    };
    let result = execute(
        &store,
        &run_id,
        set_up.legacy,
        set_up.modern,
        Arc::new(set_up.prepared.config.clone()),
        options,
    )
    .await;
    for process in set_up.started {
        process.stop().await;
    }
    let tally = match result {
        Ok(t) => t,
        Err(e) => {
            let _ = store.set_status(&run_id, RunStatus::Failed).await;
            return Err(unavailable(e.context(format!(
                "run {run_id} failed; what was stored is kept: resume with --resume {run_id}"
            )))
            .into());
        }
    };
    // The run is complete once no account is pending, whichever worker finishes last.
    let Some(status) = final_status(&store, &run_id, &tally, &args).await? else {
        store.close().await;
        return Ok(Code::NoVerdictYet);
    };
    tracing::debug!(run = %run_id, stored = tally.accounts, status = %status, "run ended");
    if status == RunStatus::Completed {
        settle(&store, &run_id, &set_up.prepared.config).await?;
    }
    store.set_status(&run_id, status).await?;
    let run = store.resolve(&run_id).await?;
    let report = RunReport::load(&store, run, diff_limit(args.format, args.limit)).await?;
    store.close().await;
    crate::report::summary::print(&report, args.format, args.limit, args.calibrate)?;
    if let Some(why) = &tally.stack_down {
        // Exit 3: a stack failure prevented a verdict; nothing was turned into one.
        crate::note!(
            "error: {why}; run {run_id} stopped with {} accounts pending: resume with --resume {run_id} once it is back",
            report.accounts_pending()
        );
        return Ok(Code::Stack);
    }
    if tally.interrupted {
        return Ok(Code::Interrupted);
    }
    Ok(crate::report::summary::exit_code(&report))
}

/// Stores a completing run's causes (its waivers by signature applied) before it is marked
/// completed, so a completed run always has them.
async fn settle(
    store: &Store,
    run_id: &str,
    config: &billshadow_comparisons::CompareConfig,
) -> Result<(), Failure> {
    if let Err(e) = crate::run::causes::settle(store, run_id, &config.waivers, config.today).await {
        let _ = store.set_status(run_id, RunStatus::Failed).await;
        return Err(unavailable(e.context(format!(
            "run {run_id}: its causes could not be stored; resume with --resume {run_id}"
        )))
        .into());
    }
    Ok(())
}

/// The run's status once this worker stops: interrupted, or completed once no account is
/// pending; none when this worker's shard is done and others are not (it says so, and exits
/// 4 without a verdict: nothing failed, but nothing is known yet, so never 0).
async fn final_status(
    store: &Store,
    run_id: &str,
    tally: &crate::run::runner::RunTally,
    args: &RunArgs,
) -> Result<Option<RunStatus>, Failure> {
    if tally.interrupted || tally.stack_down.is_some() {
        return Ok(Some(RunStatus::Interrupted));
    }
    let remaining = store.pending_count(run_id, false).await?;
    if remaining == 0 {
        return Ok(Some(RunStatus::Completed));
    }
    let shard = args
        .shard
        .map(|s| format!(", shard {s}"))
        .unwrap_or_default();
    crate::note!(
        "run {run_id}{shard}: done, {} accounts stored by this worker; {remaining} accounts of the run are pending in other shards; no verdict yet, exit code 4 (`billshadow show {run_id}` once they are done)",
        tally.accounts
    );
    Ok(None)
}

/// The text report lists the first accounts' diffs only; JSON has them all.
fn diff_limit(format: TableFormat, limit: usize) -> Option<usize> {
    match format {
        TableFormat::Text => Some(limit),
        TableFormat::Json => None,
    }
}

/// A run as `runs` lists it: the stored row, its kind as reports name it, and its verdict with
/// done / total.
#[derive(serde::Serialize)]
struct RunListing {
    #[serde(flatten)]
    run: crate::store::RunRow,
    label: String,
    verdict: billshadow_comparisons::Verdict,
    accounts_pending: u64,
    accounts_compared: u64,
    accounts_mismatched: u64,
    accounts_errored: u64,
    /// Customers compared across the run's accounts, and those with a customer total diff
    /// (0 while accounts are pending); a failing one makes the verdict a mismatch.
    customers_compared: u64,
    customers_mismatched: u64,
    /// `INCOMPLETE: …` for an incomplete run, else null.
    incomplete: Option<String>,
}

pub(crate) fn runs(args: RunsArgs) -> Outcome {
    runtime()?.block_on(async {
        let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
        let runs = store.runs().await?;
        let counts = store.outcome_status_counts().await?;
        let mut listed = Vec::with_capacity(runs.len());
        for run in runs {
            let by_status = counts.get(&run.id).copied().unwrap_or_default();
            let (parity, mismatched, errored) =
                (by_status.parity, by_status.mismatch, by_status.stack_error);
            let completeness = billshadow_reports::view::Completeness::new(
                run.status.as_str(),
                u64::try_from(run.accounts_total).unwrap_or(0),
                parity + mismatched + errored,
                parity + mismatched,
                errored,
            );
            let customers = crate::run::report::customer_counts(
                &store,
                &run,
                completeness.accounts_pending,
                None,
            )
            .await?;
            // As `show` judges it: a customer whose total fails is a mismatch on its own.
            let verdict = if customers.failing > 0 {
                billshadow_comparisons::Verdict::Mismatch
            } else {
                crate::run::report::verdict(mismatched, &completeness)
            };
            listed.push(RunListing {
                label: billshadow_reports::view::kind_label(run.kind.as_str()),
                verdict,
                accounts_pending: completeness.accounts_pending,
                accounts_compared: completeness.accounts_compared,
                accounts_mismatched: mismatched,
                accounts_errored: errored,
                customers_compared: customers.compared,
                customers_mismatched: customers.mismatched,
                incomplete: completeness.describe(),
                run,
            });
        }
        store.close().await;
        let mut out = std::io::stdout().lock();
        let written = match args.format {
            TableFormat::Json => {
                serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "runs": listed }))
                    .map_err(std::io::Error::other)
                    .and_then(|()| writeln!(out))
            }
            TableFormat::Text => {
                let mut r = writeln!(
                    out,
                    "{:<34} {:<18} {:<11} {:<20} {:>9} {:>9} {:>9}  {:<24}  stacks",
                    "run", "kind", "status", "verdict", "compared", "done", "accounts", "started"
                );
                for l in &listed {
                    // A mismatch is known, and the run is incomplete too: say both.
                    let verdict = match (l.verdict, &l.incomplete) {
                        (billshadow_comparisons::Verdict::Mismatch, Some(_)) => {
                            "MISMATCH, INCOMPLETE".to_owned()
                        }
                        (v, _) => v.as_str().to_uppercase(),
                    };
                    r = r.and_then(|()| {
                        writeln!(
                            out,
                            "{:<34} {:<18} {:<11} {:<20} {:>9} {:>9} {:>9}  {:<24}  {}",
                            l.run.id,
                            l.label,
                            l.run.status,
                            verdict,
                            l.accounts_compared,
                            l.run.accounts_done,
                            l.run.accounts_total,
                            l.run.started_at,
                            crate::versions::one_line(&l.run.stack_versions)
                        )
                    });
                }
                r
            }
        };
        written.map_err(|e| unavailable(anyhow::Error::new(e).context("cannot write")))?;
        Ok::<_, Failure>(Code::Parity)
    })
}

pub(crate) fn show(args: ShowArgs) -> Outcome {
    runtime()?.block_on(async {
        let store = Store::open_named(args.store.as_deref(), Access::ReadOnly).await?;
        let run = store.resolve(&args.run).await?;
        let calibrate = run.kind == RunKind::Calibration;
        let report = RunReport::load(&store, run, diff_limit(args.format, args.limit)).await?;
        store.close().await;
        crate::report::summary::print(&report, args.format, args.limit, calibrate)?;
        Ok(crate::report::summary::exit_code(&report))
    })
}

/// Who started a run, as `runs` shows it: the actor as the controller resolves it, or, since a
/// run needs no one's authority, a label that says nothing named anyone (and a warning).
fn started_by() -> String {
    crate::actor::resolve(None).unwrap_or_else(|_| {
        tracing::warn!(
            "nothing names who starts this run (BILLSHADOW_ACTOR, a CI user variable or USER): it is recorded as `unidentified`"
        );
        "unidentified".to_owned()
    })
}
