//! Where reports go: standard output, or a file written whole or not at all (a temporary
//! file renamed into place), so a reader never sees half a report.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::args::ColorChoice;

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

    /// Whether text written here may be coloured: standard output only (`stdout_colour`).
    pub(crate) fn colour(&self) -> bool {
        matches!(self, Destination::Stdout(_)) && stdout_colour()
    }
}

/// A line on standard error that is not an error (what was written, what was detected, how
/// far a run is): left out under `--quiet`.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if !$crate::output::quiet() {
            eprintln!($($arg)*);
        }
    };
}

/// The colour choice and quietness of this process, set once from the command line.
static COLOUR: std::sync::OnceLock<ColorChoice> = std::sync::OnceLock::new();
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records `--color` and `--quiet` for the rest of the process (`main`, once).
pub(crate) fn set_global(colour: ColorChoice, quiet: bool) {
    let _ = COLOUR.set(colour);
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// `--quiet`: no progress bar, only errors logged.
pub(crate) fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// The one place colour is decided. `--color always` and `never` are obeyed; `auto` colours
/// a terminal only, unless `NO_COLOR` is set and not empty (<https://no-color.org>), and
/// colours anything when `CLICOLOR_FORCE` is set and not `0`.
fn colour(choice: ColorChoice, terminal: bool, no_color: bool, force: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if no_color => false,
        ColorChoice::Auto => force || terminal,
    }
}

fn colour_for(terminal: bool) -> bool {
    let set =
        |name: &str, off: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != off);
    let choice = COLOUR.get().copied().unwrap_or(ColorChoice::Auto);
    colour(
        choice,
        terminal,
        set("NO_COLOR", ""),
        set("CLICOLOR_FORCE", "0"),
    )
}

/// Whether standard output may be coloured.
pub(crate) fn stdout_colour() -> bool {
    use std::io::IsTerminal;
    colour_for(io::stdout().is_terminal())
}

/// Whether log lines on standard error may carry ANSI colour: a log written to a file or a
/// pipe has no escape byte unless colour is forced.
pub(crate) fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    colour_for(io::stderr().is_terminal())
}

#[cfg(test)]
mod tests {
    use crate::args::ColorChoice::{self, Always, Auto, Never};

    #[test]
    fn colour_follows_the_flag_then_no_color_then_clicolor_force_then_the_terminal() {
        // (choice, terminal, NO_COLOR, CLICOLOR_FORCE) → colour
        let cases: [(ColorChoice, bool, bool, bool, bool); 9] = [
            (Auto, true, false, false, true),
            (Auto, false, false, false, false),
            (Auto, true, true, false, false),
            (Auto, false, false, true, true),
            (Auto, false, true, true, false),
            (Always, false, true, false, true),
            (Always, false, false, false, true),
            (Never, true, false, true, false),
            (Never, true, false, false, false),
        ];
        for (choice, terminal, no_color, force, expected) in cases {
            assert_eq!(
                super::colour(choice, terminal, no_color, force),
                expected,
                "{choice:?} terminal={terminal} NO_COLOR={no_color} CLICOLOR_FORCE={force}"
            );
        }
    }
}
