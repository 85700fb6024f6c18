//! `billshadow diff`, `check-spec` and `formats`: offline comparison of two exports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use anyhow::{Context, anyhow};
use billshadow_adapters::{Catalog, FormatRef, Input, Mapping, ReadOptions, ReadStats, Spill};
use billshadow_comparisons::{Causes, KeyField, LineStore, Verdict, compare_with_threads};
use billshadow_reports::{Inputs, SideInput};

use crate::args::{CheckSpecArgs, DiffArgs, OutputFormat};
use crate::exit::{Code, Outcome, input};
use crate::outofcore;
use crate::output::Destination;
use crate::spec::Spec;

/// One side, resolved: its input (standard input, or its parts) and its mapping.
struct Side {
    input: Input,
    mapping: Mapping,
}

/// The comparison's causes, after the waivers that name a signature are applied (the causes
/// are then counted again, since their failing diffs changed; their ids do not).
fn causes_of(
    comparison: &mut billshadow_comparisons::Comparison,
    config: &billshadow_comparisons::CompareConfig,
) -> Causes {
    let mut causes = if std::env::var("BILLSHADOW_SKIP_SIGNATURES").as_deref() == Ok("1") {
        Causes::default()
    } else {
        Causes::of(&comparison.diffs)
    };
    let waived = comparison.waive_by_signature(&causes, &config.waivers, config.today);
    if !waived.waived.is_empty() {
        causes = Causes::of(&comparison.diffs);
    }
    causes
}

pub(crate) fn run(args: DiffArgs) -> Outcome {
    // How long reading and comparing took: the JUnit report's time.
    let started = std::time::Instant::now();
    let catalog = Catalog::builtin()?;
    let spec = match &args.spec {
        Some(path) => Spec::load(path)?,
        None => Spec::empty(),
    };
    let today = args
        .as_of
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let legacy = resolve_side(
        "legacy",
        &args.legacy,
        args.legacy_format.as_deref(),
        &spec.legacy,
        &catalog,
        false,
    )?;
    let modern = resolve_side(
        "modern",
        &args.modern,
        args.modern_format.as_deref(),
        &spec.modern,
        &catalog,
        legacy.input.is_stdin(),
    )?;
    // Before reading: a spec that cannot say how lines are matched is refused at once.
    let config = spec.config(today, &legacy.mapping, &modern.mapping)?;

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let temp_root = args.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let swept = outofcore::temp::sweep_leftovers(&temp_root);
    if swept > 0 {
        crate::note!(
            "removed {swept} temporary directories of killed diffs under {}",
            temp_root.display()
        );
    }
    let plan = outofcore::Plan::new(
        args.memory_limit.unwrap_or_else(outofcore::default_limit),
        outofcore::estimate([&legacy.input, &modern.input]),
    );
    // Removed when this function returns, whichever way.
    let scratch = outofcore::temp::Scratch::new(&temp_root);
    let (mut comparison, [legacy_stats, modern_stats], quarantined) =
        read_merged_or_compare(&args, [&legacy, &modern], &config, &plan, &scratch, threads)?;
    // Rows left out make the comparison incomplete, whatever the compared rows say.
    for stats in [&legacy_stats, &modern_stats] {
        comparison.summary.leave_out(
            stats.bad_rows,
            stats.bad_rows_money.iter().map(|(c, a)| (*c, *a)),
            stats.bad_rows_unpriced,
        );
    }

    let inputs = Inputs {
        legacy: side_input(&legacy, &legacy_stats),
        modern: side_input(&modern, &modern_stats),
        quarantine: quarantined.then(|| args.quarantine.display().to_string()),
    };
    // The causes: a pass over the diffs only, never the lines. Waivers that name a
    // signature apply once the signatures are known; the causes are then counted again, since
    // their failing diffs changed (their ids do not). BILLSHADOW_SKIP_SIGNATURES=1 leaves them
    // out, only to measure what they cost (BENCHMARKS.md); not a user option.
    let causes = causes_of(&mut comparison, &config);
    let mut out = Destination::open(args.out.as_deref())?;
    let written = write_report(
        &args,
        &mut out,
        &inputs,
        &comparison,
        &causes,
        started.elapsed(),
    );
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write the report").map_err(input)?,
    }
    out.finish()?;
    if let Some(path) = &args.out {
        crate::note!(
            "{}: {} ({} failing diffs)",
            path.display(),
            comparison.summary.verdict,
            comparison.summary.diffs_failing
        );
    }
    Ok(verdict_code(comparison.summary.verdict))
}

