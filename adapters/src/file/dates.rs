//! Dates as a mapping reads them (ISO, a chrono pattern, Unix seconds or milliseconds),
//! written as `YYYY-MM-DD`; an exclusive end at midnight becomes the day before.

use chrono::{Datelike, NaiveDate};

use crate::mapping::DateFormat;

/// Writes a date as `YYYY-MM-DD`; an exclusive end bound at midnight becomes the day before.
pub(super) fn write_date(
    value: &str,
    format: &DateFormat,
    shift_days: i64,
    exclusive_end: bool,
    out: &mut String,
) -> Result<(), String> {
    let value = value.trim_ascii();
    let (date, midnight) = match format {
        DateFormat::Iso => {
            let date_part = value.get(..10).unwrap_or(value);
            let rest = value.get(10..).unwrap_or("");
            if !rest.is_empty() && !rest.starts_with(['T', ' ']) {
                return Err(format!("`{value}` is not a date; expected YYYY-MM-DD"));
            }
            let date = parse_iso_date(date_part)
                .ok_or_else(|| format!("`{value}` is not a date; expected YYYY-MM-DD"))?;
            (date, iso_time_is_midnight(rest))
        }
        DateFormat::Pattern(p) => {
            let midnight = chrono::NaiveTime::MIN;
            NaiveDate::parse_from_str(value, p)
                .map(|d| (d, true))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(value, p)
                        .map(|dt| (dt.date(), dt.time() == midnight))
                })
                .or_else(|_| {
                    chrono::DateTime::parse_from_str(value, p).map(|dt| {
                        let utc = dt.naive_utc();
                        (utc.date(), utc.time() == midnight)
                    })
                })
                .map_err(|e| format!("`{value}` does not match the date format `{p}`: {e}"))?
        }
        DateFormat::UnixSeconds | DateFormat::UnixMillis => {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a Unix timestamp"))?;
            let per_second = if matches!(format, DateFormat::UnixMillis) {
                1000
            } else {
                1
            };
            let date = chrono::DateTime::from_timestamp(n.div_euclid(per_second), 0)
                .ok_or_else(|| format!("`{value}` is out of the range of dates"))?
                .date_naive();
            (date, n.rem_euclid(86_400 * per_second) == 0)
        }
    };
    let shift_days = if exclusive_end && midnight {
        -1
    } else {
        shift_days
    };
    let date = date
        .checked_add_signed(chrono::TimeDelta::days(shift_days))
        .ok_or_else(|| {
            format!("`{value}` shifted by {shift_days} days is out of the range of dates")
        })?;
    use std::fmt::Write as _;
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}",
        date.year(),
        date.month(),
        date.day()
    );
    Ok(())
}

/// Whether the time after an ISO date (`""`, `T00:00:00Z`, ` 00:00:00.000+02:00` …) is
/// midnight: a date alone is.
pub(super) fn iso_time_is_midnight(rest: &str) -> bool {
    let time = rest.get(1..).unwrap_or("");
    let time = time
        .find(['Z', 'z', '+', '-'])
        .map_or(time, |end| &time[..end]);
    time.bytes().all(|b| matches!(b, b'0' | b':' | b'.'))
}

/// `YYYY-MM-DD` with a real calendar date.
pub(super) fn parse_iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(digits(0..4)?).ok()?,
        digits(5..7)?,
        digits(8..10)?,
    )
}
