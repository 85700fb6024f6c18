//! A mapping compiled against one file: each source resolved to a CSV column (a missing
//! required column is an error naming the header) or to a JSON path, the filters and the
//! attributes, once per file rather than once per record.

use billshadow_comparisons::Field;

use crate::mapping::{Attributes, Condition, FieldMapping, Mapping, Source, Target};

use super::error::ReadError;
use super::record::{Access, Problem, Record};

pub(super) struct CompiledField<'m> {
    pub(super) mapping: &'m FieldMapping,
    /// The value is used as read: no default, translation or case change.
    pub(super) plain: bool,
    pub(super) access: Vec<Access>,
    pub(super) negate_if: Option<CompiledCondition<'m>>,
}

pub(super) struct CompiledCondition<'m> {
    pub(super) condition: &'m Condition,
    pub(super) access: Access,
}

pub(super) struct Compiled<'m> {
    pub(super) fields: Vec<CompiledField<'m>>,
    pub(super) skip: Vec<CompiledCondition<'m>>,
    pub(super) keep: Vec<CompiledCondition<'m>>,
    /// (name, access) of the columns kept as attributes.
    pub(super) attributes: Vec<(String, Access)>,
    pub(super) parentheses_negative: bool,
    /// The mapping's name, and whether its records are JSON (where a value can be missing
    /// from one record only, so an error names the format as a missing CSV column does).
    pub(super) format: &'m str,
    pub(super) json: bool,
}

impl<'m> Compiled<'m> {
    /// Resolves every source against a CSV header, or against JSON paths.
    pub(super) fn new(
        mapping: &'m Mapping,
        header: Option<&[String]>,
        origin: &str,
    ) -> Result<Compiled<'m>, ReadError> {
        let resolve = |name: &str| resolve(header, name);
        let condition = |c: &'m Condition| CompiledCondition {
            condition: c,
            access: resolve(&c.column),
        };
        let mut fields = Vec::new();
        for field in &mapping.fields {
            let access: Vec<Access> = field.source.columns().into_iter().map(resolve).collect();
            if let Some(h) = header {
                check_columns(mapping, field, &access, h, origin)?;
            }
            let plain = field.default.is_none()
                && field.map.is_empty()
                && !field.upper_case
                && !field.lower_case
                && field.remove.is_empty();
            fields.push(CompiledField {
                mapping: field,
                plain,
                access,
                negate_if: field.negate_if.as_ref().map(condition),
            });
        }
        Ok(Compiled {
            fields,
            skip: mapping.skip.iter().map(condition).collect(),
            keep: mapping.keep.iter().map(condition).collect(),
            attributes: attributes(mapping, header),
            parentheses_negative: mapping.parentheses_negative,
            format: &mapping.name,
            json: header.is_none(),
        })
    }

    /// Why a required value is empty: in JSON, the record lacks the path the format reads.
    pub(super) fn empty(&self, target: Target, expected: &str) -> String {
        if self.json {
            format!(
                "no value; the `{}` format reads the required field `{}` here, expected {expected}",
                self.format,
                target.name()
            )
        } else {
            format!("empty value; expected {expected}")
        }
    }
}

pub(super) fn holds(c: &CompiledCondition<'_>, record: &Record<'_>) -> Result<bool, Problem> {
    let value = record.get(&c.access)?.unwrap_or_default();
    let value = value.as_ref();
    Ok((c.condition.empty && value.is_empty())
        || c.condition.equals.iter().any(|e| e == value)
        || c.condition
            .matches
            .as_ref()
            .is_some_and(|p| p.matches(value)))
}

impl Target {
    pub(super) fn is_date_field(self) -> bool {
        matches!(
            self,
            Target::Text(
                Field::PeriodStart | Field::PeriodEnd | Field::UsageStart | Field::UsageEnd
            )
        )
    }
}

/// Where a source named `name` is read: its column in the CSV header (absent when the
/// header lacks it), or its JSON path (`$doc.` for the enclosing document).
fn resolve(header: Option<&[String]>, name: &str) -> Access {
    match header {
        Some(h) => h
            .iter()
            .position(|c| c == name)
            .map_or(Access::Absent, Access::Csv),
        None => {
            let (from_document, rest) = match name.strip_prefix("$doc.") {
                Some(rest) => (true, rest),
                None => (false, name),
            };
            Access::Json {
                path: rest.split('.').map(str::to_owned).collect(),
                from_document,
                text: name.to_owned(),
            }
        }
    }
}

/// A CSV header must have the columns a field requires: all of them, unless the field is
/// optional or has a default, or one of a `coalesce` or `join`.
fn check_columns(
    mapping: &Mapping,
    field: &FieldMapping,
    access: &[Access],
    header: &[String],
    origin: &str,
) -> Result<(), ReadError> {
    let missing = access
        .iter()
        .zip(field.source.columns())
        .find(|(a, _)| matches!(a, Access::Absent));
    let Some((_, column)) = missing else {
        return Ok(());
    };
    let all_missing = access.iter().all(|a| matches!(a, Access::Absent));
    let tolerated = field.optional
        || field.default.is_some()
        || (matches!(field.source, Source::Coalesce(_) | Source::Join(..)) && !all_missing);
    if tolerated {
        return Ok(());
    }
    Err(ReadError::MissingColumn {
        origin: origin.to_owned(),
        format: mapping.name.clone(),
        column: column.to_owned(),
        field: field.target.name().to_owned(),
        header: header.join(", "),
    })
}

/// The (name, access) of the columns kept as attributes: those no field reads (CSV), or
/// those the mapping lists.
fn attributes(mapping: &Mapping, header: Option<&[String]>) -> Vec<(String, Access)> {
    match (&mapping.attributes, header) {
        (Attributes::None, _) | (Attributes::Unmapped, None) => Vec::new(),
        (Attributes::Unmapped, Some(h)) => {
            let used: Vec<&str> = mapping
                .fields
                .iter()
                .flat_map(|f| f.source.columns())
                .collect();
            h.iter()
                .enumerate()
                .filter(|(_, name)| !used.contains(&name.as_str()))
                .map(|(i, name)| (name.clone(), Access::Csv(i)))
                .collect()
        }
        (Attributes::List(list), _) => list
            .iter()
            .map(|(name, column)| (name.clone(), resolve(header, column)))
            .collect(),
    }
}
