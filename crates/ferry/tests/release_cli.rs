//! `ferry release delete|archive|unarchive|edit` and `ferry device why` against a `ferry serve`
//! on SQLite in a temporary directory: JSON output and exit codes.

mod common;

use common::{output, Server};

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn release_lifecycle_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    assert_eq!(run(&["product", "create", "vpn"]).0, 0);
    assert_eq!(run(&["platform", "create", "linux-x86_64"]).0, 0);
    assert_eq!(run(&["group", "create", "lab"]).0, 0);
    let artifact = dir.path().join("vpn.tar.gz");
    std::fs::write(&artifact, b"vpn bytes").unwrap();
    let artifact = artifact.to_str().unwrap();
    let publish = |version: &str| {
        run(&[
            "release",
            "publish",
            "--product",
            "vpn",
            "--version",
            version,
            "--platform",
            "linux-x86_64",
            "--artifact",
            artifact,
            "--json",
        ])
    };
    let (code, out, err) = publish("5.0");
    assert_eq!(code, 0, "{err}");
    let id = json(&out)["id"].to_string();

    // A version that compares equal is a conflict that names the existing release.
    let (code, _, err) = publish("5.00");
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("ranks equal") && err.contains(&format!("release {id}")), "{err}");

    let (code, out, err) = run(&["release", "edit", &id, "--notes", "new notes", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["notes"], "new notes");
    assert_eq!(run(&["release", "edit", &id]).0, 2, "edit needs --notes or --notes-file");

    let (code, out, err) = run(&["release", "archive", &id, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["archived"], true);
    let (_, out, _) = run(&["release", "list", "--json"]);
    assert_eq!(json(&out)[0]["archived"], true, "archived releases are still listed");
    let (code, out, _) = run(&["release", "list"]);
    assert_eq!(code, 0);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((header.last(), row.last()), (Some(&"ARCHIVED"), Some(&"yes")), "{out}");
    let (code, out, err) = run(&["release", "unarchive", &id, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["archived"], false);
    assert_eq!(run(&["release", "archive", "9999"]).0, 3);

    // Never approved: deletable once; then it is gone.
    let (code, out, err) = run(&["release", "delete", &id, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["deleted"], true);
    assert_eq!(run(&["release", "delete", &id]).0, 3);

    // Approved once: a conflict that points at archiving.
    let (_, out, _) = publish("6.0");
    let id = json(&out)["id"].to_string();
    assert_eq!(run(&["approve", &id, "--group", "lab"]).0, 0);
    assert_eq!(run(&["unapprove", &id, "--group", "lab"]).0, 0);
    let (code, _, err) = run(&["release", "delete", &id]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains(&format!("ferry release archive {id}")), "{err}");

    assert_eq!(server.stop(), Some(0));
}
