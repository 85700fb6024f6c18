//! The command adapter: one program invocation per account, or per batch when an argument is
//! `{account_ids}`. Arguments are separate argv entries; no shell ever sees them.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::template::Escape;
use super::{
    AccountRequest, CommandConfig, FetchResult, Fetched, OUTPUT_BYTES_MAX, StackConfig,
    StackFailure, parse_output, split, tail,
};

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
            for (i, result) in members
                .into_iter()
                .zip(self.fetch_group(&group, stack).await)
            {
                out[i] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StackFailure {
                        message: "the invocation gave no result for this account".to_owned(),
                        retries: 0,
                    })
                })
            })
            .collect()
    }

    async fn fetch_group(&self, batch: &[AccountRequest], stack: &StackConfig) -> Vec<FetchResult> {
        if batch.is_empty() {
            return Vec::new();
        }
        match self.run(batch, stack).await {
            Ok(stores) => stores
                .into_iter()
                .map(|lines| Ok(Fetched { lines, retries: 0 }))
                .collect(),
            Err(message) => batch
                .iter()
                .map(|_| {
                    Err(StackFailure {
                        message: message.clone(),
                        retries: 0,
                    })
                })
                .collect(),
        }
    }

    async fn run(
        &self,
        batch: &[AccountRequest],
        stack: &StackConfig,
    ) -> Result<Vec<billshadow_comparisons::LineStore>, String> {
        let program = if self.config.program.components().count() > 1 {
            self.config.working_dir.join(&self.config.program)
        } else {
            self.config.program.clone()
        };
        let mut child = tokio::process::Command::new(&program)
            .args(self.argv(batch))
            .current_dir(&self.config.working_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
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
            Ok(result) => result?,
            Err(_) => {
                return Err(format!(
                    "timed out after {} ms",
                    self.config.timeout.as_millis()
                ));
            }
        };
        if !status.success() {
            return Err(format!(
                "{} exited with {status}: {}",
                program.display(),
                tail(&err)
            ));
        }
        if out.len() > OUTPUT_BYTES_MAX {
            return Err(format!(
                "its output is larger than {OUTPUT_BYTES_MAX} bytes"
            ));
        }
        let origin = format!("{} stack output", stack.side);
        let store = parse_output(&origin, &out, &stack.mapping)?;
        Ok(split(store, batch))
    }
}
