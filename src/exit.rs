//! Exit codes, for every command: 0 parity / gate passes, 1 mismatches beyond tolerance /
//! gate blocked, 2 usage, configuration or input error, 3 a stack or store failure
//! prevented a verdict (for `run`, also a stack that stayed down), 130 interrupted by Ctrl-C
//! or SIGTERM (the run can be resumed).
//!
//! The code an error maps to is decided here, by the error's type ([`code_of`]): an error
//! type that says what went wrong (a store that is not a store, a store that failed, a
//! database error, a lost compare-and-set, a step that is not the cell's next) maps to its
//! code wherever it is met. The helpers a call site uses ([`input`], [`stack`]) only give
//! the code of errors no type decides (plain messages, and TOML or read errors, whose code
//! depends on whether the text came from the user's file or from the store). Nothing here
//! matches on message text. A report cut short by a closed pipe (`billshadow … | head`) is
//! not an error: [`finish`] ends quietly.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Parity = 0,
    Mismatch = 1,
    Input = 2,
    Stack = 3,
    Interrupted = 130,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) error: anyhow::Error,
}

/// The exit code an error's type decides, looking through its causes (the first cause with
/// a deciding type wins), or `None` for errors no type decides.
pub(crate) fn code_of(error: &anyhow::Error) -> Option<Code> {
    error.chain().find_map(|cause| {
        if cause.is::<crate::store::OpenError>() || cause.is::<crate::controller::NotNextStep>() {
            Some(Code::Input)
        } else if cause.is::<crate::store::StoreFailure>() || cause.is::<sqlx::Error>() {
            Some(Code::Stack)
        } else if cause.is::<crate::controller::ledger::Conflict>() {
            Some(Code::Mismatch)
        } else {
            // A TOML or read error depends on where the text came from: a file the user named
            // (input) or the store (a stored spec that does not read back: store failure).
            None
        }
    })
}

/// An error at a call site where, unless its type says otherwise, it is a usage,
/// configuration or input error: exit code 2.
pub(crate) fn input(error: impl Into<anyhow::Error>) -> Failure {
    let error = error.into();
    Failure {
        code: code_of(&error).unwrap_or(Code::Input),
        error,
    }
}

/// An error at a call site where, unless its type says otherwise, a stack or the store
/// failed and prevented a verdict: exit code 3. (A store that does not exist, is not a
/// database or is not a run store was misnamed rather than failing: its type, `OpenError`,
/// makes it exit code 2, whichever command meets it.)
pub(crate) fn stack(error: impl Into<anyhow::Error>) -> Failure {
    let error = error.into();
    Failure {
        code: code_of(&error).unwrap_or(Code::Stack),
        error,
    }
}

pub(crate) type Outcome = Result<Code, Failure>;

/// Whether an error is a write to a pipe whose reader has gone (`| head`), through any cause,
/// including the I/O error inside a `serde_json` or `csv` error.
pub(crate) fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            Some(io.kind())
        } else if let Some(json) = cause.downcast_ref::<serde_json::Error>() {
            json.io_error_kind()
        } else if let Some(csv) = cause.downcast_ref::<csv::Error>() {
            match csv.kind() {
                csv::ErrorKind::Io(io) => Some(io.kind()),
                _ => None,
            }
        } else {
            None
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes one line of a command's output to stdout. A closed pipe (`| head`) ends the process
/// quietly with exit code 0: what was written stays written. Any other write error ends it
/// with exit code 3. (`println!` would panic on a closed pipe.)
pub(crate) fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(Code::Stack as i32);
    }
}

/// `println!` for command output, through [`print_line`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::exit::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::exit::print_line(format_args!($($arg)*))
    };
}

/// The process's exit: the outcome's code; a failure is printed (control characters from
/// data escaped) with its code, except a closed pipe, which ends quietly with what was
/// written so far and exit code 0 (a command that knows its verdict by then returns it).
pub(crate) fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code.into(),
        Err(failure) if is_broken_pipe(&failure.error) => ExitCode::SUCCESS,
        Err(failure) => {
            // The one boundary every error passes: no URL password leaves, no control
            // character from data reaches the terminal.
            let message = billshadow_adapters::redact::urls(&format!("{:#}", failure.error));
            eprintln!("error: {}", billshadow_reports::clean_lines(&message));
            failure.code.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_decide_the_code_whatever_the_call_site() {
        let open = crate::store::OpenError::error("sqlite:x.db", "does not exist");
        assert_eq!(stack(open).code, Code::Input);
        let failed = anyhow::Error::new(crate::store::StoreFailure {
            url: "sqlite:x.db".to_owned(),
            problem: "is read-only".to_owned(),
        });
        assert_eq!(input(failed).code, Code::Stack);
        assert_eq!(input(anyhow::anyhow!("plain")).code, Code::Input);
        assert_eq!(stack(anyhow::anyhow!("plain")).code, Code::Stack);
        let conflict = anyhow::Error::new(crate::controller::ledger::Conflict("x".to_owned()));
        assert_eq!(stack(conflict).code, Code::Mismatch);
    }

    #[test]
    fn a_closed_pipe_is_found_through_causes() {
        use anyhow::Context;
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let error = Err::<(), _>(pipe)
            .context("cannot write the report")
            .unwrap_err();
        assert!(is_broken_pipe(&error));
        let json = serde_json::Error::io(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::new(json)));
        assert!(!is_broken_pipe(&anyhow::anyhow!("broken pipe")));
    }
}
