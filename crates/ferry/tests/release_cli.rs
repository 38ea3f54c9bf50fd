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

#[test]
fn device_why_explains_releases_not_approved_for_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    assert_eq!(run(&["product", "create", "vpn"]).0, 0);
    assert_eq!(run(&["platform", "create", "linux-x86_64"]).0, 0);
    let (_, out, _) = run(&["group", "create", "lab", "--json"]);
    let key = json(&out)["enrollment_key"].as_str().unwrap().to_owned();
    let artifact = dir.path().join("vpn.tar.gz");
    std::fs::write(&artifact, b"vpn bytes").unwrap();
    let artifact = artifact.to_str().unwrap();
    let mut ids = Vec::new();
    for version in ["1.0", "2.0"] {
        let (code, out, err) = run(&[
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
            "--quiet",
        ]);
        assert_eq!(code, 0, "{err}");
        ids.push(out.trim().to_owned());
    }
    assert_eq!(run(&["approve", &ids[0], "--group", "lab"]).0, 0);

    // The device enrolls and checks in as linux-x86_64 with nothing installed.
    let url = server.url.clone();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
        let mut device = ferry_client::DeviceClient::new(&url, None).unwrap();
        let request = ferry_api::EnrollRequest { device_id: "pc-1".parse().unwrap(), enrollment_key: Some(key) };
        let enrolled = device.enroll(&request).await.unwrap();
        device.set_credential(&enrolled.credential).unwrap();
        let checkin =
            ferry_api::CheckinRequest { platform: Some("linux-x86_64".parse().unwrap()), ..Default::default() };
        device.checkin(&checkin).await.unwrap();
    });

    let (code, out, err) = run(&["device", "why", "pc-1"]);
    assert_eq!(code, 0, "{err}");
    let row = |id: &str| out.lines().find(|l| l.split_whitespace().next() == Some(id)).unwrap_or_default().to_owned();
    // The server requires signed releases: the approved one waits for its signature.
    assert!(row(&ids[0]).contains("awaiting_signature"), "{out}");
    assert!(row(&ids[1]).contains("not_approved") && row(&ids[1]).contains("not approved for group lab"), "{out}");
    let (code, out, _) = run(&["device", "why", "pc-1", "--json"]);
    assert_eq!(code, 0);
    let report = json(&out);
    assert_eq!(report["groups"], serde_json::json!(["lab"]));
    assert_eq!(report["decisions"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(report["decisions"][0]["verdict"], "not_approved", "{out}");
    assert_eq!(report["awaiting_signature"], serde_json::json!([ids[0].parse::<i64>().unwrap()]));
    assert_eq!(server.stop(), Some(0));
}
