//! Where billshadow's bills come from.
//!
//! Files (canonical CSV, JSON lines, JSON documents) read through format mappings, with a
//! catalog of mappings shipped as data; and live stacks (`live`): commands, HTTP services and
//! SQL queries whose output is read through the same mappings. Adapters only read; they never
//! write to a stack.

pub mod catalog;
pub mod file;
pub mod guard;
pub mod limits;
pub mod lines;
pub mod live;
pub mod location;
pub mod mapping;
pub mod redact;

pub use catalog::{Catalog, FormatRef};
pub use file::{
    Head, Input, ReadError, ReadOptions, ReadStats, RowError, STDIN_ORIGIN, Spill, input_head,
    read_from, read_input, read_path,
};
pub use location::TomlError;
pub use mapping::Mapping;
