//! The comparison spec: a TOML file that says how lines are matched, the tolerances, the
//! ignored fields, the waivers and (optionally) which format and file feed each side.
//!
//! Every error names the spec file, and the line and column of the offending value.

use std::ops::Range;
use std::path::{Path, PathBuf};

use billshadow_adapters::location::{TomlError, toml_error};
use billshadow_comparisons::config::{Ignored, KeyField, Tolerances, Waiver, parse_key_names};
use billshadow_comparisons::{CompareConfig, DiffClass, LineType, parse_decimal};
use chrono::NaiveDate;
use toml::Spanned;

use self::live::LiveSpec;
use self::raw::{RawSide, RawSpec, RawTolerances, RawWaiver};

pub(crate) mod live;
mod raw;

/// What a cohort's values may look like (the spec's `[cohort]` table).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CohortRules {
    /// Values may start with `-` (refused by default: a stack's argv parser reads such a value
    /// as an option, and `--echo` switched a whole batch into another mode).
    pub(crate) allow_leading_dash: bool,
}

/// A loaded, validated spec.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) key: Option<Vec<KeyField>>,
    pub(crate) tolerances: Tolerances,
    pub(crate) ignored: Ignored,
    pub(crate) waivers: Vec<Waiver>,
    pub(crate) legacy: SideSpec,
    pub(crate) modern: SideSpec,
    /// `[cohort]`: what a cohort's values may look like.
    pub(crate) cohort: CohortRules,
}

/// What the spec says about one side; paths are resolved against the spec's folder.
#[derive(Debug, Clone, Default)]
pub(crate) struct SideSpec {
    pub(crate) format: Option<String>,
    pub(crate) path: Option<PathBuf>,
    /// A live stack (`kind = "command" | "http" | "sql"`), for shadow runs.
    pub(crate) live: Option<LiveSpec>,
}

impl Spec {
    pub(crate) fn load(path: &Path) -> Result<Spec, TomlError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TomlError::io(&origin, &e))?;
        Spec::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<Spec, TomlError> {
        let origin = path.display().to_string();
        let raw: RawSpec = toml::from_str(text).map_err(|e| toml_error(&origin, text, &e))?;
        let at = |span: Range<usize>, message: String| TomlError::at(&origin, text, span, message);
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let legacy = side_spec("legacy", raw.legacy, &base, &at)?;
        let modern = side_spec("modern", raw.modern, &base, &at)?;
        let key = match raw.r#match.and_then(|m| m.key) {
            None => None,
            Some(k) => Some(match_key(k, &at)?),
        };
        let mut ignored = Ignored::default();
        if let Some(compare) = raw.compare {
            for name in compare.ignore {
                let span = name.span();
                ignored
                    .add(name.get_ref())
                    .map_err(|e| at(span, e.to_string()))?;
            }
        }
        let tolerances = match raw.tolerance {
            None => Tolerances::default(),
            Some(t) => tolerances(t, &at)?,
        };
        let mut waivers: Vec<Waiver> = Vec::new();
        for raw_waiver in raw.waiver {
            let span = raw_waiver.span();
            let w = raw_waiver.into_inner();
            let err = |m: String| at(span.clone(), format!("waiver `{}`: {m}", w.id));
            if waivers.iter().any(|existing| existing.id == w.id) {
                return Err(err("the id is used twice".to_owned()));
            }
            waivers.push(waiver(&w, &err)?);
        }
        Ok(Spec {
            key,
            tolerances,
            ignored,
            waivers,
            legacy,
            modern,
            cohort: CohortRules {
                allow_leading_dash: raw.cohort.is_some_and(|c| c.allow_leading_dash),
            },
        })
    }

    /// The engine's configuration; `key` overrides the spec's (a format's default key).
    /// What the engine is told. The match key is the spec's `[match]`, else the default key
    /// both sides' formats agree on (a format without one uses the canonical default): one
    /// key for both sides, so naming them the other way round never changes a result. Its
    /// errors are input errors (the spec cannot say how to match).
    pub(crate) fn config(
        &self,
        today: NaiveDate,
        legacy: &billshadow_adapters::Mapping,
        modern: &billshadow_adapters::Mapping,
    ) -> anyhow::Result<CompareConfig> {
        self.compare_config(today, legacy, modern)
            .map_err(crate::exit::input)
    }

    fn compare_config(
        &self,
        today: NaiveDate,
        legacy: &billshadow_adapters::Mapping,
        modern: &billshadow_adapters::Mapping,
    ) -> anyhow::Result<CompareConfig> {
        let mut config = CompareConfig::new(today);
        config.key = match &self.key {
            Some(key) if !key.is_empty() => key.clone(),
            _ => agreed_key(legacy, modern)?,
        };
        config.tolerances = self.tolerances.clone();
        config.ignored = self.ignored.clone();
        config.waivers = self.waivers.clone();
        Ok(config)
    }

    /// The spec used when none is given: defaults everywhere.
    pub(crate) fn empty() -> Spec {
        Spec {
            key: None,
            tolerances: Tolerances::default(),
            ignored: Ignored::default(),
            waivers: Vec::new(),
            legacy: SideSpec::default(),
            modern: SideSpec::default(),
            cohort: CohortRules::default(),
        }
    }
}

