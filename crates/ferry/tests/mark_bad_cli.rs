//! `ferry release mark-bad` against a `ferry serve` on SQLite in a temporary directory: its
//! text and JSON output, `release show` and `release list` showing the mark, and the exit
//! codes of a missing reason, an empty one and an unknown release.

mod common;

use common::{output, Server};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn release_mark_bad() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    assert_eq!(run(&["product", "create", "vpn"]).0, 0);
    assert_eq!(run(&["platform", "create", "linux-x86_64"]).0, 0);
    let artifact = dir.path().join("vpn.tar.gz");
    std::fs::write(&artifact, b"vpn bytes").unwrap();
    let (code, out, err) = run(&[
        "release",
        "publish",
        "--product",
        "vpn",
        "--version",
        "5.0",
        "--platform",
        "linux-x86_64",
        "--artifact",
        artifact.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = json(&out)["id"].to_string();

    // Usage errors and refusals change nothing.
    let (code, _, err) = run(&["release", "mark-bad", &id]);
    assert_eq!(code, 2, "--reason is required: {err}");
    assert!(err.contains("--reason"), "{err}");
    let (code, _, err) = run(&["release", "mark-bad", &id, "--reason", " "]);
    assert_eq!(code, 8, "the server rejects an empty reason: {err}");
    assert!(err.contains("a reason is required"), "{err}");
    let (code, _, err) = run(&["release", "mark-bad", &id, "--reason", &"x".repeat(1025)]);
    assert_eq!(code, 8, "{err}");
    let (code, _, err) = run(&["release", "mark-bad", "9999", "--reason", "gone"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("release 9999 does not exist"), "{err}");
    let (_, out, _) = run(&["release", "show", &id, "--json"]);
    assert!(json(&out).get("bad").is_none(), "not marked: {out}");

    let (code, out, err) = run(&["release", "mark-bad", &id, "--reason", "drops the tunnel", "--json"]);
    assert_eq!(code, 0, "{err}");
    let marked = json(&out);
    assert_eq!(marked["bad"]["reason"], "drops the tunnel");
    assert_eq!(marked["bad"]["by"], "initial-admin");

    // Again, in text: the first mark stands.
    let (code, out, err) = run(&["release", "mark-bad", &id, "--reason", "something else"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("release {id} (vpn 5.0) is marked bad: drops the tunnel (by initial-admin")),
        "{out}"
    );
    assert!(out.contains("offered to no device"), "{out}");
    let (_, out, _) = run(&["release", "show", &id, "--json"]);
    assert_eq!(json(&out)["bad"], marked["bad"]);

    let (code, out, _) = run(&["release", "show", &id]);
    assert_eq!(code, 0);
    let line = out.lines().find(|l| l.starts_with("bad")).unwrap_or_else(|| panic!("no bad line:\n{out}"));
    assert!(line.contains("yes: drops the tunnel (by initial-admin"), "{line}");
    let (code, out, _) = run(&["release", "list"]);
    assert_eq!(code, 0);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    let bad = header.iter().position(|h| *h == "BAD").unwrap_or_else(|| panic!("no BAD column:\n{out}"));
    assert_eq!(row[row.len() - (header.len() - bad)], "yes", "{out}");
}
