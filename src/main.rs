//! billshadow: compare a legacy and a modern billing stack to the cent.
//!
//! The binary is thin: argument parsing, wiring the library crates together, and mapping
//! every failure to the documented exit codes in one place (`exit.rs`).

mod cli;
mod cohort;
mod controller;
mod demo;
mod diff_cmd;
mod exit;
mod generate;
mod metrics_server;
mod output;
mod report_cmd;
mod run_cmd;
mod run_report;
mod runner;
mod sample;
mod spec;
mod stack_spec;
mod store;

use std::process::ExitCode;

use clap::Parser;

/// `migrate`: the controller opens the store with `Store::open`, which grants the access this
/// subcommand needs: `init` creates the store, the commands that change cells need one that
/// exists, and `status`, `plan`, `gate`, `routes` and `audit` only read it.
pub(crate) fn migrate(args: cli::MigrateArgs) -> exit::Outcome {
    store::set_default_access(store::Access::for_migrate(&args.command));
    controller::run(args)
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BILLSHADOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let result = match cli.command {
        cli::Command::Diff(args) => diff_cmd::run(args),
        cli::Command::Run(args) => run_cmd::run(args),
        cli::Command::Runs(args) => run_cmd::runs(args),
        cli::Command::Show(args) => run_cmd::show(args),
        cli::Command::Demo(args) => demo::run(args),
        cli::Command::Migrate(args) => migrate(args),
        cli::Command::Report(args) => report_cmd::report(args),
        cli::Command::Explain(args) => report_cmd::explain(args),
        cli::Command::Metrics(args) => report_cmd::metrics(args),
        cli::Command::Generate(cli::Generate::Cohort(args)) => sample::run_cohort(args),
        cli::Command::CheckSpec(args) => diff_cmd::check_spec(args),
        cli::Command::Formats => diff_cmd::formats(),
        cli::Command::Generate(cli::Generate::Pair(args)) => generate::run_pair(args),
    };
    exit::finish(result)
}
