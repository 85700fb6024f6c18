//! The commands: each module turns parsed arguments (`args`) into work done by the
//! capabilities (`run`, `report`, `controller`, `demo`, `spec`, `store`) and an exit code.
//! Commands call capabilities, never each other's helpers; `demo` composes commands.

mod demo;
mod diff;
mod docs;
mod migrate;
mod read_progress;
mod report;
mod run;

use crate::args::{Command, Generate};
use crate::exit::Outcome;

/// Runs one command.
pub(crate) fn dispatch(command: Command) -> Outcome {
    match command {
        Command::Diff(args) => diff::run(args),
        Command::Run(args) => run::run(args),
        Command::Runs(args) => run::runs(args),
        Command::Show(args) => run::show(args),
        Command::Demo(args) => demo::run(args),
        Command::Migrate(args) => migrate::migrate(args),
        Command::Report(args) => report::report(args),
        Command::Explain(args) => report::explain(args),
        Command::Causes(args) => report::causes(args),
        Command::Compare(args) => report::compare(args),
        Command::Metrics(args) => report::metrics(args),
        Command::Serve(args) => report::serve(args),
        Command::Generate(Generate::Cohort(args)) => crate::demo::sample::run_cohort(args),
        Command::Generate(Generate::Pair(args)) => crate::demo::generate::run_pair(args),
        Command::CheckSpec(args) => diff::check_spec(args),
        Command::Formats => diff::formats(),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}