/// The exit code of a diff's verdict: rows left out (incomplete) are an input problem that
/// prevented a verdict, never a pass.
fn verdict_code(verdict: Verdict) -> Code {
    match verdict {
        Verdict::Parity => Code::Parity,
        Verdict::Mismatch => Code::Mismatch,
        Verdict::Incomplete => Code::Input,
    }
}

/// A side's input (the names on the command line, else the spec's path) and its mapping.
/// Standard input (`-`) may be one side only: `other_stdin` says the other side took it.
fn resolve_side(
    name: &str,
    paths: &[PathBuf],
    format: Option<&str>,
    spec: &crate::spec::SideSpec,
    catalog: &Catalog,
    other_stdin: bool,
) -> Result<Side, crate::exit::Failure> {
    let names: Vec<PathBuf> = if paths.is_empty() {
        spec.path.clone().into_iter().collect()
    } else {
        paths.to_vec()
    };
    if names.is_empty() {
        return Err(crate::usage!(
            "no {name} file: pass --{name} PATH or set `path` under [{name}] in the spec"
        )
        .into());
    }
    if other_stdin && names.iter().any(|n| n.as_os_str() == "-") {
        return Err(crate::usage!(
            "`-` (standard input) can be one side only; the legacy side already reads it"
        )
        .into());
    }
    let source = Input::resolve(&names)
        .with_context(|| format!("the {name} input"))
        .map_err(input)?;
    let format = format
        .map(str::to_owned)
        .or_else(|| spec.format.clone())
        .unwrap_or_else(|| "canonical".to_owned());
    let mapping = find_mapping_for(&format, &source, catalog).map_err(input)?;
    Ok(Side {
        input: source,
        mapping,
    })
}

/// The mapping a format names: built in, detected from the input (`auto`), or a mapping file.
fn find_mapping_for(format: &str, source: &Input, catalog: &Catalog) -> anyhow::Result<Mapping> {
    match FormatRef::parse(format, catalog) {
        FormatRef::Builtin(name) => Ok(catalog
            .get(&name)
            .cloned()
            .context("catalog entry vanished")?),
        FormatRef::Auto => {
            let found = catalog.detect_input(source)?;
            let mapping = found.ok_or_else(|| {
                anyhow!(
                    "{}: no catalog format recognises this file's header; name one with --legacy-format/--modern-format ({})",
                    source.name(),
                    catalog.names().collect::<Vec<_>>().join(", ")
                )
            })?;
            crate::note!("{}: detected format `{}`", source.name(), mapping.name);
            Ok(mapping.clone())
        }
        FormatRef::File(file) => {
            if !file.is_file() {
                anyhow::bail!(
                    "`{format}` is neither a catalog format ({}) nor a mapping file",
                    catalog.names().collect::<Vec<_>>().join(", ")
                );
            }
            Ok(Mapping::from_file(&file)?)
        }
    }
}

type SideRead = (Result<LineStore, crate::exit::Failure>, ReadStats, Vec<u8>);

fn read_side(
    side: &Side,
    max_bad_rows: u64,
    threads: usize,
    progress: Arc<AtomicU64>,
    spill: &mut dyn billshadow_adapters::Spill,
) -> SideRead {
    let mut quarantine = Vec::new();
    let options = ReadOptions {
        max_bad_rows,
        quarantine: Some(&mut quarantine),
        // Each side is read on a thread of its own; the threads beyond those two convert
        // records.
        workers: threads.saturating_sub(2) / 2,
        batch_records: 0,
        spill: Some(spill),
    };
    match billshadow_adapters::read_input(&side.input, &side.mapping, options, Some(progress)) {
        Ok((store, stats)) => (Ok(store), stats, quarantine),
        Err(e) => (Err(e.into()), ReadStats::default(), quarantine),
    }
}

