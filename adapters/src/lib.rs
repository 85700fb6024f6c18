//! Where billshadow's bills come from.
//!
//! Today: files (canonical CSV, JSON lines, JSON documents) read through format mappings,
//! with a catalog of mappings shipped as data. Adapters only read; they never write to a
//! stack.

pub mod catalog;
pub mod file;
pub mod location;
pub mod mapping;

pub use catalog::{Catalog, FormatRef};
pub use file::{ReadError, ReadOptions, ReadStats, RowError, read_from, read_path};
pub use location::TomlError;
pub use mapping::Mapping;
