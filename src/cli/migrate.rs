//! `billshadow migrate`: the migration controller's commands.

use crate::args::MigrateArgs;
use crate::exit::Outcome;
use crate::store;

/// The controller opens the store with the access this subcommand needs: `init` creates the
/// store, the commands that change cells need one that exists, and `status`, `plan`, `gate`,
/// `routes` and `audit` only read it.
pub(crate) fn migrate(args: MigrateArgs) -> Outcome {
    store::set_default_access(store::Access::for_migrate(&args.command));
    crate::controller::run(args)
}
