//! The end-to-end tests: one binary, a module per area, one harness (`support/`).
//!
//! Every module runs the real `billshadow` binary (and the sample stacks) as child processes
//! on real files, real SQLite stores, a real PostgreSQL server, test stacks on 127.0.0.1 and a
//! real headless Chromium. One binary means the harness is compiled once and every helper is
//! used somewhere, and the tests share one process: one open-files limit, one set of threads
//! (see `support::raise_open_files_limit`).
//!
//! `cargo test --test integration MODULE::` runs one area, e.g. `cargo test --test integration
//! diff::`.

mod support;

mod architecture;
mod bad_input;
mod causes;
mod ci_kit;
mod cli;
mod diff;
mod inputs;
mod limits;
mod migrate;
mod monitoring;
mod out_of_core;
mod real_formats;
mod report;
mod run;
mod serve;
mod stack_versions;
mod store_history;
mod workers;