/// A comparison, each side's read, and whether rows were quarantined.
type Compared = (billshadow_comparisons::Comparison, [ReadStats; 2], bool);

/// Reads and compares both sides the fastest way that gives the same report: merged as they
/// come when declared ordered, or when too large for memory while they come ordered
/// (started again, partitioned, at the first line out of order); else in memory or
/// partitioned (`read_and_compare`).
fn read_merged_or_compare(
    args: &DiffArgs,
    sides: [&Side; 2],
    config: &billshadow_comparisons::CompareConfig,
    plan: &outofcore::Plan,
    scratch: &outofcore::temp::Scratch,
    threads: usize,
) -> Result<Compared, crate::exit::Failure> {
    use outofcore::ordered::Order;
    let order = if args.sorted_by_account {
        Some(Order::Declared)
    } else if plan.likely_spills() {
        // Files only: standard input, which cannot be read twice, has no size to tell.
        Some(Order::Detect)
    } else {
        None
    };
    if let Some(order) = order {
        match read_and_merge(args, sides, config, plan, scratch, threads, order)? {
            Merged::Done(compared) => {
                if order == Order::Detect {
                    crate::note!(
                        "both inputs came ordered by account: merged in one pass, no partition file"
                    );
                }
                return Ok(*compared);
            }
            Merged::NotOrdered(place) => crate::note!(
                "{place}: the inputs are not ordered by account; reading them again to diff them partitioned"
            ),
        }
    }
    read_and_compare(args, sides, config, plan, scratch, threads)
}

/// Reads both sides (at once, a thread each) and compares them: in memory when their lines
/// fit the plan's batches, else partition by partition out of core (`outofcore`).
fn read_and_compare(
    args: &DiffArgs,
    [legacy, modern]: [&Side; 2],
    config: &billshadow_comparisons::CompareConfig,
    plan: &outofcore::Plan,
    scratch: &outofcore::temp::Scratch,
    threads: usize,
) -> Result<Compared, crate::exit::Failure> {
    let progress = read_progress([legacy, modern]);
    let mut legacy_parts = outofcore::Partitioner::new(scratch, plan, "legacy");
    let mut modern_parts = outofcore::Partitioner::new(scratch, plan, "modern");
    let ((legacy_store, legacy_stats, legacy_bad), (modern_store, modern_stats, modern_bad)) =
        std::thread::scope(|scope| {
            let max = args.max_bad_rows;
            let counter = progress.counter();
            let parts = &mut legacy_parts;
            let l = scope.spawn(move || read_side(legacy, max, threads, counter, parts));
            let m = read_side(modern, max, threads, progress.counter(), &mut modern_parts);
            (l.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), m)
        });
    progress.finish();
    let (legacy_store, modern_store) = (legacy_store?, modern_store?);
    let quarantined = write_quarantine(&args.quarantine, &legacy_bad, &modern_bad)?;
    if !legacy_parts.spilled() && !modern_parts.spilled() {
        let comparison = compare_with_threads(&legacy_store, &modern_store, config, threads);
        return Ok((comparison, [legacy_stats, modern_stats], quarantined));
    }
    crate::note!(
        "the inputs need more than --memory-limit {}: diffing them in {} partitions under {}",
        outofcore::human(plan.limit),
        plan.partitions,
        scratch
            .dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    );
    let legacy_ordered = legacy_parts.finish(&legacy_store);
    drop(legacy_store);
    let modern_ordered = modern_parts.finish(&modern_store);
    drop(modern_store);
    let ordered = legacy_ordered.map_err(input)? && modern_ordered.map_err(input)?;
    let comparison =
        outofcore::compare_partitions(scratch, plan, config, threads).map_err(input)?;
    if ordered {
        crate::note!(
            "both inputs came ordered by account: --sorted-by-account would merge them in one pass, no partition file"
        );
    }
    Ok((comparison, [legacy_stats, modern_stats], quarantined))
}

