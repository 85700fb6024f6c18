//! The floor of the diff benchmarks: parses each file given with the csv crate, one after
//! the other on one thread, and looks at nothing (counts records and fields only).
//!
//! ```sh
//! cargo build --release --locked --example csv-parse
//! target/release/examples/csv-parse legacy.csv modern.csv
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut records = 0u64;
    let mut fields = 0u64;
    for path in std::env::args().skip(1) {
        let mut reader = match csv::ReaderBuilder::new()
            .buffer_capacity(1 << 16)
            .from_path(&path)
        {
            Ok(r) => r,
            Err(e) => {
                eprintln!("csv-parse: {path}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {
                    records += 1;
                    fields += record.len() as u64;
                }
                Ok(false) => break,
                Err(e) => {
                    eprintln!("csv-parse: {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!("{records} records, {fields} fields");
    ExitCode::SUCCESS
}
