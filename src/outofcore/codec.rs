//! Partition files: parsed lines, each as its source line (u32), line type (u8), currency
//! code (3 bytes), amount (`Decimal::serialize`, 16 bytes), the 17 fields' lengths (u16
//! each), then the fields' text: no parsing on the way back, and a line's place in its
//! source (file and line numbers in diffs) kept.

use std::io::{BufRead, Write};

use billshadow_comparisons::model::NewLine;
use billshadow_comparisons::{Currency, Field, Line, LineStore, LineType};
use rust_decimal::Decimal;

const FIXED: usize = 4 + 1 + 3 + 16 + 2 * Field::COUNT;

/// Appends one line to `out`.
pub(crate) fn encode(line: &Line<'_>, out: &mut impl Write) -> std::io::Result<()> {
    let mut head = [0u8; FIXED];
    head[0..4].copy_from_slice(&line.source_line().to_le_bytes());
    head[4] = LineType::ALL
        .iter()
        .position(|t| *t == line.line_type())
        .unwrap_or(0) as u8;
    let code = line.currency().code().as_bytes();
    head[5..8].copy_from_slice(&code[..3.min(code.len())]);
    head[8..24].copy_from_slice(&line.amount().serialize());
    for (i, field) in Field::ALL.into_iter().enumerate() {
        let len = u16::try_from(line.get(field).len()).unwrap_or(u16::MAX);
        head[24 + 2 * i..26 + 2 * i].copy_from_slice(&len.to_le_bytes());
    }
    out.write_all(&head)?;
    for field in Field::ALL {
        out.write_all(line.get(field).as_bytes())?;
    }
    Ok(())
}

/// The currency of a 3-byte code as written (`Currency::code`); the last one read is kept
/// in `last`, since a file repeats the same few codes. `None` for a code no currency has.
pub(crate) fn read_currency(
    code: [u8; 3],
    last: &mut Option<([u8; 3], Currency)>,
) -> Option<Currency> {
    match *last {
        Some((c, currency)) if c == code => Some(currency),
        _ => {
            let currency: Currency = std::str::from_utf8(&code).ok()?.parse().ok()?;
            *last = Some((code, currency));
            Some(currency)
        }
    }
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a temporary partition file is corrupt: {what}"),
    )
}

/// Reads the lines of a partition file into `store`, in the order they were written, until
/// the store holds `max_bytes` (`LineStore::used_bytes`); says whether lines are left.
pub(crate) fn decode(
    input: &mut impl BufRead,
    store: &mut LineStore,
    max_bytes: usize,
) -> std::io::Result<bool> {
    let mut head = [0u8; FIXED];
    let mut text = Vec::new();
    let mut currency: Option<([u8; 3], Currency)> = None;
    loop {
        if input.fill_buf()?.is_empty() {
            return Ok(false);
        }
        if store.used_bytes() >= max_bytes {
            return Ok(true);
        }
        input.read_exact(&mut head)?;
        let mut lens = [0usize; Field::COUNT];
        for (i, len) in lens.iter_mut().enumerate() {
            *len = usize::from(u16::from_le_bytes([head[24 + 2 * i], head[25 + 2 * i]]));
        }
        text.resize(lens.iter().sum(), 0);
        input.read_exact(&mut text)?;
        let text = std::str::from_utf8(&text).map_err(|_| corrupt("text is not UTF-8"))?;
        let cur = read_currency([head[5], head[6], head[7]], &mut currency)
            .ok_or_else(|| corrupt("unknown currency"))?;
        let mut fields = [""; Field::COUNT];
        let mut at = 0;
        for (field, len) in fields.iter_mut().zip(lens) {
            *field = text
                .get(at..at + len)
                .ok_or_else(|| corrupt("field bounds"))?;
            at += len;
        }
        let mut amount = [0u8; 16];
        amount.copy_from_slice(&head[8..24]);
        store
            .push(NewLine {
                text: fields,
                amount: Decimal::deserialize(amount),
                line_type: *LineType::ALL
                    .get(usize::from(head[4]))
                    .ok_or_else(|| corrupt("line type"))?,
                currency: cur,
                source_line: u32::from_le_bytes([head[0], head[1], head[2], head[3]]),
            })
            .map_err(|e| corrupt(&e.to_string()))?;
    }
}
