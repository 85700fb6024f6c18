//! The sample stacks the tests and benchmarks shadow-run, built on first use (also included by
//! the benchmarks, `tests/bench/`, which share nothing else with the tests).

use std::path::Path;
use std::process::Command;

const BILLSHADOW: &str = env!("CARGO_BIN_EXE_billshadow");

/// The sample stacks are their own package (`examples/stacks`, not binaries of billshadow), so
/// cargo does not build them for billshadow's tests: the first test that needs them builds
/// them, once per test process, with the profile and target folder billshadow was built with,
/// next to it (where `billshadow demo` looks for them too). The legacy program's path, then the
/// modern service's.
pub(crate) fn paths() -> &'static (String, String) {
    static STACKS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    STACKS.get_or_init(|| {
        let bin = Path::new(BILLSHADOW).parent().expect("billshadow's folder");
        let profile = match bin.file_name().and_then(|name| name.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => panic!("billshadow is in no profile folder: {BILLSHADOW}"),
        };
        let target = bin.parent().expect("the target folder");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--package", "billshadow-sample-stacks"])
            .args(["--profile", profile])
            .arg("--target-dir")
            .arg(target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the sample stacks");
        let path = |name: &str| {
            let path = bin.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            assert!(path.is_file(), "{} was not built", path.display());
            path.display().to_string()
        };
        (
            path("billshadow-sample-legacy"),
            path("billshadow-sample-modern"),
        )
    })
}
