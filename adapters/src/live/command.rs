//! The command adapter: one program invocation per account, or per batch when an argument is
//! `{account_ids}`. Arguments are separate argv entries; no shell ever sees them. A timeout is
//! transient (retried, counted by the circuit breaker); a non-zero exit or output that does
//! not parse is the program's answer, final for the invocation's accounts.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::config::{CommandConfig, StackConfig};
use super::limit::Limiter;
use super::outcome::{FetchResult, Fetched, StackFailure};
use super::output::{OUTPUT_BYTES_MAX, parse_output, split, tail};
use super::resilience::{Attempt, Breaker, retrying};
use super::template::AccountRequest;
use super::template::Escape;

pub(crate) struct CommandStack {
    config: CommandConfig,
}

impl CommandStack {
    pub(crate) fn new(config: CommandConfig) -> CommandStack {
        CommandStack { config }
    }

    pub(crate) fn preflight(&self) -> Result<(), String> {
        let program = &self.config.program;
        let found = if program.components().count() > 1 {
            self.config.working_dir.join(program).is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
            })
        };
        if found {
            Ok(())
        } else {
            Err(format!("the program {} does not exist", program.display()))
        }
    }

    /// The values an invocation renders once for all its accounts: those of every variable
    /// of every argument but `{account_ids}`. Accounts share an invocation only when these
    /// are equal, so each account is billed for its own period, customer and cell.
    pub(crate) fn invocation_key(&self, account: &AccountRequest) -> Vec<String> {
        self.config
            .args
            .iter()
            .filter(|arg| !arg.is_account_list())
            .flat_map(|arg| arg.variables())
            .map(|v| account.variable(v).to_owned())
            .collect()
    }

    /// One invocation's argv; every account of `batch` has the same `invocation_key`.
    fn argv(&self, batch: &[AccountRequest]) -> Vec<String> {
        let mut argv = Vec::new();
        for arg in &self.config.args {
            if arg.is_account_list() {
                argv.extend(batch.iter().map(|a| a.account_id.clone()));
            } else {
                argv.push(arg.render(&batch[0], Escape::None));
            }
        }
        argv
    }

    /// Bills for `batch`, in order: one invocation per group of accounts that share their
    /// invocation key (a batch mixing periods is split, never billed for its first account's).
    pub(crate) async fn fetch(
        &self,
        batch: &[AccountRequest],
        stack: &StackConfig,
        limit: &Limiter,
        breaker: &Breaker,
    ) -> Vec<FetchResult> {
        let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
        for (i, account) in batch.iter().enumerate() {
            let key = self.invocation_key(account);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => groups.push((key, vec![i])),
            }
        }
        let mut out: Vec<Option<FetchResult>> = (0..batch.len()).map(|_| None).collect();
        for (_, members) in groups {
            let group: Vec<AccountRequest> = members.iter().map(|&i| batch[i].clone()).collect();
            let result = retrying(breaker, || async {
                let _permit = limit.acquire().await;
                self.run(&group, stack).await
            })
            .await;
            let results: Vec<FetchResult> = match result {
                Ok((stores, retries)) => stores
                    .into_iter()
                    .map(|lines| Ok(Fetched { lines, retries }))
                    .collect(),
                Err(failure) => group.iter().map(|_| Err(failure.clone())).collect(),
            };
            for (i, result) in members.into_iter().zip(results) {
                out[i] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StackFailure {
                        message: "the invocation gave no result for this account".to_owned(),
                        retries: 0,
                        outage: false,
                    })
                })
            })
            .collect()
    }

    async fn run(
        &self,
        batch: &[AccountRequest],
        stack: &StackConfig,
    ) -> Attempt<Vec<billshadow_comparisons::LineStore>> {
        match self.invoke(batch, stack).await {
            Ok(stores) => Attempt::Done(stores),
            Err(Invocation::TimedOut(message)) => Attempt::transient(message),
            Err(Invocation::Failed(message)) => Attempt::Fail(message),
        }
    }

    /// The program as started: a path with folders is relative to the spec's folder.
    pub(super) fn program(&self) -> std::path::PathBuf {
        if self.config.program.components().count() > 1 {
            self.config.working_dir.join(&self.config.program)
        } else {
            self.config.program.clone()
        }
    }

    pub(super) fn working_dir(&self) -> &std::path::Path {
        &self.config.working_dir
    }

    pub(super) fn timeout(&self) -> std::time::Duration {
        self.config.timeout
    }

    async fn invoke(
        &self,
        batch: &[AccountRequest],
        stack: &StackConfig,
    ) -> Result<Vec<billshadow_comparisons::LineStore>, Invocation> {
        let program = self.program();
        let mut child = tokio::process::Command::new(&program)
            .args(self.argv(batch))
            .current_dir(&self.config.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Invocation::Failed(format!("cannot start {}: {e}", program.display())))?;
        let no_pipe = || Invocation::Failed("no pipe to the program".to_owned());
        let mut stdout = child.stdout.take().ok_or_else(no_pipe)?;
        let mut stderr = child.stderr.take().ok_or_else(no_pipe)?;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout = (&mut stdout).take(OUTPUT_BYTES_MAX as u64 + 1);
            let mut stderr = (&mut stderr).take(1 << 20);
            let (o, e) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            o.map_err(|e| format!("cannot read its output: {e}"))?;
            e.map_err(|e| format!("cannot read its stderr: {e}"))?;
            let status = child
                .wait()
                .await
                .map_err(|e| format!("cannot wait for it: {e}"))?;
            Ok::<_, String>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.config.timeout, work).await {
            Ok(result) => result.map_err(Invocation::Failed)?,
            Err(_) => {
                return Err(Invocation::TimedOut(format!(
                    "timed out after {} ms",
                    self.config.timeout.as_millis()
                )));
            }
        };
        if !status.success() {
            return Err(Invocation::Failed(format!(
                "{} exited with {status}: {}",
                program.display(),
                tail(&err)
            )));
        }
        if out.len() > OUTPUT_BYTES_MAX {
            return Err(Invocation::Failed(format!(
                "its output is larger than {OUTPUT_BYTES_MAX} bytes"
            )));
        }
        let origin = format!("{} stack output", stack.side);
        let store = parse_output(&origin, &out, &stack.mapping).map_err(Invocation::Failed)?;
        Ok(split(store, batch))
    }
}

/// Why an invocation gave no bills: a timeout may pass; anything else is the program's answer.
enum Invocation {
    TimedOut(String),
    Failed(String),
}
