//! `billshadow demo`: the whole loop on the sample stacks, in one command: a cohort with
//! usage, a run through the sample legacy batch program and modern HTTP service, the
//! migration controller over the run, and the dashboard.

use anyhow::Context;

use crate::args::{DemoArgs, RunArgs, TableFormat};
use crate::demo;
use crate::exit::{Code, Outcome, input};

pub(crate) fn run(args: DemoArgs) -> Outcome {
    let legacy = demo::sample_binary("billshadow-sample-legacy").map_err(input)?;
    let modern = demo::sample_binary("billshadow-sample-modern").map_err(input)?;
    let dir = &args.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(input)?;
    let store = dir.join("billshadow.db");
    refuse_to_replace_runs(&store, args.force)?;
    for stale in ["billshadow.db", "billshadow.db-wal", "billshadow.db-shm"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    crate::note!(
        "demo: generating {} accounts in {} …",
        args.accounts,
        dir.display()
    );
    demo::sample::write_cohort(dir, args.accounts, args.seed).map_err(input)?;
    let port = demo::free_port().map_err(input)?;
    let spec = demo::write_spec(dir, &legacy, &modern, port).map_err(input)?;
    crate::note!(
        "demo: shadow-running them through the legacy batch program and the modern HTTP service …"
    );
    let started = std::time::Instant::now();
    let run = demo_run(spec, dir, &store);
    let code = super::run::run(run)?;
    if code == Code::Interrupted {
        // The run stopped before its verdict: nothing for the controller to judge yet.
        crate::note!(
            "demo: the run was interrupted; it can be finished with `billshadow run --resume`"
        );
        return Ok(code);
    }
    let policy = dir.join("policy.toml");
    let keys = demo_keys(dir).map_err(input)?;
    std::fs::write(
        &policy,
        format!("{}{}", demo::DEMO_POLICY, keys.policy_tables),
    )
    .with_context(|| format!("cannot write {}", policy.display()))
    .map_err(input)?;
    crate::outln!();
    crate::outln!(
        "demo: the migration controller over this run ({}):",
        policy.display()
    );
    let migrate = |command: crate::args::MigrateCommand| {
        super::migrate::migrate(crate::args::MigrateArgs {
            command,
            policy: policy.clone(),
            store: Some(store.display().to_string()),
            actor: Some("demo".to_owned()),
            now: None,
            format: crate::args::MigrateFormat::Text,
            controller_key: Some(keys.controller.clone()),
        })
    };
    migrate(crate::args::MigrateCommand::Init)?;
    // Every cell starts shadowing (no gate: customers see nothing), then the gate decides.
    for _ in 0..2 {
        migrate(crate::args::MigrateCommand::Advance {
            cell: None,
            all: true,
            to: None,
            signing: crate::args::Signing::default(),
        })?;
    }
    let html = dir.join("report.html");
    super::report::report(crate::args::ReportArgs {
        run: "latest".to_owned(),
        format: crate::args::ReportFormat::Html,
        out: Some(html.clone()),
        store: Some(store.display().to_string()),
        policy: Some(policy.clone()),
        template: None,
    })?;
    let seconds = started.elapsed().as_secs_f64();
    next_steps(dir, &store, &html, args.accounts, seconds);
    // The demo succeeds when the run completed; its verdict (mismatches, by design) is above.
    Ok(if code == Code::Stack {
        Code::Stack
    } else {
        Code::Parity
    })
}

/// What the demo did, and the commands to look deeper.
fn next_steps(
    dir: &std::path::Path,
    store: &std::path::Path,
    html: &std::path::Path,
    accounts: u32,
    seconds: f64,
) {
    let store_arg = store.display();
    crate::outln!();
    crate::outln!(
        "demo: {} accounts shadow-run in {seconds:.1} s; the seeded defects of the modern stack show above, per partition and region.",
        accounts
    );
    crate::outln!("The dashboard: {}", html.display());
    crate::outln!("Everything is in {}. To look deeper:", dir.display());
    crate::outln!(
        "  billshadow show latest --store {store_arg}                 # this summary again"
    );
    crate::outln!(
        "  billshadow show latest --store {store_arg} --format json   # every diff, as JSON"
    );
    crate::outln!(
        "  billshadow causes latest --store {store_arg}               # the diffs grouped by cause"
    );
    crate::outln!("  billshadow runs --store {store_arg}");
    crate::outln!(
        "  billshadow explain ACCOUNT --store {store_arg}                # one account's two bills side by side"
    );
    let policy = dir.join("policy.toml");
    crate::outln!(
        "  billshadow migrate status --policy {} --store {store_arg}",
        policy.display()
    );
    crate::outln!(
        "  billshadow migrate audit --verify --policy {} --store {store_arg}   # signed by {}",
        policy.display(),
        dir.join("keys/controller").display()
    );
    crate::outln!(
        "  billshadow run --spec {} --cohort {} --store {store_arg}   # run it again",
        dir.join("spec.toml").display(),
        dir.join("cohort.csv").display()
    );
}

/// The demo's keys, in `DIR/keys/`: the controller's (it signs the audit log) and two
/// approvers'. Kept when they exist, so a rerun keeps its policy's keys.
struct DemoKeys {
    controller: std::path::PathBuf,
    /// `[[approvers]]` and `[audit]`, appended to the demo policy.
    policy_tables: String,
}

fn demo_keys(dir: &std::path::Path) -> anyhow::Result<DemoKeys> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).with_context(|| format!("cannot create {}", keys.display()))?;
    let public = |name: &str| -> anyhow::Result<String> {
        let path = keys.join(name);
        if !path.exists() {
            crate::controller::keys::generate(&path, &format!("{name}@billshadow-demo"))?;
        }
        let public = keys.join(format!("{name}.pub"));
        Ok(std::fs::read_to_string(&public)
            .with_context(|| format!("cannot read {}", public.display()))?
            .trim()
            .to_owned())
    };
    let mut tables =
        String::from("\n# Who may approve a step (and sign one that needs approvals), by key.\n");
    for name in ["alice", "bob"] {
        tables.push_str(&format!(
            "[[approvers]]\nname = \"{name}\"\nkey = \"{}\"\n\n",
            public(name)?
        ));
    }
    tables.push_str(&format!(
        "# The controller signs every audit record with the private half (keys/controller).\n[audit]\npublic_key = \"{}\"\n",
        public("controller")?
    ));
    Ok(DemoKeys {
        controller: keys.join("controller"),
        policy_tables: tables,
    })
}

