//! `completions` and `man`: shell completions and manual pages generated from the clap
//! definitions in `args.rs`, so they can never disagree with `--help`.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs, ManArgs};
use crate::exit::{Code, Outcome, input};

/// Prints the completion script of `args.shell` on standard output.
pub(crate) fn completions(args: CompletionsArgs) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "billshadow", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("cannot write to standard output")?;
    Ok(Code::Parity)
}

/// Writes one roff page per command into `args.out`: `billshadow.1`, `billshadow-diff.1`,
/// `billshadow-migrate-gate.1`, …
pub(crate) fn man(args: ManArgs) -> Outcome {
    let dir = &args.out;
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))
        .map_err(input)?;
    let pages = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
                .count()
        })
        .unwrap_or(0);
    crate::outln!("{pages} manual pages in {}", dir.display());
    Ok(Code::Parity)
}
