//! Exit codes, for every command: 0 parity / gate passes, 1 mismatches beyond tolerance /
//! gate blocked, 2 usage, configuration or input error, 3 a stack or store failure
//! prevented a verdict (for `run`, also a stack that stayed down), 4 a worker of a shared run
//! (`run --shard`, `--join`) did its part but other workers' accounts are pending (no verdict
//! yet), 130 interrupted by Ctrl-C or SIGTERM (the run can be resumed).
//!
//! The code an error maps to is decided here, by the error's type ([`code_of`]), wherever it
//! is met: an error type says what went wrong (input the user gave: [`InputError`], a TOML
//! error, a store that is not a store; a failure: [`Unavailable`], a store that failed, a
//! database error; a lost compare-and-set: [`Conflict`]). Functions that read what the user
//! wrote return their errors as input errors ([`input`], `usage!`), functions that talk to
//! stacks, the store or the output as failures ([`unavailable`], `failed!`); commands only
//! propagate them with `?` (`Failure: From<anyhow::Error>`). An error no type decides exits
//! 3, never 0. Nothing here matches on message text. A report cut short by a closed pipe (`billshadow … | head`) is
//! not an error: [`finish`] ends quietly.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    Parity = 0,
    Mismatch = 1,
    Input = 2,
    Stack = 3,
    /// A worker of a shared run did its part (or found nothing left to take) while other
    /// workers' accounts are pending: the run's verdict is not known yet.
    NoVerdictYet = 4,
    Interrupted = 130,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> ExitCode {
        ExitCode::from(code as u8)
    }
}

/// A usage, configuration or input error: something the user named, passed or wrote is
/// wrong (exit code 2). Wraps the error it describes; prints as it does.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct InputError(pub(crate) anyhow::Error);

/// A stack, the store or the output failed and prevented a verdict (exit code 3). Wraps the
/// error it describes; prints as it does.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct Unavailable(pub(crate) anyhow::Error);

/// Why a store could not be opened when the fault is in what was named: a store that does not
/// exist, a file that is not a database, a database that is not a run store, a run that is not
/// in it. A usage error (exit 2), whichever command meets it.
#[derive(Debug, thiserror::Error)]
#[error("the run store {url} {problem}")]
pub(crate) struct OpenError {
    pub(crate) url: String,
    pub(crate) problem: String,
}

impl OpenError {
    pub(crate) fn error(url: &str, problem: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(OpenError {
            url: url.to_owned(),
            problem: problem.into(),
        })
    }
}

/// A store that exists but cannot do what the command needs: read-only, full, gone.
/// Exit code 3, naming the store.
#[derive(Debug, thiserror::Error)]
#[error("the run store {url} {problem}")]
pub(crate) struct StoreFailure {
    pub(crate) url: String,
    pub(crate) problem: String,
}

/// A controller's write lost to another controller (a compare-and-set that failed): exit 1.
#[derive(Debug, thiserror::Error)]
#[error("conflict: {0}")]
pub(crate) struct Conflict(pub(crate) String);

/// `--to` names a step that is not the cell's next one (someone else may have made it): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct NotNextStep(pub(crate) String);

/// An error with the exit code its type decides ([`code_of`]).
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: Code,
    pub(crate) error: anyhow::Error,
}

/// The code of an error no type decides: an error nothing classified is a failure that
/// prevented a verdict, never a pass.
const UNCLASSIFIED: Code = Code::Stack;

/// The exit code an error's type decides, looking through its causes and contexts (the
/// outermost deciding type wins), or `None` for errors no type decides.
pub(crate) fn code_of(error: &anyhow::Error) -> Option<Code> {
    error.chain().find_map(|cause| {
        if cause.is::<InputError>()
            || cause.is::<OpenError>()
            || cause.is::<NotNextStep>()
            || cause.is::<billshadow_adapters::location::TomlError>()
            || cause.is::<billshadow_adapters::ReadError>()
        {
            Some(Code::Input)
        } else if cause.is::<Unavailable>()
            || cause.is::<StoreFailure>()
            || cause.is::<sqlx::Error>()
        {
            Some(Code::Stack)
        } else if cause.is::<Conflict>() {
            Some(Code::Mismatch)
        } else {
            None
        }
    })
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        let error = error.into();
        Failure {
            code: code_of(&error).unwrap_or(UNCLASSIFIED),
            error,
        }
    }
}

/// Marks an error as a usage, configuration or input error (exit 2), for the functions that
/// read what the user wrote. An error whose own type already decides keeps it (a store that
/// failed while a cohort was read is still a store failure).
pub(crate) fn input(error: impl Into<anyhow::Error>) -> anyhow::Error {
    let error = error.into();
    if code_of(&error).is_some() {
        error
    } else {
        anyhow::Error::new(InputError(error))
    }
}

/// Marks an error as a failure of a stack, the store or the output (exit 3). An error whose
/// own type already decides keeps it (a store that is not a store is still a usage error).
pub(crate) fn unavailable(error: impl Into<anyhow::Error>) -> anyhow::Error {
    let error = error.into();
    if code_of(&error).is_some() {
        error
    } else {
        anyhow::Error::new(Unavailable(error))
    }
}

/// A usage or input error from a message: `Err(usage!("--as-of `{d}` is not a date"))?`.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        $crate::exit::input(anyhow::anyhow!($($arg)*))
    };
}

/// A stack, store or output failure from a message.
#[macro_export]
macro_rules! failed {
    ($($arg:tt)*) => {
        $crate::exit::unavailable(anyhow::anyhow!($($arg)*))
    };
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
        let code = |e: anyhow::Error| Failure::from(e).code;
        assert_eq!(
            code(OpenError::error("sqlite:x.db", "does not exist")),
            Code::Input
        );
        let failed = anyhow::Error::new(StoreFailure {
            url: "sqlite:x.db".to_owned(),
            problem: "is read-only".to_owned(),
        });
        assert_eq!(code(failed), Code::Stack);
        // Context added on the way up changes nothing.
        let wrapped = anyhow::Error::new(Conflict("x".to_owned())).context("cannot advance p1/eu");
        assert_eq!(code(wrapped), Code::Mismatch);
        assert_eq!(code(crate::usage!("plain")), Code::Input);
        assert_eq!(code(crate::failed!("plain")), Code::Stack);
        assert_eq!(
            code(input(crate::failed!("a failure stays a failure"))),
            Code::Stack
        );
        // An error nothing classified never passes.
        assert_eq!(code(anyhow::anyhow!("plain")), Code::Stack);
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
