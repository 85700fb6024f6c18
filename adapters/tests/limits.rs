//! Limits of the file adapter: a file's size is a hint, never a promise of memory.

use billshadow_adapters::{Catalog, ReadOptions, read_from};

#[test]
fn a_huge_size_hint_reserves_a_bounded_amount() {
    let catalog = Catalog::builtin().unwrap();
    let mapping = catalog.get("canonical").unwrap();
    let text = "account_id,period_start,period_end,charge_code,amount,currency\na,2026-10-01,2026-10-31,x,1.00,USD\n";
    // A 30 GB hint (a file's metadata) for a small reader: reserving it would abort.
    let (store, stats) = read_from(
        "big.csv",
        text.as_bytes(),
        30 << 30,
        mapping,
        ReadOptions::default(),
    )
    .unwrap();
    assert_eq!((store.len(), stats.lines), (1, 1));
}
