//! `billshadow migrate`: the migration controller's commands.

use crate::args::MigrateArgs;
use crate::exit::Outcome;
use crate::store;

/// The controller opens the store with the access this subcommand needs (no process-wide mode): `init` creates the
/// store, the commands that change cells need one that exists, and `status`, `plan`, `gate`,
/// `routes` and `audit` only read it.
pub(crate) fn migrate(args: MigrateArgs) -> Outcome {
    let access = store::Access::for_migrate(&args.command);
    crate::controller::run(args, access)
}
