//! The shadow runner: replays a cohort through both stacks, compares every account as soon as
//! both bills are in, and stores each outcome as soon as it is known.
//!
//! Bounded everywhere: batches in flight (so accounts in flight), each stack's own cap and rate
//! limit (in the adapters), the queue to the store writer, the size of a store transaction.
//! Killing the process at any moment loses at most the outcomes not yet committed; those
//! accounts have no outcome and a resume does them again.
//!
//! The run stops early, leaving what is not done pending, on Ctrl-C or SIGTERM (what is in
//! flight is finished), when a stack stays down past its outage limit (an account whose
//! stack is down gets no outcome; what is in flight is abandoned) and when the store fails
//! (the writer tells the producer at once: nothing more is asked of the stacks).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use billshadow_adapters::live::{AccountRequest, FetchResult, Stack};
use billshadow_comparisons::{CompareConfig, Diff, DiffClass, Scope, compare_deferring_customers};
use rust_decimal::Decimal;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::shard::Shard;
use crate::store::{AccountOutcome, Claim, OutcomeStatus, Store, bill_body};

/// Outcomes written per store transaction at most.
const WRITE_BATCH_MAX: usize = 512;
/// How long an outcome may wait for its transaction.
const WRITE_DELAY_MAX: Duration = Duration::from_millis(100);
/// Outcomes queued for the writer at most (the runner waits when it is full): two
/// transactions' worth. The queue fills only when the store is slower than the stacks, and
/// fills further the longer the run: at 8,192 it was a ceiling of several MiB of outcomes that
/// a short run does not reach and a long one may (likely part of the peak memory measured to
/// grow from 20 k to 500 k accounts on PostgreSQL; not verified by a profile).
const WRITE_QUEUE_MAX: usize = 2 * WRITE_BATCH_MAX;

pub(crate) struct RunnerOptions {
    /// Accounts in flight at most, across batches.
    pub(crate) accounts_in_flight: usize,
    pub(crate) progress: bool,
    /// Accounts in the run, and how many of them have no outcome yet.
    pub(crate) total: u64,
    pub(crate) pending: u64,
    /// `--retry-errors`: accounts whose outcome is `stack_error` are done again, their
    /// outcome replaced.
    pub(crate) retry_errors: bool,
    /// Which of the run's accounts this worker takes, and how.
    pub(crate) split: Split,
    /// This worker process's name: its leases and its rows of the per-cell totals carry it.
    pub(crate) writer: String,
}

/// How a worker takes the run's accounts.
#[derive(Debug, Clone)]
pub(crate) enum Split {
    /// Every pending account, in cohort order: the one worker of a run on SQLite.
    All,
    /// The pending accounts of one shard, in cohort order (`--shard`).
    Shard(Shard),
    /// Pending accounts claimed a page at a time with a lease (PostgreSQL), shared with every
    /// other worker of the run; this worker ends once no account of the run is pending.
    Leased { worker: String, lease: Duration },
}

/// What the runner did in this process.
#[derive(Debug, Default)]
pub(crate) struct RunTally {
    pub(crate) accounts: u64,
    /// Stopped by Ctrl-C or SIGTERM.
    pub(crate) interrupted: bool,
    /// Stopped because a stack stayed down past its outage limit: why.
    pub(crate) stack_down: Option<String>,
}

/// Why the producer must stop sending work, set by whoever finds out.
#[derive(Default)]
struct Stop {
    store_failed: AtomicBool,
    stack_down: Mutex<Option<String>>,
    notify: Notify,
}

