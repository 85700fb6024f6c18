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
mod output;
mod report;
mod run;
mod spec;
mod store;
mod support;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BILLSHADOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    exit::finish(cli::dispatch(cli.command))
}
