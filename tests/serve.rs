//! `billshadow serve`: the gate other controllers call, over real HTTP on 127.0.0.1, agreeing
//! with `migrate gate` cell by cell.

use crate::report::stored_run;
use crate::support::{Server, billshadow, free_port, runtime};

/// GET `path`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    runtime().block_on(async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    })
}

#[test]
fn the_gate_answers_200_for_a_passing_cell_and_409_for_a_blocked_one_with_numbers() {
    let dir = stored_run();
    let d = dir.path();
    // No mismatch allowed: the cells where the sample modern stack's defects show are
    // blocked, the others pass.
    let policy = std::fs::read_to_string(d.join("policy.toml")).unwrap();
    let strict = policy.replace("max_mismatch_rate = \"0.05\"", "max_mismatch_rate = \"0\"");
    assert_ne!(policy, strict);
    std::fs::write(d.join("policy.toml"), strict).unwrap();
    // legacy → shadow is not gated: move every cell to shadow, so the gate judges canary.
    let advance: Vec<&str> = "migrate advance --all --policy policy.toml --store s.db --as ci"
        .split(' ')
        .collect();
    let advance = billshadow(&advance, d);
    assert!(matches!(advance.code, 0 | 1), "{}", advance.transcript());
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let serve = [
        "serve",
        "--listen",
        &listen,
        "--store",
        "s.db",
        "--policy",
        "policy.toml",
    ];
    let _server = Server::start(&serve, d, port);
    // Every cell of the policy: p0..p3 in six regions.
    let regions = [
        "us-east-1",
        "eu-west-1",
        "eu-central-1",
        "eu-west-2",
        "ap-northeast-1",
        "me-south-1",
    ];
    let cells: Vec<String> = (0..4)
        .flat_map(|p| regions.map(|r| format!("p{p}/{r}")))
        .collect();
    let (mut passed, mut blocked) = (None, None);
    for cell in &cells {
        let (code, body) = get(port, &format!("/gate/{cell}"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        match code {
            200 if passed.is_none() => passed = Some((cell.clone(), json)),
            409 if blocked.is_none() => blocked = Some((cell.clone(), json)),
            200 | 409 => {}
            other => panic!("{cell}: {other} {body}"),
        }
    }
    let (passed, blocked) = (
        passed.expect("a passing cell"),
        blocked.expect("a blocked cell"),
    );
    for ((cell, json), code, verdict) in [(&passed, 0, "pass"), (&blocked, 1, "blocked")] {
        // The same verdict as the CI command's exit code.
        let gate = billshadow(
            &[
                "migrate",
                "gate",
                cell,
                "--policy",
                "policy.toml",
                "--store",
                "s.db",
            ],
            d,
        );
        assert_eq!(gate.code, code, "{cell}: {}", gate.transcript());
        assert_eq!(json["cell"], cell.as_str());
        assert_eq!(json["verdict"], verdict, "{json:#}");
        assert_eq!(json["passed"], code == 0, "{json:#}");
        let criteria = json["criteria"].as_array().unwrap();
        let min_accounts = criteria
            .iter()
            .find(|c| c["name"] == "min_accounts")
            .unwrap_or_else(|| panic!("{json:#}"));
        assert!(min_accounts["measured"].is_number(), "{json:#}");
        assert_eq!(min_accounts["threshold"].as_u64(), Some(5), "{json:#}");
        assert_eq!(min_accounts["operator"], ">=", "{json:#}");
        let rate = criteria
            .iter()
            .find(|c| c["name"] == "max_mismatch_rate")
            .unwrap();
        assert_eq!(rate["threshold"].to_string(), "0", "{json:#}");
        assert!(rate["measured"].is_number(), "{json:#}");
    }
    assert!(
        blocked.1["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["passed"] == false),
        "{:#}",
        blocked.1
    );

    // Flagger's webhooks POST: the same answer.
    let posted = runtime().block_on(async {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/gate/{}", blocked.0))
            .body("{\"name\":\"billing\",\"phase\":\"Progressing\"}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(posted, 409);
    let (code, body) = get(port, "/gate/p9/nowhere-1");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no cell p9/nowhere-1"), "{body}");
    let (code, body) = get(port, "/metrics");
    assert_eq!(code, 200);
    assert!(body.contains("billshadow_build_info{"), "{body}");
    assert_eq!(get(port, "/healthz"), (200, "ok\n".to_owned()));
}

#[test]
fn serve_refuses_a_bad_policy_at_start() {
    let dir = stored_run();
    let d = dir.path();
    std::fs::write(d.join("bad.toml"), "[gate]\ncritical_amount = \"100\"\n").unwrap();
    let run = billshadow(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "s.db",
            "--policy",
            "bad.toml",
        ],
        d,
    );
    assert_eq!(run.code, 2, "{}", run.transcript());
}
