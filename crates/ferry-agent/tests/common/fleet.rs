//! A real fleet on loopback for end-to-end tests: a `ferry serve` child process with its own
//! data directory, set up through the `ferry` CLI as an administrator would (catalogue, group,
//! offline keys, signed root), and `ferry-agent` processes with their own state directories.
//!
//! The `ferry` binary belongs to another package, so it is built through Cargo before it runs
//! (see `workspace_binary`): never a stale one.
#![allow(dead_code)]

#[path = "../../../ferry/tests/common/serve.rs"]
mod serve;
#[path = "../../../ferry/tests/common/workspace_binary.rs"]
mod workspace_binary;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

pub const PASSPHRASE: &str = "e2e passphrase";
pub const PLATFORM: &str = "linux-x86_64";
pub const PRODUCT: &str = "app";

/// The `ferry` binary beside `ferry-agent`, built from the current sources.
pub fn ferry_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| workspace_binary::workspace_binary("ferry", Path::new(AGENT))).clone()
}

/// The `ferry-agent` binary of this build (Cargo builds it for the package's own tests).
pub const AGENT: &str = env!("CARGO_BIN_EXE_ferry-agent");

/// The process exit code of `e`, as [`output`] returns it.
pub fn exit(e: ferry_agent::exit::Exit) -> i32 {
    e.code().into()
}