/// Bytes per second and the time left on a terminal, for reads that take a while.
fn read_progress([legacy, modern]: [&Side; 2]) -> super::read_progress::ReadProgress {
    let total = legacy
        .input
        .stored_bytes()
        .zip(modern.input.stored_bytes())
        .map(|(l, m)| l + m);
    super::read_progress::ReadProgress::start(total)
}

/// What an ordered merge gave: the comparison, or, while the order was being detected, where
/// a side's lines came out of order (nothing kept: what it wrote is overwritten or removed).
enum Merged {
    Done(Box<Compared>),
    NotOrdered(String),
}

/// Reads both sides (a thread each) and merges them as they come: `--sorted-by-account`
/// (`Order::Declared`), or files too large for memory while they come ordered
/// (`Order::Detect`).
fn read_and_merge(
    args: &DiffArgs,
    [legacy, modern]: [&Side; 2],
    config: &billshadow_comparisons::CompareConfig,
    plan: &outofcore::Plan,
    scratch: &outofcore::temp::Scratch,
    threads: usize,
    order: outofcore::ordered::Order,
) -> Result<Merged, crate::exit::Failure> {
    let progress = read_progress([legacy, modern]);
    let (legacy_to, legacy_from) = std::sync::mpsc::sync_channel(1);
    let (modern_to, modern_from) = std::sync::mpsc::sync_channel(1);
    let halt = std::sync::atomic::AtomicBool::new(false);
    let read = &|side: &Side,
                 name: &'static str,
                 to_merge: std::sync::mpsc::SyncSender<billshadow_comparisons::LineStore>,
                 counter: Arc<AtomicU64>| {
        let mut feeder =
            outofcore::ordered::Feeder::new(name, side.input.name(), plan, to_merge, &halt, order);
        let (store, stats, bad) = read_side(side, args.max_bad_rows, threads, counter, &mut feeder);
        // The last batch, still in the store.
        let rest = store.and_then(|store| {
            feeder
                .spill(&store)
                .map_err(|e| input(billshadow_adapters::ReadError::Spill(e)).into())
        });
        if rest.is_err() && !feeder.stopped() {
            // Before the feeder (and its channel) is dropped, so that the merge never takes
            // this side for finished.
            feeder.halt_all();
        }
        let disorder = feeder.disorder();
        (
            rest.map_err(|e| (e, feeder.stopped())),
            stats,
            bad,
            disorder,
        )
    };
    let (
        merged,
        (legacy_read, legacy_stats, legacy_bad, legacy_disorder),
        (modern_read, modern_stats, modern_bad, modern_disorder),
    ) = std::thread::scope(|scope| {
        let (l_counter, m_counter) = (progress.counter(), progress.counter());
        let l = scope.spawn(move || read(legacy, "legacy", legacy_to, l_counter));
        let m = scope.spawn(move || read(modern, "modern", modern_to, m_counter));
        let merged = outofcore::ordered::merge(
            [legacy_from, modern_from],
            config,
            plan,
            scratch,
            threads,
            &halt,
        );
        let l = l.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let m = m.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (merged, l, m)
    });
    progress.finish();
    if let Some(place) = legacy_disorder.or(modern_disorder) {
        return Ok(Merged::NotOrdered(place));
    }
    // A read's own error first; one that only says the merge stopped, after the merge's.
    let mut stopped = None;
    for read in [legacy_read, modern_read] {
        match read {
            Err((e, false)) => return Err(e),
            Err((e, true)) => stopped = Some(e),
            Ok(()) => {}
        }
    }
    let comparison = merged.map_err(input)?;
    if let Some(e) = stopped {
        return Err(e);
    }
    let quarantined = write_quarantine(&args.quarantine, &legacy_bad, &modern_bad)?;
    Ok(Merged::Done(Box::new((
        comparison,
        [legacy_stats, modern_stats],
        quarantined,
    ))))
}

/// Writes the quarantined rows of both sides, if any; says whether it wrote.
fn write_quarantine(
    path: &Path,
    legacy: &[u8],
    modern: &[u8],
) -> Result<bool, crate::exit::Failure> {
    if legacy.is_empty() && modern.is_empty() {
        return Ok(false);
    }
    let mut file = std::fs::File::create(path)
        .with_context(|| format!("cannot create {}", path.display()))
        .map_err(input)?;
    file.write_all(legacy)
        .and_then(|()| file.write_all(modern))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
        .map_err(input)?;
    Ok(true)
}

