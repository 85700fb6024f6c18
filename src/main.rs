//! billshadow: compare a legacy and a modern billing stack to the cent.
//!
//! The binary is thin: argument parsing, wiring the library crates together, and mapping
//! every failure to the documented exit codes in one place (`exit.rs`);
//! `cli` runs the commands, over the capabilities each folder names (see ARCHITECTURE.md).

mod actor;
mod args;
mod cell;
mod cli;
mod controller;
mod demo;
mod exit;
mod outofcore;
mod output;
mod report;
mod run;
mod shard;
mod spec;
mod store;
mod support;
mod versions;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = args::Cli::parse();
    output::set_global(cli.global.color, cli.global.quiet);
    logging(&cli.global);
    exit::finish(cli::dispatch(cli.command))
}

/// glibc gives threads that allocate at once arenas of their own (up to eight per core) and
/// keeps what is freed in each: a long run's memory then creeps up with its store's
/// connection threads (20 % from 20 k to 5 M accounts on SQLite). Two arenas keep it flat.
/// `MALLOC_ARENA_MAX`, when set, wins. Called first, before any thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a glibc tunable; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// Log lines on standard error: `BILLSHADOW_LOG` when set, else by `-q` / `-v`; ANSI colour
/// only where `output::stderr_colour` allows (never in a file); text or JSON lines.
fn logging(global: &args::GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "info,billshadow=debug,billshadow_adapters=debug,billshadow_reports=debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BILLSHADOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match global.log_format {
        args::LogFormat::Text => builder.with_ansi(output::stderr_colour()).init(),
        args::LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