impl Stop {
    fn store_failed(&self) {
        self.store_failed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn stack_down(&self, why: &str) {
        let mut down = self.stack_down.lock().unwrap_or_else(|e| e.into_inner());
        if down.is_none() {
            *down = Some(why.to_owned());
        }
        drop(down);
        self.notify.notify_one();
    }

    fn down(&self) -> Option<String> {
        self.stack_down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Nothing more may be asked of the stacks, and what is in flight is abandoned.
    fn abandon(&self) -> bool {
        self.store_failed.load(Ordering::SeqCst) || self.down().is_some()
    }
}

impl Split {
    /// How often a worker waiting for other workers' leases looks again.
    fn poll(&self) -> Duration {
        match self {
            Split::Leased { lease, .. } => {
                (*lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
            }
            Split::All | Split::Shard(_) => Duration::from_secs(1),
        }
    }
}

/// The accounts a leasing worker claimed and has not stored yet: what its heartbeat renews.
/// Bounded by what it claims ahead (a page of `--concurrency` accounts) and what is in flight.
type Held = Arc<Mutex<std::collections::HashSet<String>>>;

/// The accounts held at this moment.
fn held_now(held: &Held) -> Vec<String> {
    held.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// A leasing worker's heartbeat: every third of its lease, the leases on the accounts it
/// holds are renewed, so a batch that takes longer than the lease is never taken by another
/// worker while this one is alive. A killed worker's heartbeat stops with it, and its leases
/// end. Never returns; not leasing, it waits forever.
async fn heartbeat(
    store: &Store,
    run_id: &str,
    split: &Split,
    held: Held,
) -> std::convert::Infallible {
    let Split::Leased { worker, lease } = split else {
        return std::future::pending().await;
    };
    let every = (*lease / 3).max(Duration::from_millis(100));
    let claim = Claim {
        run_id,
        worker,
        lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
    };
    loop {
        tokio::time::sleep(every).await;
        let accounts = held_now(&held);
        if accounts.is_empty() {
            continue;
        }
        match store.renew_leases(&claim, &accounts).await {
            Ok(renewed) => tracing::debug!(run = run_id, renewed, "leases renewed"),
            Err(e) => tracing::warn!(
                "cannot renew this worker's leases (another worker may take its accounts once they end): {e:#}"
            ),
        }
    }
}

/// Gives up the leases a worker still holds: what it took and did not finish, the others may
/// take at once. Only those accounts, by key: the leases of the accounts it stored are left
/// as they are (a stored account is never claimed again), so stopping costs the same after
/// 20,000 accounts and after 5,000,000.
async fn release_leases(store: &Store, run_id: &str, split: &Split, held: &Held) {
    if let Split::Leased { worker, .. } = split {
        let claim = Claim {
            run_id,
            worker,
            lease_ms: 0,
        };
        if let Err(e) = store.release_leases(&claim, &held_now(held)).await {
            tracing::warn!(
                "cannot give up this worker's leases (they expire by themselves): {e:#}"
            );
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: how a run is asked to stop, also while it is being set up.
pub(crate) async fn stop_requested() {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminated() => {}
    }
}

/// Resolves on SIGTERM (never where there is no such signal, or it cannot be watched).
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Runs `pending` accounts of `run_id`; returns when all are stored, on Ctrl-C or SIGTERM
/// once what is in flight is stored, or once a stack stayed down past its outage limit.
pub(crate) async fn execute(
    store: &Store,
    run_id: &str,
    legacy: Arc<Stack>,
    modern: Arc<Stack>,
    config: Arc<CompareConfig>,
    options: RunnerOptions,
) -> anyhow::Result<RunTally> {
    let (total, pending) = (options.total, options.pending);
    let batch_size = legacy.batch_size().max(modern.batch_size()).max(1);
    let batches_in_flight = (options.accounts_in_flight / batch_size).max(1);
    let (sender, receiver) = mpsc::channel::<AccountOutcome>(WRITE_QUEUE_MAX);
    let progress = Progress::new(options.progress, total, total - pending);
    let stop = Arc::new(Stop::default());
    let (retry_errors, split) = (options.retry_errors, options.split.clone());
    let claim_size = options.accounts_in_flight.max(batch_size);
    let poll = split.poll();
    let held: Held = Arc::default();
    let target = WriteTarget::new(store, run_id, &options, held.clone());
    let writer = write_outcomes(target, receiver, progress.clone(), stop.clone());
    let beat = heartbeat(store, run_id, &options.split, held.clone());
    let producer_stop = stop.clone();
    let held_by_pages = held.clone();
    let producer = async move {
        let stop = producer_stop;
        let mut tasks = JoinSet::new();
        let mut interrupted = false;
        let mut ctrl_c = std::pin::pin!(tokio::signal::ctrl_c());
        let mut term = std::pin::pin!(terminated());
        let batch_key = batch_key_of(legacy.clone(), modern.clone());
        let mut pages = Pages::new(store, run_id, &batch_key, retry_errors, &split);
        pages.claim_size = claim_size;
        pages.held = held_by_pages;
        let (l, m, c, s) = (&legacy, &modern, &config, &sender);
        let ask = |batch| {
            ask_both(
                batch,
                l.clone(),
                m.clone(),
                c.clone(),
                s.clone(),
                stop.clone(),
            )
        };
        loop {
            if stop.abandon() {
                tasks.abort_all();
                break;
            }
            // Other workers hold leases on what is left: look again after a while.
            let waiting = !interrupted
                && fill(
                    &mut pages,
                    &mut tasks,
                    batches_in_flight,
                    batch_size,
                    &stop,
                    &ask,
                )
                .await?;
            if tasks.is_empty() && (!waiting || interrupted || stop.abandon()) {
                break;
            }
            tokio::select! {
                joined = tasks.join_next(), if !tasks.is_empty() => {
                    if let Some(Err(e)) = joined.filter(|j| j.as_ref().is_err_and(|e| !e.is_cancelled())) {
                        tracing::error!("a batch task failed: {e}");
                    }
                }
                () = stop.notify.notified() => {}
                () = tokio::time::sleep(poll), if waiting && tasks.is_empty() => {}
                _ = &mut ctrl_c, if !interrupted => {
                    interrupted = true;
                    crate::note!("interrupted: finishing the accounts in flight, then stopping (resume with --resume {run_id})");
                }
                () = &mut term, if !interrupted => {
                    interrupted = true;
                    crate::note!("terminated (SIGTERM): finishing the accounts in flight, then stopping (resume with --resume {run_id})");
                }
            }
        }
        drop(sender);
        // Abandoned tasks (a stack down, the store failed) end here, before the writer is
        // awaited for the last time.
        while tasks.join_next().await.is_some() {}
        Ok::<_, anyhow::Error>(interrupted)
    };
    let (written, interrupted) = tokio::select! {
        done = async { tokio::join!(writer, producer) } => done,
        never = beat => match never {},
    };
    progress.finish();
    release_leases(store, run_id, &options.split, &held).await;
    Ok(RunTally {
        accounts: written?,
        interrupted: interrupted?,
        stack_down: stop.down(),
    })
}

/// Spawns batches (`ask`) until `room` are in flight, the run stops, or nothing is left to
/// take; true when what is left is under other workers' leases (look again later).
async fn fill<F>(
    pages: &mut Pages<'_>,
    tasks: &mut JoinSet<()>,
    room: usize,
    batch_size: usize,
    stop: &Stop,
    ask: impl Fn(Vec<AccountRequest>) -> F,
) -> anyhow::Result<bool>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    while tasks.len() < room && !stop.abandon() {
        match pages.next_batch(batch_size).await? {
            Next::Batch(batch) => {
                tasks.spawn(ask(batch));
            }
            Next::Wait => return Ok(true),
            Next::Done => break,
        }
    }
    Ok(false)
}

/// Asks both stacks for one batch and sends each account's outcome to the writer. A stack
/// down past its limit gives no verdict: the account stays pending, and the run stops.
async fn ask_both(
    batch: Vec<AccountRequest>,
    legacy: Arc<Stack>,
    modern: Arc<Stack>,
    config: Arc<CompareConfig>,
    sender: mpsc::Sender<AccountOutcome>,
    stop: Arc<Stop>,
) {
    let (l, m) = tokio::join!(legacy.fetch(&batch), modern.fetch(&batch));
    for ((account, l), m) in batch.iter().zip(l).zip(m) {
        if let Some(down) = [&l, &m]
            .into_iter()
            .find_map(|r| r.as_ref().err().filter(|f| f.outage))
        {
            stop.stack_down(&down.message);
            continue;
        }
        let outcome = judge(account, l, m, &config);
        if sender.send(outcome).await.is_err() {
            return; // The writer failed; the run stops.
        }
    }
}

/// The batch key of an account: both stacks'.
fn batch_key_of(
    legacy: Arc<Stack>,
    modern: Arc<Stack>,
) -> impl Fn(&AccountRequest) -> BatchKey + Sync {
    move |a: &AccountRequest| (legacy.batch_key(a), modern.batch_key(a))
}

/// What accounts must share to be in one batch: each stack's batch key (for a batched
/// command, every template value other than the id list).
type BatchKey = (Vec<String>, Vec<String>);

/// What a worker is to do next.
enum Next {
    Batch(Vec<AccountRequest>),
    /// Nothing to take now, but accounts of the run are pending under other workers' leases.
    Wait,
    /// Nothing left for this worker.
    Done,
}

/// The accounts still to do, read (or, leased, claimed) from the store a page at a time.
struct Pages<'a> {
    store: &'a Store,
    run_id: &'a str,
    /// The cohort position of the last account read from the store.
    after: i64,
    /// Accounts read but not handed out yet, with their batch keys.
    buffer: std::collections::VecDeque<(BatchKey, AccountRequest)>,
    done: bool,
    key: &'a (dyn Fn(&AccountRequest) -> BatchKey + Sync),
    /// Accounts with a `stack_error` outcome are to do again (`--retry-errors`).
    redo_errors: bool,
    split: &'a Split,
    /// Leased: accounts claimed at a time (what is in flight at once, so leases do not run
    /// out while their accounts wait in the buffer).
    claim_size: usize,
    /// Leased: a pass from the start of the cohort, for the leases that expired behind.
    rescanning: bool,
    /// Leased: the accounts claimed and not stored yet, renewed by the heartbeat.
    held: Held,
}

/// Accounts read from the store per page.
const PAGE_SIZE: usize = 2000;

impl<'a> Pages<'a> {
    fn new(
        store: &'a Store,
        run_id: &'a str,
        key: &'a (dyn Fn(&AccountRequest) -> BatchKey + Sync),
        redo_errors: bool,
        split: &'a Split,
    ) -> Pages<'a> {
        Pages {
            store,
            run_id,
            after: -1,
            buffer: std::collections::VecDeque::new(),
            done: false,
            key,
            redo_errors,
            split,
            claim_size: PAGE_SIZE,
            rescanning: false,
            held: Held::default(),
        }
    }

    /// Reads the next page of this worker's pending accounts into the buffer; whether it has
    /// to wait for other workers' leases instead.
    async fn refill(&mut self, page_size: usize) -> anyhow::Result<bool> {
        loop {
            let page = match self.split {
                Split::Leased { worker, lease } => {
                    let claim = Claim {
                        run_id: self.run_id,
                        worker,
                        lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
                    };
                    // `--retry-errors` redoes each stack error once, on the first pass.
                    let redo = self.redo_errors && !self.rescanning;
                    let page = self
                        .store
                        .claim_page(&claim, self.after, page_size, redo)
                        .await?;
                    let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
                    held.extend(page.iter().map(|(_, a)| a.account_id.clone()));
                    drop(held);
                    page
                }
                Split::All | Split::Shard(_) => {
                    self.store
                        .pending_page(self.run_id, self.after, page_size, self.redo_errors)
                        .await?
                }
            };
            let Some((last, _)) = page.last() else {
                if !matches!(self.split, Split::Leased { .. }) {
                    self.done = true;
                    return Ok(false);
                }
                if self.after >= 0 {
                    // The end of a pass: once more from the start, for expired leases.
                    self.after = -1;
                    self.rescanning = true;
                    continue;
                }
                // Nothing to claim anywhere: done once no account of the run is pending.
                if self.store.pending_count(self.run_id, false).await? == 0 {
                    self.done = true;
                    return Ok(false);
                }
                return Ok(true);
            };
            self.after = *last;
            let key = self.key;
            let before = self.buffer.len();
            let shard = match self.split {
                Split::Shard(shard) => Some(*shard),
                Split::All | Split::Leased { .. } => None,
            };
            self.buffer.extend(
                page.into_iter()
                    .filter(|(_, account)| shard.is_none_or(|s| s.takes(&account.account_id)))
                    .map(|(_, account)| (key(&account), account)),
            );
            if self.buffer.len() > before {
                return Ok(false);
            }
        }
    }

    /// Up to `size` pending accounts that share their batch key: a batch never mixes periods
    /// (or any other value a stack renders once per batch). The buffer holds at most two pages.
    async fn next_batch(&mut self, size: usize) -> anyhow::Result<Next> {
        let (page_size, low) = match self.split {
            Split::Leased { .. } => {
                let claim = self.claim_size.max(size);
                (claim, size)
            }
            Split::All | Split::Shard(_) => {
                let page = PAGE_SIZE.max(size);
                (page, page)
            }
        };
        if self.buffer.len() < low
            && !self.done
            && self.refill(page_size).await?
            && self.buffer.is_empty()
        {
            return Ok(Next::Wait);
        }
        let Some((key, _)) = self.buffer.front() else {
            return Ok(Next::Done);
        };
        let key = key.clone();
        let mut batch = Vec::with_capacity(size.min(self.buffer.len()));
        // The accounts at the front that share the key: taken without touching the rest (a
        // batch of one, an HTTP stack's, is one `pop_front`).
        while batch.len() < size && self.buffer.front().is_some_and(|(k, _)| *k == key) {
            if let Some((_, account)) = self.buffer.pop_front() {
                batch.push(account);
            }
        }
        // The rest of the batch further on: taken out, the others kept in order.
        if batch.len() < size && self.buffer.iter().any(|(k, _)| *k == key) {
            let mut rest = std::collections::VecDeque::with_capacity(self.buffer.len());
            for (k, account) in self.buffer.drain(..) {
                if batch.len() < size && k == key {
                    batch.push(account);
                } else {
                    rest.push_back((k, account));
                }
            }
            self.buffer = rest;
        }
        Ok(Next::Batch(batch))
    }
}

/// Stores outcomes as they come, in transactions; on a failure, tells the producer to stop
/// asking the stacks at once (nothing more can be stored).
async fn write_outcomes(
    target: WriteTarget<'_>,
    receiver: mpsc::Receiver<AccountOutcome>,
    progress: Progress,
    stop: Arc<Stop>,
) -> anyhow::Result<u64> {
    let written = store_outcomes(&target, receiver, progress).await;
    if written.is_err() {
        stop.store_failed();
    }
    written
}

/// Where and how the writer stores outcomes.
struct WriteTarget<'a> {
    store: &'a Store,
    run_id: &'a str,
    /// This worker process's name (its rows of the per-cell totals).
    writer: &'a str,
    /// `--retry-errors`: a `stack_error` outcome is replaced.
    replace_errors: bool,
    /// Leased: the accounts held, each let go once stored.
    held: Held,
}

impl<'a> WriteTarget<'a> {
    fn new(store: &'a Store, run_id: &'a str, options: &'a RunnerOptions, held: Held) -> Self {
        WriteTarget {
            store,
            run_id,
            writer: &options.writer,
            replace_errors: options.retry_errors,
            held,
        }
    }
}

async fn store_outcomes(
    target: &WriteTarget<'_>,
    mut receiver: mpsc::Receiver<AccountOutcome>,
    progress: Progress,
) -> anyhow::Result<u64> {
    let WriteTarget {
        store,
        run_id,
        writer,
        replace_errors,
        held,
    } = target;
    let mut written = 0u64;
    let mut batch = Vec::with_capacity(WRITE_BATCH_MAX);
    loop {
        let first = receiver.recv().await;
        let Some(first) = first else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + WRITE_DELAY_MAX;
        while batch.len() < WRITE_BATCH_MAX {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(o)) => batch.push(o),
                Ok(None) | Err(_) => break,
            }
        }
        written += store
            .record(run_id, writer, &batch, *replace_errors)
            .await?;
        {
            let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
            for o in &batch {
                held.remove(&o.account_id);
            }
        }
        progress.add(&batch);
        batch.clear();
    }
    Ok(written)
}