fn side_input(side: &Side, stats: &ReadStats) -> SideInput {
    SideInput {
        path: side.input.name().to_owned(),
        format: side.mapping.name.clone(),
        records: stats.records,
        lines: stats.lines,
        filtered: stats.filtered,
        bad_rows: stats.bad_rows,
    }
}

pub(crate) fn check_spec(args: CheckSpecArgs) -> Outcome {
    let spec = Spec::load(&args.file)?;
    let catalog = Catalog::builtin()?;
    for (name, side) in [("legacy", &spec.legacy), ("modern", &spec.modern)] {
        if let Some(format) = &side.format
            && format != "auto"
            && catalog.get(format).is_none()
        {
            Mapping::from_file(Path::new(format))
                .map_err(|e| crate::usage!("[{name}] format: {e}"))?;
        }
        if let Some(path) = &side.path
            && !path.is_file()
        {
            return Err(crate::usage!(
                "{}: [{name}] path {} does not exist",
                args.file.display(),
                path.display()
            )
            .into());
        }
    }
    let key: Vec<String> = spec
        .key
        .clone()
        .unwrap_or_else(KeyField::default_key)
        .iter()
        .map(KeyField::name)
        .collect();
    let today = chrono::Utc::now().date_naive();
    let expired: Vec<&str> = spec
        .waivers
        .iter()
        .filter(|w| w.is_expired(today))
        .map(|w| w.id.as_str())
        .collect();
    crate::outln!("{}: ok", args.file.display());
    crate::outln!("  match key   {}", key.join(", "));
    let t = &spec.tolerances;
    crate::outln!(
        "  tolerance   {} per line by default, {} line-type and {} charge-code overrides; totals {}",
        t.default,
        t.by_line_type.len(),
        t.by_charge_code.len(),
        t.total
    );
    crate::outln!(
        "  waivers     {} ({} expired{})",
        spec.waivers.len(),
        expired.len(),
        if expired.is_empty() {
            String::new()
        } else {
            format!(": {}", expired.join(", "))
        }
    );
    Ok(Code::Parity)
}

pub(crate) fn formats() -> Outcome {
    let catalog = Catalog::builtin()?;
    for mapping in catalog.mappings() {
        crate::outln!("{:<22} {}", mapping.name, mapping.description);
    }
    Ok(Code::Parity)
}

/// The report in the format asked for; `elapsed` (reading and comparing) is the JUnit time.
fn write_report(
    args: &DiffArgs,
    out: &mut Destination,
    inputs: &Inputs,
    comparison: &billshadow_comparisons::Comparison,
    causes: &Causes,
    elapsed: std::time::Duration,
) -> std::io::Result<()> {
    let color = out.colour();
    match args.format {
        OutputFormat::Text => {
            let options = billshadow_reports::text::TextOptions {
                color,
                accounts_shown_max: args.limit,
                ..Default::default()
            };
            billshadow_reports::text::write_with_causes(
                out.writer(),
                &billshadow_reports::text::Header::for_inputs(inputs),
                comparison,
                Some(&billshadow_reports::causes::CausesView::from(causes)),
                None,
                options,
            )
        }
        OutputFormat::Json => {
            billshadow_reports::json::write_document(out.writer(), inputs, comparison, causes)
        }
        OutputFormat::Jsonl => {
            billshadow_reports::json::write_lines(out.writer(), inputs, comparison, causes)
        }
        OutputFormat::Md => out.writer().write_all(
            billshadow_reports::ci::diff_markdown(
                inputs,
                comparison,
                &billshadow_reports::causes::CausesView::from(causes),
            )
            .as_bytes(),
        ),
        OutputFormat::Junit => {
            let xml = billshadow_reports::ci::diff_junit(
                inputs,
                comparison,
                &billshadow_reports::causes::CausesView::from(causes),
                elapsed,
            );
            out.writer().write_all(xml.as_bytes())
        }
    }
}
