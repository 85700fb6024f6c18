//! Rebuilds the binary when a migration is added (`sqlx::migrate!` embeds
//! `src/store/migrations/` at compile time, and cargo does not otherwise know to look there),
//! and records the commit it is built from for `--version` and `billshadow_build_info`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=src/store/migrations");
    println!("cargo:rerun-if-env-changed=BILLSHADOW_COMMIT");
    // A build outside a git checkout (a source tarball) says so rather than guessing.
    let commit = std::env::var("BILLSHADOW_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown: not built from a git checkout".to_owned());
    println!("cargo:rustc-env=BILLSHADOW_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the branch it points at.
    for path in [
        Some("HEAD".to_owned()),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ]
    .into_iter()
    .flatten()
    {
        // A packed ref has no file of its own: watching a missing file would rebuild every time.
        let file = git(&["rev-parse", "--git-path", &path]);
        if let Some(file) = file.filter(|f| std::path::Path::new(f).exists()) {
            println!("cargo:rerun-if-changed={file}");
        }
    }
}