/// Compares one account's two bills into an outcome.
pub(crate) fn judge(
    account: &AccountRequest,
    legacy: FetchResult,
    modern: FetchResult,
    config: &CompareConfig,
) -> AccountOutcome {
    let (legacy, modern) = match (legacy, modern) {
        (Ok(l), Ok(m)) => (l, m),
        (l, m) => {
            let retries = u64::from(l.as_ref().map_or_else(|f| f.retries, |f| f.retries))
                + u64::from(m.as_ref().map_or_else(|f| f.retries, |f| f.retries));
            let mut messages = Vec::new();
            if let Err(f) = &l {
                messages.push(format!("legacy: {}", f.message));
            }
            if let Err(f) = &m {
                messages.push(format!("modern: {}", f.message));
            }
            let error = messages.join("; ");
            return AccountOutcome {
                account_id: account.account_id.clone(),
                partition: account.partition.clone(),
                region: account.region.clone(),
                status: OutcomeStatus::StackError,
                diffs: vec![stack_error(account, &error)],
                diffs_failing: 1,
                waived: 0,
                lines_legacy: 0,
                lines_modern: 0,
                lines_matched: 0,
                lines_mismatched: 0,
                retries,
                error,
                totals: Vec::new(),
                evidence: None,
                customers: Vec::new(),
            };
        }
    };
    // A customer's accounts may be in other batches or other workers: its totals are
    // stored with the account's outcome and compared once the run's accounts are all in.
    let (comparison, customers) = compare_deferring_customers(&legacy.lines, &modern.lines, config);
    let s = &comparison.summary;
    let status = if s.diffs_failing == 0 {
        OutcomeStatus::Parity
    } else {
        OutcomeStatus::Mismatch
    };
    let mut totals: BTreeMap<_, (Decimal, Decimal)> = BTreeMap::new();
    for line in legacy.lines.lines() {
        totals.entry(line.currency()).or_default().0 += line.amount();
    }
    for line in modern.lines.lines() {
        totals.entry(line.currency()).or_default().1 += line.amount();
    }
    let evidence = (status == OutcomeStatus::Mismatch)
        .then(|| (bill_body(&legacy.lines), bill_body(&modern.lines)));
    AccountOutcome {
        account_id: account.account_id.clone(),
        partition: account.partition.clone(),
        region: account.region.clone(),
        status,
        diffs_failing: s.diffs_failing,
        waived: s.waived,
        lines_legacy: s.lines_legacy,
        lines_modern: s.lines_modern,
        lines_matched: s.lines_matched,
        lines_mismatched: s.lines_mismatched,
        retries: u64::from(legacy.retries) + u64::from(modern.retries),
        error: String::new(),
        totals: totals.into_iter().map(|(c, (l, m))| (c, l, m)).collect(),
        evidence,
        customers,
        diffs: comparison.diffs,
    }
}

