//! Locations in configuration files: every TOML error names its file, line and column.

use std::fmt;
use std::ops::Range;

/// An error in a TOML file (a spec or a format mapping), located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlError {
    pub origin: String,
    /// 1-based; 0 when the error is not about a place in the file (it could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl TomlError {
    /// An error about the bytes at `span` of `text`.
    pub fn at(origin: &str, text: &str, span: Range<usize>, message: String) -> TomlError {
        let (line, column) = line_column(text, span.start);
        TomlError {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    }

    pub fn io(origin: &str, error: &std::io::Error) -> TomlError {
        TomlError {
            origin: origin.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {error}"),
        }
    }

    pub fn whole_file(origin: &str, message: String) -> TomlError {
        TomlError {
            origin: origin.to_owned(),
            line: 0,
            column: 0,
            message,
        }
    }
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for TomlError {}

/// Converts a parse error of the `toml` crate, keeping its location.
pub fn toml_error(origin: &str, text: &str, error: &toml::de::Error) -> TomlError {
    let message = error.message().trim_end().to_owned();
    match error.span() {
        Some(span) => TomlError::at(origin, text, span, message),
        None => TomlError::whole_file(origin, message),
    }
}

/// The 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
