//! What a stack reports as its version, read once at the start of a run: a command stack's
//! program run with the spec's arguments (`--version`), or an HTTP stack's endpoint (its body,
//! or one of its response headers). Bounded: the answer is read up to `VERSION_READ_MAX` bytes
//! within the stack's timeout, and its first non-empty line kept, cut at `VERSION_CHARS_MAX`.

use std::process::Stdio;

use tokio::io::AsyncReadExt;

use super::command::CommandStack;
use super::http::{HttpStack, without_url};

/// The most of a version answer read.
pub const VERSION_READ_MAX: usize = 64 * 1024;
/// The most characters of a version kept.
pub const VERSION_CHARS_MAX: usize = 200;

/// The first non-empty line of an answer, trimmed and cut; an error when there is none.
fn first_line(bytes: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("it answered nothing")?;
    Ok(line.chars().take(VERSION_CHARS_MAX).collect())
}

impl CommandStack {
    pub(crate) async fn version(&self, args: &[String]) -> Result<String, String> {
        let program = self.program();
        let shown = format!("`{} {}`", program.display(), args.join(" "));
        let mut child = tokio::process::Command::new(&program)
            .args(args)
            .current_dir(self.working_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {shown}: {e}"))?;
        let mut stdout = child.stdout.take().ok_or("no pipe to the program")?;
        let work = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(VERSION_READ_MAX as u64)
                .read_to_end(&mut out)
                .await
                .map_err(|e| format!("cannot read its output: {e}"))?;
            drop(stdout);
            let status = child
                .wait()
                .await
                .map_err(|e| format!("cannot wait for it: {e}"))?;
            Ok::<_, String>((status, out))
        };
        let (status, out) = tokio::time::timeout(self.timeout(), work)
            .await
            .map_err(|_| format!("{shown} timed out after {} ms", self.timeout().as_millis()))??;
        if !status.success() {
            return Err(format!("{shown} exited with {status}"));
        }
        first_line(&out).map_err(|e| format!("{shown}: {e}"))
    }
}

impl HttpStack {
    pub(crate) async fn version(&self, url: &str, header: Option<&str>) -> Result<String, String> {
        let mut response = self
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        if let Some(name) = header {
            let value = response
                .headers()
                .get(name)
                .ok_or_else(|| format!("GET {url}: no `{name}` header in the response"))?;
            return first_line(value.as_bytes())
                .map_err(|e| format!("GET {url}: the `{name}` header: {e}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("GET {url}: {}", without_url(&e)))?
        {
            let room = VERSION_READ_MAX - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= VERSION_READ_MAX {
                break;
            }
        }
        first_line(&body).map_err(|e| format!("GET {url}: {e}"))
    }
}
