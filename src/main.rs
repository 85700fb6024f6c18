//! billshadow: compare a legacy and a modern billing stack to the cent.
//!
//! The binary is thin: argument parsing, wiring the library crates together, and mapping
//! every failure to the documented exit codes in one place (`exit.rs`).

mod cli;
mod diff_cmd;
mod exit;
mod generate;
mod output;
mod spec;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Diff(args) => diff_cmd::run(args),
        cli::Command::CheckSpec(args) => diff_cmd::check_spec(args),
        cli::Command::Formats => diff_cmd::formats(),
        cli::Command::Generate(cli::Generate::Pair(args)) => generate::run_pair(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            failure.code.into()
        }
    }
}
