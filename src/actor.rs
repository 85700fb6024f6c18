//! Who acts: the name the migration controller writes in its audit records and counts
//! approvals by. Never a guess: when nothing identifies the person or pipeline acting, the
//! command refuses rather than record "unknown".

/// CI systems' variables naming who started the pipeline, in the order they are tried.
const CI_IDENTITIES: [&str; 6] = [
    "GITHUB_ACTOR",      // GitHub Actions
    "GITLAB_USER_LOGIN", // GitLab CI
    "BUILDKITE_BUILD_CREATOR_EMAIL",
    "CIRCLE_USERNAME",         // CircleCI
    "BUILD_REQUESTEDFOREMAIL", // Azure Pipelines
    "BUILD_USER_ID",           // Jenkins (build-user-vars plugin)
];

/// The actor: `--as NAME` (`explicit`), else `BILLSHADOW_ACTOR`, else the CI system's user
/// (`GITHUB_ACTOR`, `GITLAB_USER_LOGIN`, …), else `USER`, else `LOGNAME`. An error names them
/// all when none is set.
pub(crate) fn resolve(explicit: Option<&str>) -> anyhow::Result<String> {
    resolve_from(explicit, |name| std::env::var(name).ok())
}

/// [`resolve`] over any environment (`var` looks a variable up).
fn resolve_from(
    explicit: Option<&str>,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let named = |value: String| {
        let value = value.trim().to_owned();
        (!value.is_empty()).then_some(value)
    };
    if let Some(name) = explicit {
        return match named(name.to_owned()) {
            Some(name) if !name.chars().any(char::is_control) => Ok(name),
            _ => Err(crate::usage!(
                "--as needs a name without control characters, not {name:?}"
            )),
        };
    }
    let sources = ["BILLSHADOW_ACTOR"]
        .into_iter()
        .chain(CI_IDENTITIES)
        .chain(["USER", "LOGNAME"]);
    for source in sources {
        if let Some(name) = var(source).and_then(named) {
            if name.chars().any(char::is_control) {
                return Err(crate::usage!(
                    "{source} holds control characters: it cannot name who acts"
                ));
            }
            return Ok(name);
        }
    }
    Err(crate::usage!(
        "nothing says who acts (the audit log and approvals need a name): pass --as NAME, or set \
         BILLSHADOW_ACTOR (CI systems' own user variables, such as GITHUB_ACTOR and \
         GITLAB_USER_LOGIN, and USER are read too)"
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    fn check(explicit: Option<&str>, env: &[(&str, &str)], expected: Result<&str, &str>) {
        let env: BTreeMap<&str, &str> = env.iter().copied().collect();
        let got = super::resolve_from(explicit, |name| env.get(name).map(|v| (*v).to_owned()));
        match (got, expected) {
            (Ok(name), Ok(want)) => assert_eq!(name, want),
            (Err(e), Err(want)) => assert!(format!("{e:#}").contains(want), "{e:#}"),
            (got, want) => panic!("{explicit:?} {env:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn the_actor_comes_from_the_first_source_that_names_one() {
        let all = [
            ("BILLSHADOW_ACTOR", "release-bot"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITLAB_USER_LOGIN", "tanuki"),
            ("USER", "alice"),
            ("LOGNAME", "alice2"),
        ];
        check(Some("bob"), &all, Ok("bob"));
        check(None, &all, Ok("release-bot"));
        check(None, &all[1..], Ok("octocat"));
        check(None, &all[2..], Ok("tanuki"));
        check(None, &all[3..], Ok("alice"));
        check(None, &all[4..], Ok("alice2"));
        check(None, &[("CIRCLE_USERNAME", "circle")], Ok("circle"));
        check(
            None,
            &[("BILLSHADOW_ACTOR", "  "), ("USER", "alice")],
            Ok("alice"),
        );
        check(Some(" carol "), &[], Ok("carol"));
    }

    #[test]
    fn nothing_that_names_the_actor_is_an_error_never_unknown() {
        check(None, &[], Err("nothing says who acts"));
        check(None, &[("USER", "")], Err("pass --as NAME"));
        check(Some(""), &[("USER", "alice")], Err("--as needs a name"));
        check(Some("a\u{1b}[2Jb"), &[], Err("control characters"));
        check(
            None,
            &[("GITHUB_ACTOR", "x\ny")],
            Err("GITHUB_ACTOR holds control"),
        );
    }
}