/// The default match key of a format: its own, else the canonical one.
fn format_key(mapping: &billshadow_adapters::Mapping) -> anyhow::Result<Vec<KeyField>> {
    match &mapping.match_key {
        Some(names) => parse_key_names(names.iter().map(String::as_str))
            .map_err(|e| anyhow::anyhow!("format `{}`: match_key: {e}", mapping.name)),
        None => Ok(KeyField::default_key()),
    }
}

/// The key both formats default to, or an error asking for `[match]` when they differ.
fn agreed_key(
    legacy: &billshadow_adapters::Mapping,
    modern: &billshadow_adapters::Mapping,
) -> anyhow::Result<Vec<KeyField>> {
    let (l, m) = (format_key(legacy)?, format_key(modern)?);
    if l == m {
        return Ok(l);
    }
    let names = |key: &[KeyField]| {
        key.iter()
            .map(|k| format!("\"{}\"", k.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    anyhow::bail!(
        "the two formats match lines by different keys: `{}` (legacy) by [{}], `{}` (modern) by [{}]; \
         say which key both sides use in the spec, e.g.\n\n[match]\nkey = [{}]",
        legacy.name,
        names(&l),
        modern.name,
        names(&m),
        names(&l),
    )
}

/// Places a message at a span of the spec file.
type At<'a> = dyn Fn(Range<usize>, String) -> TomlError + 'a;

/// One side of the spec: its format and file (relative to the spec) or its live stack.
fn side_spec(
    name: &str,
    raw: Option<Spanned<RawSide>>,
    base: &Path,
    at: &At<'_>,
) -> Result<SideSpec, TomlError> {
    let Some(raw) = raw else {
        return Ok(SideSpec::default());
    };
    let span = raw.span();
    let raw = raw.into_inner();
    let format = raw.format.clone().map(|f| {
        // A format that looks like a file is relative to the spec.
        if f.ends_with(".toml") {
            base.join(f).display().to_string()
        } else {
            f
        }
    });
    let path = raw.path.clone().map(|p| base.join(p));
    let live = LiveSpec::from_raw(raw, base).map_err(|m| at(span, format!("[{name}]: {m}")))?;
    Ok(SideSpec { format, path, live })
}

/// `[match] key`: field names, `account_id` among them.
fn match_key(k: Spanned<Vec<String>>, at: &At<'_>) -> Result<Vec<KeyField>, TomlError> {
    let span = k.span();
    let names: Vec<String> = k.into_inner();
    let key = parse_key_names(names.iter().map(String::as_str))
        .map_err(|e| at(span.clone(), e.to_string()))?;
    if !key.contains(&KeyField::Text(billshadow_comparisons::Field::AccountId)) {
        return Err(at(
            span,
            "the match key must include account_id: bills are compared account by account"
                .to_owned(),
        ));
    }
    Ok(key)
}

/// `[tolerance]`: the default, the bill total's, and per line type and charge-code glob.
fn tolerances(t: RawTolerances, at: &At<'_>) -> Result<Tolerances, TomlError> {
    let mut out = Tolerances::default();
    if let Some(d) = t.default {
        let span = d.span();
        out.default = d.into_inner().validate().map_err(|m| at(span, m))?;
    }
    if let Some(d) = t.total {
        let span = d.span();
        out.total = d.into_inner().validate().map_err(|m| at(span, m))?;
    }
    for (name, value) in t.line_type {
        let span = value.span();
        let line_type: LineType =
            name.parse()
                .map_err(|e: billshadow_comparisons::model::LineTypeError| {
                    at(span.clone(), e.to_string())
                })?;
        out.by_line_type.push((
            line_type,
            value.into_inner().validate().map_err(|m| at(span, m))?,
        ));
    }
    for (pattern, value) in t.charge_code {
        let span = value.span();
        let glob = glob::Pattern::new(&pattern).map_err(|e| {
            at(
                span.clone(),
                format!("`{pattern}` is not a glob pattern: {e}"),
            )
        })?;
        out.by_charge_code.push((
            glob,
            value.into_inner().validate().map_err(|m| at(span, m))?,
        ));
    }
    Ok(out)
}

/// One `[[waiver]]`: owned and explained, for a failing class, with globs, a bound and an
/// expiry date; `err` places a message at the waiver.
fn waiver(w: &RawWaiver, err: &dyn Fn(String) -> TomlError) -> Result<Waiver, TomlError> {
    for (name, value) in [
        ("reason", &w.reason),
        ("ticket", &w.ticket),
        ("owner", &w.owner),
    ] {
        if value.trim().is_empty() {
            return Err(err(format!(
                "`{name}` must not be empty: a waiver is an owned, explained rule"
            )));
        }
    }
    let class = w
        .class
        .as_deref()
        .map(|c| DiffClass::from_name(c).ok_or_else(|| err(format!("`{c}` is not a diff class"))))
        .transpose()?;
    if class.is_some_and(DiffClass::is_informational) {
        return Err(err(
            "informational classes never fail, so they need no waiver".to_owned(),
        ));
    }
    let pattern = |p: &Option<String>| {
        p.as_deref()
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| err(format!("`{p}` is not a glob pattern: {e}")))
            })
            .transpose()
    };
    let expires = NaiveDate::parse_from_str(&w.expires, "%Y-%m-%d").map_err(|_| {
        err(format!(
            "expires = `{}` is not a date (YYYY-MM-DD)",
            w.expires
        ))
    })?;
    let delta_abs_max = w
        .max_delta
        .as_deref()
        .map(|d| {
            parse_decimal(d)
                .map(|v| v.abs())
                .map_err(|e| err(format!("max_delta: {e}")))
        })
        .transpose()?;
    let signature = w.signature.as_deref().map(|id| {
        let hex = id.strip_prefix("sig-").unwrap_or("");
        if hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(id.to_owned())
        } else {
            Err(err(format!(
                "signature = `{id}` is not a signature id (`sig-` and 16 lower-case hex digits, as `billshadow causes` shows)"
            )))
        }
    });
    let signature = signature.transpose()?;
    Ok(Waiver {
        id: w.id.clone(),
        class,
        charge_code: pattern(&w.charge_code)?,
        account_id: pattern(&w.account_id)?,
        partition: w.partition.clone(),
        region: w.region.clone(),
        delta_abs_max,
        signature,
        reason: w.reason.clone(),
        ticket: w.ticket.clone(),
        owner: w.owner.clone(),
        expires,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use billshadow_comparisons::config::Tolerance;

    fn error_of(text: &str) -> String {
        Spec::parse(Path::new("spec.toml"), text)
            .unwrap_err()
            .to_string()
    }

    fn check_error(text: &str, expected_start: &str) {
        let e = error_of(text);
        assert!(
            e.starts_with(expected_start),
            "expected {expected_start:?}, got {e:?}"
        );
    }

    const WAIVER: &str = r#"
[[waiver]]
id = "W-1"
class = "amount_mismatch"
charge_code = "egress.*"
max_delta = "0.05"
reason = "modern rounds per invoice"
ticket = "BILL-1"
owner = "ana@example.com"
expires = "2026-12-31"
"#;

    #[test]
    fn a_full_spec_loads() {
        let text = format!(
            "[match]\nkey = [\"account_id\", \"period\", \"charge_code\"]\n[compare]\nignore = [\"description\"]\n\
             [tolerance]\ndefault = {{ minor_units = 2 }}\nline_type = {{ tax = \"0.05\" }}\n{WAIVER}"
        );
        let spec = Spec::parse(Path::new("dir/spec.toml"), &text).unwrap();
        assert_eq!(spec.key.as_ref().unwrap().len(), 4);
        assert!(spec.ignored.description);
        assert_eq!(spec.tolerances.default, Tolerance::MinorUnits(2));
        assert_eq!(spec.waivers[0].delta_abs_max.unwrap().to_string(), "0.05");
        assert_eq!(spec.waivers[0].signature, None);
        let by_signature = text.replace(
            "max_delta",
            "signature = \"sig-0123456789abcdef\"\nmax_delta",
        );
        let spec = Spec::parse(Path::new("dir/spec.toml"), &by_signature).unwrap();
        assert_eq!(
            spec.waivers[0].signature.as_deref(),
            Some("sig-0123456789abcdef")
        );
    }

    #[test]
    fn errors_name_the_line() {
        check_error(
            "[match]\nkey = [\"acount_id\"]\n",
            "spec.toml:2:7: `acount_id` is not a match key field",
        );
        check_error(
            "[match]\nkey = [\"region\"]\n",
            "spec.toml:2:7: the match key must include account_id",
        );
        check_error(
            "[mtach]\nkey = []\n",
            "spec.toml:1:2: unknown field `mtach`",
        );
        check_error(
            "[compare]\nignore = [\"amount\"]\n",
            "spec.toml:2:11: `amount` cannot be ignored",
        );
        check_error(
            "[tolerance]\nline_type = { taxes = \"0.01\" }\n",
            "spec.toml:2:23: `taxes` is not a line type",
        );
        check_error(
            &WAIVER.replace("2026-12-31", "31/12/2026"),
            "spec.toml:2:1: waiver `W-1`: expires = `31/12/2026` is not a date",
        );
        check_error(
            &WAIVER.replace("BILL-1", ""),
            "spec.toml:2:1: waiver `W-1`: `ticket` must not be empty",
        );
        check_error(
            &WAIVER.replace("max_delta", "signature = \"sig-12\"\nmax_delta"),
            "spec.toml:2:1: waiver `W-1`: signature = `sig-12` is not a signature id",
        );
        check_error(
            &format!("{WAIVER}{WAIVER}"),
            "spec.toml:12:1: waiver `W-1`: the id is used twice",
        );
        check_error(
            &WAIVER.replace("\"amount_mismatch\"", "\"sub_minor_unit\""),
            "spec.toml:2:1: waiver `W-1`: informational",
        );
        check_error(
            &WAIVER.replace("owner =", "ownr ="),
            "spec.toml:9:1: unknown field `ownr`",
        );
    }
}
