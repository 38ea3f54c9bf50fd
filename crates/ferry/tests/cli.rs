//! Runs the `ferry` binary: offline behaviour (usage, exit codes, error format) and one
//! end-to-end session against a `ferry serve` it starts on SQLite in a temporary directory.

mod common;
#[path = "common/doc_commands.rs"]
mod doc_commands;

use std::net::TcpListener;

use common::{ferry, output, Server};

/// A local port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn help_lists_the_commands() {
    let (code, out, _) = output(ferry().arg("--help"));
    assert_eq!(code, 0);
    for cmd in [
        "serve",
        "product",
        "release",
        "approve",
        "unapprove",
        "device",
        "token",
        "key",
        "root",
        "metadata",
        "targets",
        "trust",
        "completions",
    ] {
        assert!(out.contains(cmd), "{cmd} missing from:\n{out}");
    }
}

/// The real binary shows the help of every subcommand, as its own help lists them.
#[test]
fn every_subcommand_shows_its_help() {
    let paths = doc_commands::run_every_help(std::path::Path::new(env!("CARGO_BIN_EXE_ferry")));
    for expected in [&["serve"][..], &["release", "publish"], &["trust", "push"], &["device", "why"]] {
        assert!(paths.iter().any(|p| p == expected), "{expected:?} missing from {paths:?}");
    }
}

