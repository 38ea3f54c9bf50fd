//! Runs the `ferry` binary: offline behaviour (usage, exit codes, error format) and one
//! end-to-end session against a `ferry serve` it starts on SQLite in a temporary directory.

mod common;

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

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = output(ferry().args(["approve", "seven", "--group", "lab"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a release id"), "{err}");
    let (code, _, err) = output(ferry().args(["product", "create", "../etc"]));
    assert_eq!(code, 2, "{err}");
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
    let id = release["id"].to_string();

    assert_eq!(run(&["approve", &id, "--group", "lab", "--deadline", "2030-01-01T00:00:00Z"]).0, 0);
    let (_, out, _) = run(&["approval", "list", "--group", "lab", "--json"]);
    let approvals: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(approvals[0]["deadline"], 1_893_456_000);
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
