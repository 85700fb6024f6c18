//! Starting a stack locally for the duration of a run: spawn it (argv, no shell), wait until
//! it answers, stop it at the end (it is killed when the handle drops, whatever happens).
//!
//! The ready address must be free before the stack starts: if anything already accepts
//! connections there, `start` refuses (a leftover server would otherwise be the one the run
//! compares), and a stack that exits while the address answers is a failure too.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StartConfig {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub working_dir: PathBuf,
    /// An address (`host:port`) that accepts connections once the stack is ready.
    pub ready_address: Option<String>,
    pub ready_timeout: Duration,
}

/// A running stack; dropping it stops the process.
///
/// The stack's stdin is a pipe held open by this handle: a stack that watches its stdin (the
/// sample modern stack with `--watch-stdin`) stops by itself when billshadow dies, even by
/// SIGKILL, because the pipe then closes.
pub struct StartedStack {
    child: tokio::process::Child,
    _stdin: Option<tokio::process::ChildStdin>,
    program: PathBuf,
}

impl StartConfig {
    pub async fn start(&self) -> Result<StartedStack, String> {
        let program = if self.program.components().count() > 1 {
            self.working_dir.join(&self.program)
        } else {
            self.program.clone()
        };
        if let Some(address) = &self.ready_address {
            // Whatever answers on the address once the stack is "ready" is what the run talks
            // to: a leftover server there would be shadow-compared instead of this stack.
            let probe = tokio::net::TcpStream::connect(address.as_str());
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                return Err(format!(
                    "{address} is already taken: another process accepts connections there, so {} cannot be the one that answers; stop that process or choose another address",
                    program.display()
                ));
            }
        }
        let mut child = tokio::process::Command::new(&program)
            .args(&self.args)
            .current_dir(&self.working_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let stdin = child.stdin.take();
        let deadline = tokio::time::Instant::now() + self.ready_timeout;
        if let Some(address) = &self.ready_address {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{} exited with {status} before it was ready",
                        program.display()
                    ));
                }
                if tokio::net::TcpStream::connect(address.as_str())
                    .await
                    .is_ok()
                {
                    // Only our process may be what answers: had it died (say, unable to bind
                    // the address), the answer came from another one.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(format!(
                            "{} exited with {status} while something else accepted connections on {address}",
                            program.display()
                        ));
                    }
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{} did not accept connections on {address} within {} ms",
                        program.display(),
                        self.ready_timeout.as_millis()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(StartedStack {
            child,
            _stdin: stdin,
            program,
        })
    }
}

impl StartedStack {
    /// Stops the stack and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn program(&self) -> &std::path::Path {
        &self.program
    }
}