fn stack_error(account: &AccountRequest, message: &str) -> Diff {
    Diff {
        account_id: Some(account.account_id.clone()),
        key: billshadow_comparisons::Fields::from([
            ("period_start", &account.period_start),
            ("period_end", &account.period_end),
        ]),
        customer_id: (!account.customer_id.is_empty()).then(|| account.customer_id.clone()),
        partition: Some(account.partition.clone()),
        region: Some(account.region.clone()),
        detail: Some(message.to_owned()),
        ..Diff::new(DiffClass::StackError, Scope::Account)
    }
}

/// A progress bar with rate and ETA on a terminal; a log line every few seconds otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    state: Arc<std::sync::Mutex<ProgressState>>,
}

struct ProgressState {
    done: u64,
    total: u64,
    mismatched: u64,
    errored: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    fn new(enabled: bool, total: u64, done: u64) -> Progress {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} accounts  {per_sec}  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(done);
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            state: Arc::new(std::sync::Mutex::new(ProgressState {
                done,
                total,
                mismatched: 0,
                errored: 0,
                started: now,
                last_log: now,
            })),
        }
    }

    fn add(&self, outcomes: &[AccountOutcome]) {
        let Ok(mut s) = self.state.lock() else { return };
        s.done += outcomes.len() as u64;
        s.mismatched += outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::Mismatch)
            .count() as u64;
        s.errored += outcomes
            .iter()
            .filter(|o| o.status == OutcomeStatus::StackError)
            .count() as u64;
        if let Some(bar) = &self.bar {
            bar.set_position(s.done);
            bar.set_message(format!(
                "{} mismatched, {} stack errors",
                s.mismatched, s.errored
            ));
        } else if s.last_log.elapsed() >= Duration::from_secs(5) {
            s.last_log = Instant::now();
            let rate = s.done as f64 / s.started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                done = s.done,
                total = s.total,
                mismatched = s.mismatched,
                stack_errors = s.errored,
                "{:.0} accounts/s",
                rate
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
