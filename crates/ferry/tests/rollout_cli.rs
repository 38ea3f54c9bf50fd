//! `ferry rollout …` against a real `ferry serve`: every subcommand, its `--json` output and its
//! exit codes.

mod common;

use common::{output, Server};
use serde_json::Value;

#[test]
fn rollout_commands_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    let json = |args: &[&str]| -> Value {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };

    assert_eq!(run(&["product", "create", "vpn-client"]).0, 0);
    assert_eq!(run(&["platform", "create", "linux-x86_64"]).0, 0);
    assert_eq!(run(&["group", "create", "office"]).0, 0);
    let artifact = dir.path().join("vpn-5.0.tar.gz");
    std::fs::write(&artifact, b"vpn 5.0").unwrap();
    let release = json(&[
        "release",
        "publish",
        "--product",
        "vpn-client",
        "--version",
        "5.0",
        "--platform",
        "linux-x86_64",
        "--artifact",
        artifact.to_str().unwrap(),
        "--json",
    ]);
    let id = release["id"].to_string();

    // Mistakes the CLI sees itself are usage errors (2) that say what to change.
    for (args, needle) in [
        (&["--waves", "1,10"][..], "last wave must be 100"),
        (&["--gate", "1"], "wave 1 opens"),
        (&["--soak", "1h,2h"], "one for all or one per wave"),
        (&["--rate", "fast"], "not a rate"),
        (&["--success", "120"], "not a percentage"),
    ] {
        let mut all = vec!["rollout", "create", &id, "--target", "office"];
        all.extend_from_slice(args);
        let (code, _, err) = run(&all);
        assert_eq!(code, 2, "{all:?}: {err}");
        assert!(err.contains(needle), "{all:?}: {err}");
    }
    // The server refuses what only it can check: an unknown group (3), a plan out of range (8).
    let (code, _, err) = run(&["rollout", "create", &id, "--target", "nobody"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nobody"), "{err}");
    let (code, _, err) = run(&["rollout", "create", &id, "--target", "office", "--commit-timeout", "10s"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("commit timeout"), "{err}");

    let created = json(&[
        "rollout",
        "create",
        &id,
        "--target",
        "office",
        "--waves",
        "5,50,100",
        "--soak",
        "10m,1h,0",
        "--success",
        "90",
        "--failure",
        "2.5",
        "--failure-min",
        "4",
        "--gate",
        "3",
        "--rate",
        "100/1h",
        "--max-in-progress",
        "20",
        "--json",
    ]);
    let rollout = &created["rollout"];
    let rid = rollout["id"].to_string();
    assert_eq!(rollout["state"], "running");
    assert_eq!(rollout["release"].to_string(), id);
    let waves = rollout["waves"].as_array().unwrap();
    assert_eq!(waves.len(), 3);
    assert_eq!((waves[0]["share"].as_u64(), waves[0]["soak_secs"].as_u64()), (Some(500), Some(600)));
    assert_eq!((waves[1]["success"].as_u64(), waves[1]["failure"].as_u64()), (Some(9000), Some(250)));
    assert_eq!((waves[2]["manual_gate"].as_bool(), waves[2]["failure_min"].as_u64()), (Some(true), Some(4)));
    assert_eq!(rollout["limits"]["rate"]["period_secs"], 3600);
    assert_eq!(rollout["limits"]["max_in_progress"], 20);
    assert_eq!(created["timeline"][0]["cause"]["kind"], "created");

    let listed = json(&["rollout", "list", "--active", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let listed = json(&["rollout", "list", "--release", &id, "--json"]);
    assert_eq!(listed[0]["id"].to_string(), rid);
    let (code, out, err) = run(&["rollout", "show", &rid]);
    assert_eq!(code, 0, "{err}");
    for needle in ["running, wave 1 of 3", "100 per 1h, 20 in progress", "2.5% and 4", "created"] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }

    // Actions, their refusals (4) and the timeline they leave.
    assert_eq!(run(&["rollout", "pause", &rid, "--note", "checking a report"]).0, 0);
    let (code, _, err) = run(&["rollout", "pause", &rid]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("already paused"), "{err}");
    let (code, _, err) = run(&["rollout", "advance", &rid]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("resume it first"), "{err}");
    assert_eq!(run(&["rollout", "resume", &rid]).0, 0);
    let advanced = json(&["rollout", "advance", &rid, "--json"]);
    assert_eq!(advanced["rollout"]["wave"], 1);
    let cancelled = json(&["rollout", "cancel", &rid, "--note", "superseded by 5.1", "--json"]);
    assert_eq!(cancelled["rollout"]["state"], "cancelled");
    let actions: Vec<String> = cancelled["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"]["action"].as_str().unwrap_or("-").to_owned())
        .collect();
    assert_eq!(actions, ["-", "pause", "resume", "advance", "cancel"]);
    assert_eq!(cancelled["timeline"][1]["cause"]["note"], "checking a report");
    assert_eq!(run(&["rollout", "cancel", &rid]).0, 4, "a finished rollout refuses every action");
    assert!(json(&["rollout", "list", "--active", "--json"]).as_array().unwrap().is_empty());

    // Group waves first: a pilot ring, then shares of the target.
    assert_eq!(run(&["group", "create", "pilot"]).0, 0);
    let piloted =
        json(&["rollout", "create", &id, "--target", "office", "--waves", "pilot,50,100", "--soak", "0", "--json"]);
    let waves = piloted["rollout"]["waves"].as_array().unwrap();
    assert_eq!((waves[0]["group"].as_str(), waves[0]["share"].as_u64()), (Some("pilot"), Some(0)));
    assert_eq!((waves.len(), waves[1]["group"].is_null()), (3, true));
    let (code, out, err) = run(&["rollout", "show", &piloted["rollout"]["id"].to_string()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("group pilot"), "{out}");
    let (code, _, err) = run(&["rollout", "create", &id, "--target", "office", "--waves", "nobody,100"]);
    assert_eq!(code, 3, "an unknown pilot group: {err}");
    let (code, _, err) = run(&["rollout", "create", &id, "--target", "office", "--waves", "pilot,50,lab,100"]);
    assert_eq!(code, 2, "groups come first: {err}");

    // Maintenance windows on groups: set, shown, refused when wrong, removed.
    let late =
        json(&["group", "create", "late", "--window", "Mon-Fri 22:00-06:00", "--time-zone", "Asia/Tokyo", "--json"]);
    assert_eq!(late["group"]["window"]["time_zone"], "Asia/Tokyo");
    assert_eq!(late["group"]["window"]["periods"], "Mon-Fri 22:00-06:00");
    let (code, out, _) = run(&["group", "show", "late"]);
    assert!(code == 0 && out.contains("Mon-Fri 22:00-06:00 (Asia/Tokyo)"), "{out}");
    let (code, _, err) = run(&["group", "set", "late", "--window", "Mon 25:00-26:00"]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("not a time of day"), "{err}");
    let (code, _, err) = run(&["group", "set", "late", "--window", "daily 01:00-02:00", "--time-zone", "Mars/Base"]);
    assert_eq!(code, 8, "{err}");
    let cleared = json(&["group", "set", "late", "--no-window", "--json"]);
    assert!(cleared["window"].is_null(), "{cleared}");

    let (code, _, err) = run(&["rollout", "show", "999"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ferry rollout list"), "{err}");
    assert_eq!(run(&["rollout", "show", "x"]).0, 2);
}
