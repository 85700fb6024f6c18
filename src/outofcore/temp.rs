//! The out-of-core diff's temporary directory: `billshadow-diff-<pid>-<nanos>` under the
//! temp root, made only when a diff first writes a partition or customers' file, removed when
//! the diff ends (success, error, panic), on Ctrl-C and on SIGTERM (a handler thread removes
//! it, then exits 130). After a SIGKILL it stays; the next diff with the same temp root
//! removes every such directory whose pid is no live process ([`sweep_leftovers`]).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// The prefix of every out-of-core diff's temporary directory.
pub(crate) const PREFIX: &str = "billshadow-diff-";

/// The directories to remove if a signal ends the process.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary directory made on first use and removed when dropped.
pub(crate) struct Scratch {
    root: PathBuf,
    dir: Mutex<Option<PathBuf>>,
}

impl Scratch {
    /// A directory to be made under `root` when first asked for.
    pub(crate) fn new(root: &Path) -> Scratch {
        Scratch {
            root: root.to_owned(),
            dir: Mutex::new(None),
        }
    }

    /// The directory, made now if it is not yet.
    pub(crate) fn dir(&self) -> std::io::Result<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = &*dir {
            return Ok(dir.clone());
        }
        // The handler first: once the directory exists, a signal removes it.
        install_signal_handler();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = self
            .root
            .join(format!("{PREFIX}{}-{nanos}", std::process::id()));
        // Made and listed under the list's lock, which the handler holds from the signal to
        // the exit: a signal either finds the directory listed or comes before it is made.
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the temporary directory {} (--temp-dir): {e}",
                    path.display()
                ),
            )
        })?;
        live.push(path.clone());
        drop(live);
        *dir = Some(path.clone());
        Ok(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = self.dir.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(dir) = dir {
            remove(&dir);
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|d| d != &dir);
        }
    }
}

/// Removes a directory and what is in it; files another thread adds meanwhile are removed on
/// the next try.
fn remove(dir: &Path) {
    for _ in 0..5 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => {}
        }
    }
}

/// Removes a directory other threads may still be writing files into: moved aside first (a
/// name [`sweep_leftovers`] still knows), so a file created by the old path fails instead of
/// appearing while the directory is removed.
#[cfg(unix)]
fn remove_aside(dir: &Path) {
    let mut aside = dir.as_os_str().to_owned();
    aside.push("0");
    let aside = PathBuf::from(aside);
    match std::fs::rename(dir, &aside) {
        Ok(()) => remove(&aside),
        Err(_) => remove(dir),
    }
}

/// Removes the temporary directories under `root` left by diffs that were killed (their pid
/// is no live process); says how many.
pub(crate) fn sweep_leftovers(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, nanos)| {
                nanos.parse::<u128>().ok()?;
                pid.parse::<u32>().ok()
            })
        else {
            continue;
        };
        if pid == std::process::id() || is_alive(pid) || !entry.path().is_dir() {
            continue;
        }
        remove(&entry.path());
        if !entry.path().exists() {
            removed += 1;
        }
    }
    removed
}

/// Whether a process with this pid exists (a zombie not yet reaped counts as alive), as
/// /proc says; where there is no /proc, every pid counts as alive and nothing is removed.
fn is_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// Installs, once, a thread that waits for Ctrl-C or SIGTERM, removes the live temporary
/// directories and exits 130. Returns once the signals are watched.
fn install_signal_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(unix)]
        {
            let (ready, watched) = std::sync::mpsc::channel();
            let spawned = std::thread::Builder::new()
                .name("diff-signals".to_owned())
                .spawn(move || watch_signals(&ready));
            if spawned.is_ok() {
                let _ = watched.recv();
            }
        }
    });
}

#[cfg(unix)]
fn watch_signals(ready: &std::sync::mpsc::Sender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    else {
        let _ = ready.send(());
        return;
    };
    runtime.block_on(async {
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        let _ = ready.send(());
        let (Ok(mut interrupt), Ok(mut terminate)) = (interrupt, terminate) else {
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        for dir in live.iter() {
            remove_aside(dir);
        }
        crate::note!("interrupted: the diff's temporary files are removed");
        std::process::exit(crate::exit::Code::Interrupted as i32);
    });
}
