//! Where reports go: standard output, or a file written whole or not at all (a temporary
//! file renamed into place), so a reader never sees half a report.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

pub(crate) enum Destination {
    Stdout(BufWriter<io::Stdout>),
    File {
        writer: BufWriter<File>,
        temporary: PathBuf,
        target: PathBuf,
    },
}

impl Destination {
    /// Opens the destination the user named; its errors are input errors.
    pub(crate) fn open(out: Option<&Path>) -> anyhow::Result<Destination> {
        Self::create(out).map_err(crate::exit::input)
    }

    fn create(out: Option<&Path>) -> anyhow::Result<Destination> {
        match out {
            None => Ok(Destination::Stdout(BufWriter::new(io::stdout()))),
            Some(target) => {
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let temporary =
                    target.with_file_name(format!(".{name}.{}.partial", std::process::id()));
                let file = File::create(&temporary)
                    .with_context(|| format!("cannot create {}", temporary.display()))?;
                Ok(Destination::File {
                    writer: BufWriter::new(file),
                    temporary,
                    target: target.to_path_buf(),
                })
            }
        }
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        match self {
            Destination::Stdout(w) => w,
            Destination::File { writer, .. } => writer,
        }
    }

    /// Flushes, and for a file moves it into place.
    /// Flushes and moves the file into place; its errors are input errors (the path the user
    /// named cannot take the report).
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        self.complete().map_err(crate::exit::input)
    }

    fn complete(self) -> anyhow::Result<()> {
        match self {
            Destination::Stdout(mut w) => match w.flush() {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                other => other.context("cannot write to standard output"),
            },
            Destination::File {
                writer,
                temporary,
                target,
            } => {
                let file = writer
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .with_context(|| format!("cannot write {}", temporary.display()))?;
                file.sync_all()
                    .with_context(|| format!("cannot write {}", temporary.display()))?;
                std::fs::rename(&temporary, &target)
                    .with_context(|| format!("cannot move the report into {}", target.display()))
            }
        }
    }

    /// Whether text written here may be coloured: standard output on a terminal, and
    /// `NO_COLOR` unset or empty.
    pub(crate) fn colour(&self) -> bool {
        matches!(self, Destination::Stdout(_)) && stdout_colour()
    }
}

/// The one place colour is decided: standard output is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>).
pub(crate) fn stdout_colour() -> bool {
    use std::io::IsTerminal;
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