/// `ferry serve` logging as text to something that is not a terminal (a pipe here; a file or
/// the journal in service) writes no colour codes.
#[test]
fn server_logs_on_a_pipe_have_no_colour_codes() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = ferry()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("ferry server listening") {
        if log.read_line(&mut seen).unwrap() == 0 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("ferry server listening") && seen.contains(" INFO "), "{seen}");
    assert!(!seen.contains('\x1b'), "colour codes in a log that is not a terminal: {seen:?}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = output(ferry().args(["approve", "seven", "--group", "lab"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a release id"), "{err}");
    let (code, _, err) = output(ferry().args(["product", "create", "../etc"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn usage_errors_honour_json() {
    for args in [&["release", "publish", "--json"][..], &["--json", "nosuch"], &["device", "list", "--json", "--bogus"]]
    {
        let (code, out, err) = output(ferry().args(args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        let v: serde_json::Value =
            serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{err}"));
        assert_eq!(v["error"]["code"], "usage", "{v}");
        assert_eq!(v["error"]["exit_code"], 2, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("Usage: ferry"), "{v}");
    }
    // Help is not an error, with or without --json.
    let (code, out, _) = output(ferry().args(["release", "--help", "--json"]));
    assert_eq!(code, 0);
    assert!(out.contains("Usage: ferry release"), "{out}");
}

#[test]
fn usage_lines_do_not_ask_for_what_the_environment_gives() {
    let (code, _, err) = output(
        ferry()
            .env("FERRY_TOKEN", "ferry_adm_x")
            .env("FERRY_TOKEN_FILE", "/nonexistent")
            .env("FERRY_URL", "http://127.0.0.1:1")
            .args(["trust", "push"]),
    );
    assert_eq!(code, 2, "{err}");
    let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap_or_else(|| panic!("no usage line:\n{err}"));
    assert_eq!(usage, "Usage: ferry trust push <FILE>");
    // The environment still counts, and --help still names the variables.
    let (code, _, err) = output(ferry().env("FERRY_URL", "http://127.0.0.1:1").args(["whoami", "--token", "t"]));
    assert_eq!(code, 7, "FERRY_URL is used: {err}");
    let (_, help, _) = output(ferry().args(["whoami", "--help"]));
    for var in ["FERRY_URL", "FERRY_TOKEN", "FERRY_TOKEN_FILE"] {
        assert!(help.contains(var), "{var} missing from:\n{help}");
    }
}

#[test]
fn completions_and_default_config_print() {
    let (code, out, _) = output(ferry().args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(out.contains("_ferry"), "{out}");
    let (code, out, _) = output(ferry().args(["config", "default"]));
    assert_eq!(code, 0);
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
}

#[test]
fn a_missing_token_is_a_usage_error() {
    let (code, _, err) = output(ferry().args(["whoami"]));
    assert_eq!(code, 2);
    assert!(err.starts_with("error: no admin token"), "{err}");
}

#[test]
fn an_unreadable_token_file_is_a_local_file_error() {
    let (code, _, err) = output(ferry().args(["whoami", "--token-file", "/nonexistent/token"]));
    assert_eq!(code, 10);
    assert!(err.contains("cannot read /nonexistent/token"), "{err}");
}

#[test]
fn a_token_flag_beats_a_token_file_from_the_environment_and_vice_versa() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    // The flag wins, so the missing file is never read and the request is attempted.
    let (code, _, err) = output(ferry().env("FERRY_TOKEN_FILE", "/nonexistent/token").args([
        "whoami",
        "--token",
        "ferry_adm_x",
        "--server",
        &server,
    ]));
    assert_eq!(code, 7, "{err}");
    let (code, _, err) = output(ferry().env("FERRY_TOKEN", "ferry_adm_x").args([
        "whoami",
        "--token-file",
        "/nonexistent/token",
        "--server",
        &server,
    ]));
    assert_eq!(code, 10, "{err}");
    let (code, _, err) = output(ferry().args(["whoami", "--token", "a", "--token-file", "/b"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn an_unreachable_server_exits_7_with_advice() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    let (code, _, err) = output(ferry().args(["product", "list", "--token", "ferry_adm_x", "--server", &server]));
    assert_eq!(code, 7);
    assert!(err.contains("cannot reach the ferry server"), "{err}");
    assert!(err.contains("is `ferry serve` running"), "{err}");
}

#[test]
fn json_errors_are_objects_on_stderr() {
    let (code, out, err) = output(ferry().args(["whoami", "--json", "--token", "t", "--server", "localhost:1"]));
    assert_eq!(code, 2);
    assert!(out.is_empty());
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(v["error"]["code"], "usage");
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(v["error"]["message"].as_str().unwrap().contains("invalid server url"));
}

#[test]
fn publish_checks_the_release_before_any_network() {
    let dir = tempfile::tempdir().unwrap();
    let hidden = dir.path().join(".hidden.bin");
    std::fs::write(&hidden, b"x").unwrap();
    let server = format!("http://127.0.0.1:{}", closed_port());
    let base = ["release", "publish", "--product", "p", "--version", "1", "--platform", "x"];
    let (code, _, err) =
        output(ferry().args(base).args(["--token", "t", "--server", &server, "--artifact"]).arg(&hidden));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("rename the file"), "{err}");

    let ok = dir.path().join("ok.bin");
    std::fs::write(&ok, b"x").unwrap();
    let (code, _, err) = output(
        ferry().args(base).args(["--kind", "patch", "--token", "t", "--server", &server, "--artifact"]).arg(&ok),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--applies-from"), "{err}");

    // A file name that says nothing about its media type, and no --media-type: refused with
    // the names that are understood.
    let notes = dir.path().join("vpn-client-5.0.txt");
    std::fs::write(&notes, b"x").unwrap();
    let (code, _, err) =
        output(ferry().args(base).args(["--token", "t", "--server", &server, "--artifact"]).arg(&notes));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot tell its media type"), "{err}");
    for ending in [".tar.gz", ".tgz", ".tar.zst", ".tar", ".bin", "--media-type"] {
        assert!(err.contains(ending), "{ending} missing from: {err}");
    }
    let (_, help, _) = output(ferry().args(["release", "publish", "--help"]));
    assert!(help.contains(".tar.gz and .tgz application/gzip"), "{help}");
}

#[test]
fn publish_infers_media_types_from_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    assert_eq!(run(&["product", "create", "fw"]).0, 0);
    assert_eq!(run(&["platform", "create", "gw"]).0, 0);
    let cases = [
        ("fw-1.tar.gz", None, "application/gzip"),
        ("fw-2.tgz", None, "application/gzip"),
        ("fw-3.tar.zst", None, "application/zstd"),
        ("fw-4.tar", None, "application/x-tar"),
        ("fw-5.bin", None, "application/octet-stream"),
        ("fw-6.tar.gz", Some("application/x-gtar"), "application/x-gtar"),
        ("fw-7.hex", Some("application/octet-stream"), "application/octet-stream"),
    ];
    for (i, (name, given, expected)) in cases.into_iter().enumerate() {
        let path = dir.path().join(name);
        std::fs::write(&path, name).unwrap();
        let version = (i + 1).to_string();
        let mut args =
            vec!["release", "publish", "--product", "fw", "--version", &version, "--platform", "gw", "--json"];
        args.extend(["--artifact", path.to_str().unwrap()]);
        if let Some(given) = given {
            args.extend(["--media-type", given]);
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{name}: {err}");
        let release: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(release["artifacts"][0]["media_type"], expected, "{name}");
    }
}

#[test]
#[cfg(unix)]
fn publish_approve_and_exit_codes_against_a_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let run = |args: &[&str]| output(server.cli().args(args));

    assert_eq!(run(&["product", "create", "vpn-client"]).0, 0);
    assert_eq!(run(&["product", "create", "vpn-client"]).0, 4, "a taken name is a conflict");
    assert_eq!(run(&["product", "show", "nope"]).0, 3);
    assert_eq!(run(&["platform", "create", "windows-x86_64"]).0, 0);
    let (code, out, err) = run(&["group", "create", "lab", "--interval", "30m", "--json"]);
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(created["enrollment_key"].as_str().unwrap().starts_with("ferry_enr_"));
    assert_eq!(created["group"]["checkin_interval_secs"], 1800);
    assert_eq!(run(&["group", "set", "lab", "--interval", "10s"]).0, 8, "the server rejects it");

    let artifact = dir.path().join("setup-5.0.msi");
    std::fs::write(&artifact, vec![42u8; 200_000]).unwrap();
    let artifact = artifact.to_str().unwrap();
    let (code, out, err) = run(&["content", "upload", artifact, "--json"]);
    assert_eq!(code, 0, "{err}");
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((info["length"].as_u64(), info["created"].as_bool()), (Some(200_000), Some(true)));
    let (_, out, _) = run(&["content", "upload", artifact, "--json"]);
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((again["sha256"].clone(), again["created"].as_bool()), (info["sha256"].clone(), Some(false)));

    let (code, out, err) = run(&[
        "release",
        "publish",
        "--product",
        "vpn-client",
        "--version",
        "5.0",
        "--platform",
        "windows-x86_64",
        "--artifact",
        artifact,
        "--classification",
        "security",
        "--depends-on",
        "vpn-client>=4.0",
        "--notes",
        "fixes",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let release: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(release["artifacts"][0]["name"], "setup-5.0.msi");
    assert_eq!(release["artifacts"][0]["sha256"], info["sha256"]);
    assert_eq!(release["artifacts"][0]["media_type"], "application/x-msi");
    let id = release["id"].to_string();
    assert_eq!(run(&["release", "list", "--product", "vpn-client"]).0, 0);
    let (code, _, err) = run(&["release", "list", "--product", "nosuch"]);
    assert_eq!(code, 3, "an unknown product is not an empty list: {err}");
    assert!(err.contains("nosuch"), "{err}");

    // Every time in JSON output is RFC 3339, UTC, whole seconds.
    assert_eq!(run(&["approve", &id, "--group", "lab", "--deadline", "2030-01-01T02:00:00+02:00"]).0, 0);
    let (_, out, _) = run(&["approval", "list", "--group", "lab", "--json"]);
    let approvals: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approvals[0]["deadline"], "2030-01-01T00:00:00Z");
    let approved_at = approvals[0]["approved_at"].as_str().unwrap();
    assert!(approved_at.len() == 20 && approved_at.ends_with('Z'), "{approved_at}");
    assert!(release["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{release}");

    // `device events --limit N` shows the latest N, oldest first.
    let key = created["enrollment_key"].as_str().unwrap().to_owned();
    send_events(&server.url, &key, id.parse().unwrap(), 5);
    let (code, out, err) = run(&["device", "events", "gw-1", "--limit", "2", "--json"]);
    assert_eq!(code, 0, "{err}");
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    let seqs: Vec<_> = events.as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(events[0]["at"], "2025-01-31T12:00:04Z");
    assert_eq!(run(&["unapprove", &id, "--group", "lab"]).0, 0);
    assert_eq!(run(&["unapprove", &id, "--group", "lab"]).0, 3);

    let (code, out, _) = run(&["token", "create", "reader", "--role", "viewer", "--json"]);
    assert_eq!(code, 0);
    let viewer: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = output(
        server
            .cli()
            .env_remove("FERRY_TOKEN_FILE")
            .env("FERRY_TOKEN", viewer["secret"].as_str().unwrap())
            .args(["product", "create", "other"]),
    );
    assert_eq!(code, 6, "a viewer may not create products: {err}");
    assert_eq!(run(&["device", "accept", "nobody"]).0, 3);

    assert_eq!(server.stop(), Some(0), "ferry serve exits 0 on SIGTERM");
}

/// Enrolls device `gw-1` with `key`, reports vpn-client 5.0 installed (`release` must be that
/// release) and sends `count` status events for it, with
/// sequence numbers 1… and device times 2025-01-31T12:00:01Z….
fn send_events(url: &str, key: &str, release: i64, count: i64) {
    use ferry_api::{EnrollRequest, EventBatch};
    use ferry_core::NewEvent;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut device = ferry_client::DeviceClient::new(url, None).unwrap();
        let request = EnrollRequest {
            device_id: ferry_core::DeviceId::new("gw-1").unwrap(),
            enrollment_key: Some(key.to_owned()),
        };
        let enrolled = device.enroll(&request).await.unwrap();
        device.set_credential(&enrolled.credential).unwrap();
        // A device reports events only for releases it has a part in: here, one it runs.
        let checkin = ferry_api::CheckinRequest {
            installed: [("vpn-client".parse().unwrap(), "5.0".parse().unwrap())].into(),
            ..Default::default()
        };
        device.checkin(&checkin).await.unwrap();
        let events = (1..=count)
            .map(|seq| NewEvent {
                seq,
                release: ferry_core::ReleaseId(release),
                state: ferry_core::DeviceState::Downloading,
                progress: Some(seq * 1000),
                error_code: None,
                message: None,
                at: 1_738_324_800 + seq,
            })
            .collect();
        device.send_events(&EventBatch { events }).await.unwrap();
    });
}

#[test]
#[cfg(unix)]
fn the_last_admin_token_stays_and_access_is_recovered_on_the_server() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let run = |args: &[&str]| output(server.cli().args(args));
    let (code, out, err) = run(&["token", "list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let tokens: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let initial = tokens[0]["id"].as_i64().unwrap().to_string();
    let (code, _, err) = run(&["token", "revoke", &initial]);
    assert_eq!(code, 4, "revoking the last admin token is a conflict: {err}");
    assert!(err.contains("last admin token") && err.contains("ferry token create"), "{err}");
    assert_eq!(run(&["whoami"]).0, 0, "the token still works");

    // The secret is lost; whoever runs the server makes a new admin token, with no token.
    std::fs::remove_file(data.join("admin-token")).unwrap();
    let (code, _, err) = output(ferry().args(["token", "recover", "--data-dir"]).arg(dir.path().join("elsewhere")));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no database at") && err.contains("--data-dir"), "{err}");
    let (code, out, err) = output(ferry().args(["token", "recover", "--quiet", "--data-dir"]).arg(&data));
    assert_eq!(code, 0, "{err}");
    let secret = out.trim();
    assert!(secret.starts_with("ferry_adm_"), "{out}");
    let saved = data.join("admin-token");
    assert_eq!(std::fs::read_to_string(&saved).unwrap().trim(), secret);
    assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);

    // The running server accepts it at once, as an admin who may now revoke the old token.
    let (code, out, err) = run(&["whoami", "--json"]);
    assert_eq!(code, 0, "{err}");
    let whoami: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((whoami["name"].as_str(), whoami["role"].as_str()), (Some("recovered-admin"), Some("admin")));
    assert_eq!(run(&["token", "revoke", &initial]).0, 0);
}

#[test]
#[cfg(unix)]
fn dynamic_and_nested_groups_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let run = |args: &[&str]| output(server.cli().args(args));
    let json = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };

    json(&["group", "create", "all", "--json"]);
    let lab = json(&["group", "create", "lab", "--parent", "all", "--json"]);
    let filter = r#"attr.site = "osaka" and version(vpn-client) < "5.0""#;
    let osaka = json(&["group", "create", "osaka", "--filter", filter, "--parent", "all", "--json"]);
    assert_eq!(osaka["enrollment_key"], serde_json::Value::Null, "a dynamic group has no key");
    assert_eq!((osaka["group"]["filter"].as_str(), osaka["group"]["parent"].as_str()), (Some(filter), Some("all")));
    let (code, out, _) = run(&["group", "show", "osaka"]);
    assert_eq!(code, 0);
    assert!(out.contains(filter) && out.contains("parent"), "{out}");

    enroll_and_report(&server.url, lab["enrollment_key"].as_str().unwrap(), "gw-osaka", "osaka");
    enroll_and_report(&server.url, lab["enrollment_key"].as_str().unwrap(), "gw-kyoto", "kyoto");
    let preview = json(&["group", "preview", filter, "--json"]);
    assert_eq!((preview["count"].as_u64(), preview["devices"].clone()), (Some(1), serde_json::json!(["gw-osaka"])));
    let (code, out, _) = run(&["group", "preview", r#"attr.site exists"#]);
    assert_eq!(code, 0);
    assert!(out.contains("2 device(s) match") && out.contains("gw-kyoto") && out.contains("gw-osaka"), "{out}");
    let detail = json(&["device", "show", "gw-osaka", "--json"]);
    assert_eq!(detail["effective_groups"], serde_json::json!(["all", "lab", "osaka"]));
    let (_, out, _) = run(&["device", "show", "gw-kyoto"]);
    assert!(out.contains("effective groups") && out.contains("all, lab"), "{out}");

    // A cycle is a conflict (exit 4) that names it; `update` is `set`.
    let (code, _, err) = run(&["group", "update", "all", "--parent", "lab"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("all -> lab -> all"), "{err}");
    let moved = json(&["group", "update", "osaka", "--no-parent", "--filter", r#"attr.site = "osaka""#, "--json"]);
    assert_eq!(
        (moved["parent"].clone(), moved["filter"].as_str()),
        (serde_json::Value::Null, Some(r#"attr.site = "osaka""#))
    );

    // A filter that does not parse is refused by the server (exit 8), with its position.
    let (code, _, err) =
        run(&["group", "create", "bad", "--filter", r#"platform = "linux-x86_64" and attr.site "osaka""#]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("at column 41: expected a comparison operator"), "{err}");
    let (code, _, err) = run(&["group", "preview", "platform ="]);
    assert_eq!(code, 8, "{err}");
    assert!(err.contains("at column 11"), "{err}");
    // Static membership in a dynamic group is a conflict.
    assert_eq!(run(&["device", "groups", "gw-kyoto", "osaka"]).0, 4);
    assert_eq!(run(&["group", "rotate-key", "osaka"]).0, 4);
}

/// Enrolls `id` with `key` and checks in reporting vpn-client 4.0 at `site`.
fn enroll_and_report(url: &str, key: &str, id: &str, site: &str) {
    use ferry_api::EnrollRequest;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut device = ferry_client::DeviceClient::new(url, None).unwrap();
        let request = EnrollRequest { device_id: id.parse().unwrap(), enrollment_key: Some(key.to_owned()) };
        let enrolled = device.enroll(&request).await.unwrap();
        device.set_credential(&enrolled.credential).unwrap();
        let checkin = ferry_api::CheckinRequest {
            platform: Some("linux-x86_64".parse().unwrap()),
            installed: [("vpn-client".parse().unwrap(), "4.0".parse().unwrap())].into(),
            attributes: [("site".to_owned(), site.to_owned())].into(),
            ..Default::default()
        };
        device.checkin(&checkin).await.unwrap();
    });
}