/// Runs a command to its end: exit code, stdout, stderr.
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out: Output = cmd.stdin(Stdio::null()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Runs a command that must succeed; its stdout.
#[track_caller]
pub fn ok(cmd: &mut Command) -> String {
    let (code, out, err) = output(cmd);
    assert_eq!(code, 0, "{cmd:?} failed\n--- stdout\n{out}\n--- stderr\n{err}");
    out
}

/// A server, its administrator's keys, and a group devices enroll into.
pub struct Fleet {
    pub dir: tempfile::TempDir,
    child: Child,
    pub url: String,
    pub enrollment_key: String,
}

impl Fleet {
    /// Starts `ferry serve` and sets up the catalogue, the group `office` and signed trust.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("server");
        let mut cmd = Command::new(ferry_bin());
        cmd.env_clear().args(["serve", "--data-dir"]).arg(&data);
        let (child, url) = serve::spawn(cmd);
        let mut fleet = Self { dir, child, url, enrollment_key: String::new() };
        fleet.set_up();
        fleet
    }

    fn set_up(&mut self) {
        ok(self.cli().args(["product", "create", PRODUCT]));
        ok(self.cli().args(["platform", "create", PLATFORM]));
        self.enrollment_key =
            ok(self.cli().args(["group", "create", "office", "--interval", "1h", "--quiet"])).trim().to_owned();
        for key in ["root", "targets"] {
            ok(self.cli().args([
                "key",
                "generate",
                "--out",
                &format!("{key}.key"),
                "--passphrase-env",
                "KEY_PASSPHRASE",
            ]));
        }
        ok(self.cli().args(["trust", "online-keys", "--out", "online-keys.json"]));
        ok(self.cli().args([
            "root",
            "create",
            "--root-key",
            "root.key.pub",
            "--targets-key",
            "targets.key.pub",
            "--online-keys",
            "online-keys.json",
            "--out",
            "root.json",
        ]));
        ok(self.cli().args([
            "metadata",
            "sign",
            "root.json",
            "--key",
            "root.key",
            "--passphrase-env",
            "KEY_PASSPHRASE",
        ]));
        ok(self.cli().args(["trust", "push", "root.json"]));
        // What a device is provisioned with: the two repositories' roots.
        std::fs::copy(self.path("root.json"), self.path("image-root.json")).unwrap();
        let director_root = self.get("/tuf/director/root.json");
        std::fs::write(self.path("director-root.json"), director_root).unwrap();
    }

    /// A path in the fleet's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `ferry` as the administrator, in the fleet's directory.
    pub fn cli(&self) -> Command {
        let mut cmd = Command::new(ferry_bin());
        cmd.env_clear()
            .current_dir(self.dir.path())
            .env("FERRY_URL", &self.url)
            .env("FERRY_TOKEN_FILE", self.dir.path().join("server/admin-token"))
            .env("KEY_PASSPHRASE", PASSPHRASE)
            .env("FERRY_INSECURE_FAST_KEY_SEALING", "1");
        cmd
    }

    /// GET with the admin token (plain HTTP/1.1 over loopback).
    pub fn get(&self, path: &str) -> Vec<u8> {
        let token = std::fs::read_to_string(self.path("server/admin-token")).unwrap();
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {}\r\nconnection: close\r\n\r\n",
            token.trim()
        )
        .unwrap();
        let mut response = Vec::new();
        std::io::Read::read_to_end(&mut stream, &mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..split]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "GET {path}: chunked answer");
        response[split + 4..].to_vec()
    }

    /// Publishes, signs and approves a release of [`PRODUCT`] whose artifact is a gzip tar of
    /// `files`; returns its id.
    pub fn publish(&self, version: &str, files: &[(&str, &[u8])], extra: &[&str]) -> i64 {
        let artifact = self.path(&format!("{PRODUCT}-{version}.tar.gz"));
        write_tar_gz(&artifact, files);
        self.publish_file(version, &artifact, "application/gzip", extra)
    }

    /// Publishes, signs and approves a release with `artifact` as its one artifact.
    pub fn publish_file(&self, version: &str, artifact: &Path, media_type: &str, extra: &[&str]) -> i64 {
        let id = ok(self
            .cli()
            .args(["release", "publish", "--product", PRODUCT, "--version", version, "--platform", PLATFORM])
            .arg("--artifact")
            .arg(artifact)
            .args(["--media-type", media_type, "--quiet"])
            .args(extra));
        let id = id.trim().to_owned();
        ok(self.cli().args(["release", "sign", &id, "--key", "targets.key", "--passphrase-env", "KEY_PASSPHRASE"]));
        ok(self.cli().args(["approve", &id, "--group", "office"]));
        id.parse().unwrap()
    }

    /// `ferry device show ID --json`.
    pub fn device(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&ok(self.cli().args(["device", "show", id, "--json"]))).unwrap()
    }

    /// The device's latest state of `release` as the server has it (`None` also while the
    /// device has not enrolled).
    pub fn release_state(&self, device: &str, release: i64) -> Option<String> {
        let (code, out, _) = output(self.cli().args(["device", "show", device, "--json"]));
        if code != 0 {
            return None;
        }
        let d: serde_json::Value = serde_json::from_str(&out).unwrap();
        d["releases"]
            .as_array()?
            .iter()
            .find(|r| r["release"] == release)
            .and_then(|r| r["state"].as_str())
            .map(str::to_owned)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a gzip-compressed tar holding `files` (mode 0755 when the name ends in `.sh`).
pub fn write_tar_gz(path: &Path, files: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(if name.ends_with(".sh") { 0o755 } else { 0o644 });
        header.set_mtime(1_767_312_000);
        header.set_cksum();
        tar.append_data(&mut header, name, *bytes).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// One device: its state directory, install root and configuration.
pub struct Device {
    pub id: String,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Device {
    /// A device of `fleet` installing [`PRODUCT`] with the `dir` handler into `DIR/opt/app`,
    /// with a health check that fails when the installed version has a file named `BAD`.
    /// `extra` is appended to the top level of the configuration (before any table).
    pub fn new(fleet: &Fleet, id: &str, extra: &str) -> Self {
        Self::with_server(fleet, id, &fleet.url, extra)
    }

    /// Like [`Device::new`], reaching the fleet's server at `server_url` (through a proxy).
    pub fn with_server(fleet: &Fleet, id: &str, server_url: &str, extra: &str) -> Self {
        let dir = fleet.path(id);
        std::fs::create_dir_all(&dir).unwrap();
        let health = dir.join("health.sh");
        std::fs::write(&health, "#!/bin/sh\nif [ -e \"$FERRY_INSTALL_DIR/BAD\" ]; then echo \"$FERRY_VERSION is bad\"; exit 1; fi\necho healthy\n").unwrap();
        std::fs::set_permissions(&health, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let config = dir.join("config.toml");
        let text = format!(
            r#"server_url = "{url}"
platform = "{PLATFORM}"
device_id = "{id}"
enrollment_key = "{key}"
state_dir = "{state}"
log_level = "debug"
{extra}
[trust]
image_root = "{image_root}"
director_root = "{director_root}"

[checkin]
initial_jitter_secs = 0

[[handler]]
product = "{PRODUCT}"
type = "dir"
root = "{root}"
[handler.health_check]
argv = ["{health}"]
timeout_secs = 30
"#,
            url = server_url,
            key = fleet.enrollment_key,
            state = dir.join("state").display(),
            image_root = fleet.path("image-root.json").display(),
            director_root = fleet.path("director-root.json").display(),
            root = dir.join("opt/app").display(),
            health = health.display(),
        );
        std::fs::write(&config, text).unwrap();
        Self { id: id.to_owned(), dir, config }
    }

    /// `ferry-agent --config CONFIG`.
    pub fn agent(&self) -> Command {
        let mut cmd = Command::new(AGENT);
        cmd.env_clear().arg("--config").arg(&self.config);
        cmd
    }

    /// The version `opt/app/current` points at.
    pub fn current(&self) -> Option<String> {
        let link = std::fs::read_link(self.dir.join("opt/app/current")).ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// `ferry-agent status --json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&ok(self.agent().args(["status", "--json"]))).unwrap()
    }
}

/// A child process killed when the test ends, also when it fails (a paused or daemon agent
/// must not outlive a failed test).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