/// A store in the demo's folder that holds runs is deleted only with `--force`: they may be
/// runs the user made there, not the last demo's.
fn refuse_to_replace_runs(
    store: &std::path::Path,
    force: bool,
) -> Result<(), crate::exit::Failure> {
    if force || !store.exists() {
        return Ok(());
    }
    let url = store.display().to_string();
    let runs = crate::support::runtime()?.block_on(async {
        let store = crate::store::Store::open_with(&url, crate::store::Access::ReadOnly).await?;
        let runs = store.runs().await?.len();
        store.close().await;
        anyhow::Ok(runs)
    });
    match runs {
        Ok(0) => Ok(()),
        Ok(n) => Err(crate::usage!(
            "{url} already holds {n} run(s): `billshadow demo --force` deletes them and starts again, `--dir` picks another folder"
        )
        .into()),
        Err(e) => Err(crate::usage!(
            "{url} is there but does not open as a run store ({e:#}): `billshadow demo --force` replaces it"
        )
        .into()),
    }
}

/// The demo's run: its spec and cohort, its own store.
fn demo_run(spec: std::path::PathBuf, dir: &std::path::Path, store: &std::path::Path) -> RunArgs {
    RunArgs {
        spec: Some(spec),
        cohort: Some(dir.join("cohort.csv")),
        store: Some(store.display().to_string()),
        concurrency: 512,
        resume: None,
        join: None,
        run_id: None,
        shard: None,
        lease: 120,
        retry_errors: false,
        calibrate: false,
        as_of: None,
        format: TableFormat::Text,
        limit: 5,
        no_progress: false,
    }
}
