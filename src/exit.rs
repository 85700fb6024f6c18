//! Exit codes, for every command: 0 parity / gate passes, 1 mismatches beyond tolerance /
//! gate blocked, 2 usage, configuration or input error, 3 a stack or store failure
//! prevented a verdict (for `run`, also a stack that stayed down), 130 interrupted by Ctrl-C
//! or SIGTERM (the run can be resumed).

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

/// A usage, configuration or input error: exit code 2.
pub(crate) fn input(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: Code::Input,
        error: error.into(),
    }
}

pub(crate) type Outcome = Result<Code, Failure>;
