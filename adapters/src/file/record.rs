//! One source record as the mapping reads it (a CSV row or a JSON record and its document),
//! where each value comes from (`Access`), and a value's problem before it is located.

use std::borrow::Cow;

use crate::limits::FIELD_BYTES_MAX;

/// A value's problem, before it is located.
pub(super) struct Problem {
    /// Index into the compiled sources of the column at fault, when one is.
    pub(super) column: Option<ColumnRef>,
    pub(super) message: String,
}

#[derive(Clone)]
pub(super) enum ColumnRef {
    Csv(usize),
    Path(String),
}

/// Where a compiled source reads from.
#[derive(Debug, Clone)]
pub(super) enum Access {
    Csv(usize),
    Json {
        path: Vec<String>,
        from_document: bool,
        text: String,
    },
    Absent,
}

/// One source record, CSV or JSON.
pub(super) enum Record<'r> {
    /// A CSV row, and its text when the whole row is valid UTF-8 (checked once per row).
    Csv(&'r csv::ByteRecord, Option<&'r str>, &'r [String]),
    Json {
        record: &'r serde_json::Value,
        document: &'r serde_json::Value,
        nulls: &'r [String],
    },
}

impl<'r> Record<'r> {
    /// A source value; the mapping's null values (such as `NULL`) read as absent.
    pub(super) fn get(&self, access: &Access) -> Result<Option<Cow<'r, str>>, Problem> {
        let nulls = match self {
            Record::Csv(_, _, nulls) | Record::Json { nulls, .. } => *nulls,
        };
        let value = self.get_raw(access)?;
        Ok(value.filter(|v| nulls.is_empty() || !nulls.iter().any(|n| n == v.as_ref())))
    }

    pub(super) fn get_raw(&self, access: &Access) -> Result<Option<Cow<'r, str>>, Problem> {
        match (self, access) {
            (_, Access::Absent) => Ok(None),
            (Record::Csv(rec, text, _), Access::Csv(i)) => {
                // The row's text sliced at the field's bounds: valid unless a field boundary
                // splits a character, which the per-field check below then reports.
                let range = rec.range(*i).unwrap_or(0..0);
                if range.len() <= FIELD_BYTES_MAX
                    && let Some(field) = text.and_then(|t| t.get(range))
                {
                    return Ok(Some(Cow::Borrowed(field)));
                }
                let bytes = rec.get(*i).unwrap_or_default();
                if bytes.len() > FIELD_BYTES_MAX {
                    return Err(Problem {
                        column: Some(ColumnRef::Csv(*i)),
                        message: format!(
                            "the field is {} bytes long; the limit is {FIELD_BYTES_MAX}",
                            bytes.len()
                        ),
                    });
                }
                std::str::from_utf8(bytes)
                    .map(|s| Some(Cow::Borrowed(s)))
                    .map_err(|e| Problem {
                        column: Some(ColumnRef::Csv(*i)),
                        message: format!(
                            "invalid UTF-8 at byte {} of the field; expected UTF-8 text",
                            e.valid_up_to() + 1
                        ),
                    })
            }
            (
                Record::Json {
                    record, document, ..
                },
                Access::Json {
                    path,
                    from_document,
                    text,
                },
            ) => {
                let mut node: &serde_json::Value = if *from_document { document } else { record };
                for segment in path {
                    let next = match node {
                        serde_json::Value::Object(map) => map.get(segment),
                        serde_json::Value::Array(items) => {
                            segment.parse::<usize>().ok().and_then(|i| items.get(i))
                        }
                        _ => None,
                    };
                    match next {
                        Some(n) => node = n,
                        None => return Ok(None),
                    }
                }
                match node {
                    serde_json::Value::Null => Ok(None),
                    serde_json::Value::String(s) => {
                        json_field_within_limit(s, text)?;
                        Ok(Some(Cow::Borrowed(s.as_str())))
                    }
                    serde_json::Value::Number(n) => {
                        let n = n.to_string();
                        json_field_within_limit(&n, text)?;
                        Ok(Some(Cow::Owned(n)))
                    }
                    serde_json::Value::Bool(b) => {
                        Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" })))
                    }
                    _ => Err(Problem {
                        column: Some(ColumnRef::Path(text.clone())),
                        message: "expected a string, number or boolean, found an object or array"
                            .to_owned(),
                    }),
                }
            }
            _ => Ok(None),
        }
    }
}

pub(super) fn column_ref(access: &Access) -> Option<ColumnRef> {
    match access {
        Access::Csv(i) => Some(ColumnRef::Csv(*i)),
        Access::Json { text, .. } => Some(ColumnRef::Path(text.clone())),
        Access::Absent => None,
    }
}

/// The exact per-field check for a JSON value, once unescaped, as for a CSV field: the
/// guard bounded its raw bytes while the line was read, loosely enough (six bytes per
/// character) that no value within the limit is refused there.
fn json_field_within_limit(value: &str, path: &str) -> Result<(), Problem> {
    if value.len() <= FIELD_BYTES_MAX {
        return Ok(());
    }
    Err(Problem {
        column: Some(ColumnRef::Path(path.to_owned())),
        message: format!(
            "the field is {} bytes long; the limit is {FIELD_BYTES_MAX}",
            value.len()
        ),
    })
}
