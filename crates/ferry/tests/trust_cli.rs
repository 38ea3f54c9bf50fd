//! The publisher's keys and signing tools, run as the `ferry` binary: sealed keys made with
//! passphrases from the environment and from files, root and targets metadata built, signed,
//! verified offline and pushed to a real `ferry serve` over loopback, and what a device is
//! offered as a result. The server runs with its default configuration, which requires signed
//! releases.

mod common;

use std::io::{BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{ferry, output, Server};
use ferry_api::{CheckinRequest, EnrollRequest};
use ferry_client::DeviceClient;
use serde_json::{json, Value};

/// Passphrases the commands find in their environment.
const PASSPHRASES: [(&str, &str); 4] = [
    ("ROOT_PASS", "root passphrase"),
    ("TARGETS_PASS", "targets passphrase"),
    ("TEAM_PASS", "vpn team passphrase"),
    ("NEW_ROOT_PASS", "new root passphrase"),
];

/// A publisher's working directory; commands run in it with the passphrase variables set and
/// cheap key sealing (argon2id at test cost: what is sealed is not what these tests are about).
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn read_json(&self, name: &str) -> Value {
        serde_json::from_slice(&self.read(name)).unwrap()
    }

    fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    fn command(&self, mut cmd: Command, args: &[&str]) -> (i32, String, String) {
        cmd.current_dir(self.dir.path()).env("FERRY_INSECURE_FAST_KEY_SEALING", "1").envs(PASSPHRASES).args(args);
        output(&mut cmd)
    }

    /// Runs `ferry ARGS` without a server.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.command(ferry(), args)
    }
}

/// A workspace and a server with a product, a platform, a group and one enrolled device.
struct Publisher {
    ws: Workspace,
    server: Server,
    runtime: tokio::runtime::Runtime,
    device: DeviceClient,
}

impl Publisher {
    fn new() -> Self {
        let ws = Workspace::new();
        let server = Server::start(&ws.path("data"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut publisher = Self { device: DeviceClient::new(&server.url, None).unwrap(), ws, server, runtime };
        publisher.ok(&["product", "create", "vpn-client"]);
        publisher.ok(&["platform", "create", "linux-x86_64"]);
        let key = publisher.ok(&["group", "create", "field", "--quiet"]).trim().to_owned();
        let request = EnrollRequest { device_id: "pc-1".parse().unwrap(), enrollment_key: Some(key) };
        let enrolled = publisher.runtime.block_on(publisher.device.enroll(&request)).unwrap();
        publisher.device.set_credential(&enrolled.credential).unwrap();
        publisher
    }

    /// As [`Publisher::new`], with [`Publisher::trusted_root`] pushed.
    fn with_root() -> Self {
        let publisher = Self::new();
        publisher.trusted_root();
        publisher
    }

    /// Runs `ferry ARGS` against the server.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.ws.command(self.server.cli(), args)
    }

    /// Runs `ferry ARGS` against the server at `url` (e.g. a [`TamperingProxy`] in front of it).
    fn run_via(&self, url: &str, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self.server.cli();
        cmd.env("FERRY_URL", url);
        self.ws.command(cmd, args)
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "ferry {args:?} failed:\n{err}");
        out
    }

    /// Runs a command that must succeed with `--json`; its output.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(&[args, &["--json"]].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ferry {args:?} printed no JSON ({e}):\n{out}"))
    }

    /// A root key and a targets key, and root version 1 naming them, signed and pushed.
    fn trusted_root(&self) {
        self.ok(&["key", "generate", "--out", "root.key", "--passphrase-env", "ROOT_PASS"]);
        self.ok(&["key", "generate", "--out", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
        self.create_root();
        self.ok(&["metadata", "sign", "root.json", "--key", "root.key", "--passphrase-env", "ROOT_PASS"]);
        self.ok(&["trust", "push", "root.json"]);
    }

    /// Fetches the server's online keys into online-keys.json and creates root.json (version 1,
    /// unsigned) offline from them and the public halves of root.key and targets.key.
    fn create_root(&self) {
        self.ok(&["trust", "online-keys", "--out", "online-keys.json"]);
        self.ok(&[
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
        ]);
    }

    /// Publishes a release of `product` for linux-x86_64 with one artifact, approves it for the
    /// device's group, and returns its id.
    fn publish(&self, product: &str, version: &str) -> String {
        let artifact = format!("{product}-{version}.bin");
        std::fs::write(self.ws.path(&artifact), format!("{product} {version} ").repeat(5000)).unwrap();
        let args = ["--product", product, "--version", version, "--platform", "linux-x86_64", "--artifact"];
        let id = self.ok(&[&["release", "publish"][..], &args, &[&artifact, "--quiet"]].concat()).trim().to_owned();
        self.ok(&["approve", &id, "--group", "field"]);
        id
    }

    /// The versions the device is offered at check-in.
    fn offered(&self) -> Vec<String> {
        let request = CheckinRequest { platform: Some("linux-x86_64".parse().unwrap()), ..Default::default() };
        let answer = self.runtime.block_on(self.device.checkin(&request)).unwrap();
        answer.offers.iter().map(|o| format!("{} {}", o.product, o.version)).collect()
    }

    fn unsigned_releases(&self) -> Value {
        self.json(&["trust", "status"])["unsigned_releases"].clone()
    }

    /// Asserts that the device is offered vpn-client 5.0 and no release waits for a signature.
    #[track_caller]
    fn assert_all_signed_and_offered(&self) {
        assert_eq!(self.offered(), vec!["vpn-client 5.0"]);
        assert_eq!(self.unsigned_releases(), json!([]));
    }
}

/// Asserts that `report` (of `trust push` or `release sign`) names `role` version `version`.
#[track_caller]
fn assert_pushed(report: &Value, role: &str, version: u64) {
    assert_eq!((report["role"].as_str(), report["version"].as_u64()), (Some(role), Some(version)));
}

#[test]
fn offline_keys_sign_a_release_that_the_device_is_then_offered() {
    let p = Publisher::new();
    let ws = &p.ws;
    assert_eq!(p.json(&["trust", "status"])["require_signed_releases"], true, "required by default");

    // Keys, the passphrase once from the environment and once from a file.
    let root = p.json(&["key", "generate", "--out", "root.key", "--passphrase-env", "ROOT_PASS"]);
    std::fs::write(ws.path("targets-pass.txt"), "targets passphrase\n").unwrap();
    let pass_file = ["--passphrase-file", "targets-pass.txt"];
    let targets =
        p.json(&[&["key", "generate", "--out", "targets.key", "--type", "ecdsa-p256"][..], &pass_file].concat());
    assert_eq!(targets["public_key"]["scheme"], "ecdsa-sha2-nistp256");
    assert_eq!(ws.read_json("root.key")["format"], "ferry-sealed-key");
    // FILE.pub is exactly the TUF public key, and its id is the one printed.
    let public = ws.read_json("root.key.pub");
    assert_eq!(public.as_object().unwrap().keys().collect::<Vec<_>>(), ["keytype", "keyval", "scheme"]);
    assert_eq!(public, root["public_key"]);
    assert_eq!(p.json(&["key", "show", "root.key.pub"])["keyid"], root["keyid"]);
    assert_eq!(p.json(&[&["key", "show", "targets.key"][..], &pass_file].concat())["keyid"], targets["keyid"]);

    // Root: created offline from the public keys and the server's online keys, signed, pushed.
    p.create_root();
    assert_eq!(ws.read_json("root.json")["signatures"], json!([]));
    let (code, _, err) = p.run(&["trust", "push", "root.json"]);
    assert_eq!(code, 11, "an unsigned file is not sent: {err}");
    assert!(err.contains("no signatures") && err.contains("ferry metadata sign"), "{err}");
    let signed = p.json(&["metadata", "sign", "root.json", "--key", "root.key", "--passphrase-env", "ROOT_PASS"]);
    assert_eq!(signed["signed_by"][0]["keyid"], root["keyid"]);
    assert_eq!(p.json(&["metadata", "verify", "root.json"])["ok"], true);
    assert_eq!(p.json(&["trust", "push", "root.json"])["version"], 1);

    // A release is not offered until signed targets metadata lists it.
    let id = p.publish("vpn-client", "5.0");
    assert_eq!(p.offered(), Vec::<String>::new());
    assert_eq!(p.unsigned_releases()[0]["id"].to_string(), id);

    // Draft online, sign and verify offline, push online.
    p.ok(&["trust", "draft", "--release", &id, "--out", "targets.json"]);
    let (code, out, err) = p.run(&["metadata", "verify", "targets.json", "--root", "root.json", "--json"]);
    assert_eq!(code, 11, "an unsigned draft does not verify: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((report["checks"][0]["valid"].clone(), report["checks"][0]["threshold"].clone()), (json!(0), json!(1)));
    p.ok(&[&["metadata", "sign", "targets.json", "--key", "targets.key"][..], &pass_file].concat());
    let before = ws.read("targets.json");
    let (code, _, err) =
        p.run(&[&["metadata", "sign", "targets.json", "--key", "targets.key"][..], &pass_file].concat());
    assert_eq!(code, 4, "a key signs once: {err}");
    assert!(err.contains("already signed"), "{err}");
    assert_eq!(ws.read("targets.json"), before, "nothing written");
    let report = p.json(&["metadata", "verify", "targets.json", "--root", "root.json"]);
    assert_eq!(report["checks"][0]["signed_by"], json!([targets["keyid"]]));
    assert_pushed(&p.json(&["trust", "push", "targets.json"]), "targets", 1);

    p.assert_all_signed_and_offered();
}

#[test]
fn a_new_root_is_accepted_only_when_signed_by_the_old_and_the_new_root_keys() {
    let p = Publisher::with_root();
    let ws = &p.ws;
    let new_key = p.json(&["key", "generate", "--out", "new-root.key", "--passphrase-env", "NEW_ROOT_PASS"]);
    p.ok(&["root", "rotate", "--from", "root.json", "--root-key", "new-root.key.pub", "--out", "root-2.json"]);
    let (old, new) = (ws.read_json("root.json")["signed"].clone(), ws.read_json("root-2.json")["signed"].clone());
    assert_eq!(new["version"], 2);
    assert_eq!(new["roles"]["root"]["keyids"], json!([new_key["keyid"]]));
    assert_eq!(new["roles"]["targets"], old["roles"]["targets"], "what is not given is kept");
    assert_eq!(new["roles"]["timestamp"], old["roles"]["timestamp"]);

    // Signed by the new key only: the offline check and the server both refuse it.
    p.ok(&["metadata", "sign", "root-2.json", "--key", "new-root.key", "--passphrase-env", "NEW_ROOT_PASS"]);
    let (code, out, err) = p.run(&["metadata", "verify", "root-2.json", "--root", "root.json", "--json"]);
    assert_eq!(code, 11, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let met: Vec<(&str, bool)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["keys_of"].as_str().unwrap(), c["met"].as_bool().unwrap()))
        .collect();
    assert_eq!(met, [("root version 1", false), ("root version 2 (itself)", true)]);
    let (code, _, err) = p.run(&["trust", "push", "root-2.json"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("invalid_metadata") && err.contains("trusted root"), "{err}");
    assert_eq!(p.json(&["trust", "status"])["roles"]["root"]["version"], 1);

    // Signed by the old key too: accepted.
    let signed = p.json(&["metadata", "sign", "root-2.json", "--key", "root.key", "--passphrase-env", "ROOT_PASS"]);
    assert_eq!(signed["signed_by"][0]["root_key_of_this_version"], false);
    assert_eq!(signed["signatures"], 2);
    assert_eq!(p.json(&["metadata", "verify", "root-2.json", "--root", "root.json"])["ok"], true);
    assert_eq!(p.json(&["trust", "push", "root-2.json"])["version"], 2);
    assert_eq!(p.json(&["trust", "status"])["roles"]["root"]["version"], 2);
}

#[test]
fn release_sign_drafts_signs_and_pushes_in_one_go() {
    let p = Publisher::with_root();
    let id = p.publish("vpn-client", "5.0");

    // The root key is not a targets key: the server refuses, and nothing is offered.
    let (code, _, err) = p.run(&["release", "sign", &id, "--key", "root.key", "--passphrase-env", "ROOT_PASS"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("valid signature"), "{err}");
    assert_eq!(p.offered(), Vec::<String>::new());

    let signed = p.json(&["release", "sign", &id, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    assert_pushed(&signed, "targets", 1);
    p.assert_all_signed_and_offered();
}

#[test]
fn a_product_team_signs_its_own_releases_through_a_delegated_role() {
    let p = Publisher::with_root();
    let ws = &p.ws;
    p.ok(&["product", "create", "gateway"]);
    p.ok(&["key", "generate", "--out", "team.key", "--passphrase-env", "TEAM_PASS"]);

    // The top-level targets delegates vpn-client/*/* to the team's key.
    let draft = p.json(&["trust", "draft", "--no-releases", "--out", "targets.json"]);
    assert_eq!(draft["targets"], 0);
    let delegate = ["targets", "delegate", "targets.json", "--role", "vpn-client", "--key", "team.key.pub"];
    let report = p.json(&delegate);
    assert_eq!(report["paths"], json!(["vpn-client/*/*"]));
    p.ok(&["metadata", "sign", "targets.json", "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    // Editing a signed file removes its signatures, and says so.
    let report = p.json(&delegate);
    assert_eq!((report["replaced"].clone(), report["removed_signatures"].clone()), (json!(true), json!(1)));
    assert_eq!(ws.read_json("targets.json")["signatures"], json!([]));
    assert_eq!(ws.read_json("targets.json")["signed"]["delegations"]["roles"].as_array().unwrap().len(), 1);
    p.ok(&["metadata", "sign", "targets.json", "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    p.ok(&["trust", "push", "targets.json"]);

    // The team signs a vpn-client release as its role.
    let vpn = p.publish("vpn-client", "5.0");
    let gateway = p.publish("gateway", "2.0");
    p.ok(&["trust", "draft", "--role", "vpn-client", "--release", &vpn, "--out", "vpn-client.json"]);
    p.ok(&["metadata", "sign", "vpn-client.json", "--key", "team.key", "--passphrase-env", "TEAM_PASS"]);
    let verify = ["metadata", "verify", "vpn-client.json", "--role", "vpn-client", "--targets", "targets.json"];
    assert_eq!(p.json(&verify)["ok"], true);
    let (code, _, err) = p.run(&["trust", "push", "vpn-client.json"]);
    assert_eq!(code, 11, "as top-level targets it is refused: {err}");
    assert_pushed(&p.json(&["trust", "push", "vpn-client.json", "--role", "vpn-client"]), "vpn-client", 1);
    assert_eq!(p.offered(), vec!["vpn-client 5.0"]);
    // The role's next draft adds only unsigned releases inside its paths, not gateway 2.0.
    let next = p.json(&["trust", "draft", "--role", "vpn-client", "--out", "vpn-client-2.json"]);
    assert_eq!(next["targets"], 1, "{next}");
    assert!(ws.read_json("vpn-client-2.json")["signed"]["targets"].get("gateway/2.0/gateway-2.0.bin").is_none());

    // Another product's release is outside the role's paths.
    let (code, _, err) = p.run(&[
        "release",
        "sign",
        &gateway,
        "--role",
        "vpn-client",
        "--key",
        "team.key",
        "--passphrase-env",
        "TEAM_PASS",
    ]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("outside the paths delegated"), "{err}");
    assert_eq!(p.unsigned_releases()[0]["id"].to_string(), gateway);
    assert_eq!(p.offered(), vec!["vpn-client 5.0"]);
}

/// Root metadata made offline from a key whose public half doubles as the "online keys".
fn offline_root(ws: &Workspace) {
    assert_eq!(ws.run(&["key", "generate", "--out", "a.key", "--passphrase-env", "ROOT_PASS"]).0, 0);
    let public = ws.read_json("a.key.pub");
    let online = json!({ "snapshot": public, "timestamp": public });
    std::fs::write(ws.path("online.json"), online.to_string()).unwrap();
    let create =
        ["root", "create", "--root-key", "a.key.pub", "--targets-key", "a.key.pub", "--online-keys", "online.json"];
    let (code, _, err) = ws.run(&[&create[..], &["--out", "root.json"]].concat());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_wrong_passphrase_has_its_own_exit_code_and_changes_nothing() {
    let ws = Workspace::new();
    offline_root(&ws);
    let before = ws.read("root.json");
    let (code, _, err) = ws.run(&["metadata", "sign", "root.json", "--key", "a.key", "--passphrase-env", "TEAM_PASS"]);
    assert_eq!(code, 12, "{err}");
    assert!(err.contains("cannot open the sealed key a.key: wrong passphrase"), "{err}");
    assert_eq!(ws.read("root.json"), before);
    assert_eq!(ws.run(&["key", "show", "a.key", "--passphrase-env", "TEAM_PASS"]).0, 12);

    // With several passphrases, a key opens with the one that fits.
    let both = ["--passphrase-env", "TEAM_PASS", "--passphrase-env", "ROOT_PASS"];
    let (code, _, err) = ws.run(&[&["metadata", "sign", "root.json", "--key", "a.key"][..], &both].concat());
    assert_eq!(code, 0, "{err}");
    assert_eq!(ws.run(&["metadata", "verify", "root.json"]).0, 0);
}

#[test]
fn key_files_are_never_replaced_without_force() {
    let ws = Workspace::new();
    let generate = |name: &str, extra: &[&str]| {
        ws.run(&[&["key", "generate", "--out", name, "--passphrase-env", "ROOT_PASS", "--json"][..], extra].concat())
    };
    let (code, out, _) = generate("a.key", &[]);
    assert_eq!(code, 0);
    let first: Value = serde_json::from_str(&out).unwrap();
    let (sealed, public) = (ws.read("a.key"), ws.read("a.key.pub"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&ws.path("a.key")), mode(&ws.path("a.key.pub"))), (0o600, 0o644));
    }

    let (code, _, err) = generate("a.key", &[]);
    assert_eq!(code, 10, "{err}");
    assert!(err.contains("a.key") && err.contains("already exists") && err.contains("--force"), "{err}");
    assert_eq!((ws.read("a.key"), ws.read("a.key.pub")), (sealed.clone(), public.clone()), "both kept");
    // An existing FILE.pub alone also stops it, before the private key is written.
    std::fs::write(ws.path("b.key.pub"), "keep me").unwrap();
    assert_eq!(generate("b.key", &[]).0, 10);
    assert!(!ws.exists("b.key"));
    assert_eq!(ws.read("b.key.pub"), b"keep me");

    let (code, out, err) = generate("a.key", &["--force"]);
    assert_eq!(code, 0, "{err}");
    let second: Value = serde_json::from_str(&out).unwrap();
    assert_ne!(second["keyid"], first["keyid"]);
    assert_ne!(ws.read("a.key"), sealed);
}

#[test]
fn without_a_terminal_the_passphrase_must_come_from_a_flag() {
    let ws = Workspace::new();
    let (code, _, err) = ws.run(&["key", "generate", "--out", "a.key"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--passphrase-env") && err.contains("--passphrase-file"), "{err}");
    assert!(!ws.exists("a.key") && !ws.exists("a.key.pub"), "nothing written");

    offline_root(&ws);
    let (code, _, err) = ws.run(&["metadata", "sign", "root.json", "--key", "a.key"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--passphrase-env"), "{err}");
    // A public key cannot sign, and says which file can.
    let (code, _, err) =
        ws.run(&["metadata", "sign", "root.json", "--key", "a.key.pub", "--passphrase-env", "ROOT_PASS"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is a public key"), "{err}");
}

#[test]
fn thresholds_must_be_reachable() {
    let ws = Workspace::new();
    offline_root(&ws);
    let create = ["root", "create", "--root-key", "a.key.pub", "--targets-key", "a.key.pub", "--online-keys"];
    for (flag, value) in [("--root-threshold", "2"), ("--targets-threshold", "0")] {
        let (code, _, err) = ws.run(&[&create[..], &["online.json", "--out", "r.json", flag, value]].concat());
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains("from 1 to 1"), "{err}");
    }
    assert!(!ws.exists("r.json"));
}

#[test]
fn online_keys_rotate_through_a_root_that_lists_the_next_keys() {
    let p = Publisher::with_root();
    let id = p.publish("vpn-client", "5.0");
    p.ok(&["release", "sign", &id, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    let current = p.ws.read_json("online-keys.json");

    // The server makes the next snapshot and timestamp keys; asking again shows the same ones.
    let next = p.json(&["trust", "online-keys", "--next", "--out", "next-keys.json"]);
    assert_ne!(next["timestamp"], current["timestamp"]);
    assert_eq!(p.json(&["trust", "online-keys", "--next"]), next);
    assert_eq!(p.json(&["trust", "online-keys"])["timestamp"], current["timestamp"], "not in force yet");

    // Root 2 lists them; signed by the root key (old and new root keys are the same here).
    p.ok(&["root", "rotate", "--from", "root.json", "--online-keys", "next-keys.json", "--out", "root-2.json"]);
    p.ok(&["metadata", "sign", "root-2.json", "--key", "root.key", "--passphrase-env", "ROOT_PASS"]);
    let pushed = p.json(&["trust", "push", "root-2.json"]);
    assert!(pushed["timestamp_version"].as_u64().is_some(), "snapshot and timestamp re-signed: {pushed}");
    let now_listed = p.json(&["trust", "online-keys"]);
    assert_eq!(now_listed["timestamp"], next["timestamp"]);
    assert_eq!(now_listed["snapshot"], next["snapshot"]);
    assert_eq!(p.offered(), vec!["vpn-client 5.0"], "the signed release stays offered");

    // The director's keys rotate on the server alone.
    let rotated = p.json(&["trust", "rotate-director-keys"]);
    assert_eq!(rotated["root_version"], 2);
    assert_ne!(rotated["director"], current["director"]);
}

#[test]
fn release_sign_carries_the_published_targets_into_the_next_version() {
    let p = Publisher::with_root();
    let first = p.publish("vpn-client", "5.0");
    let signed = p.json(&["release", "sign", &first, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    assert_pushed(&signed, "targets", 1);
    assert_eq!(signed["added"], json!(["vpn-client/5.0/vpn-client-5.0.bin"]));

    // The second release: checked against version 1, which the server publishes, and signed.
    let second = p.publish("vpn-client", "5.1");
    let (code, out, err) =
        p.run(&["release", "sign", &second, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("it adds 1 target(s) (over version 1):\n  vpn-client/5.1/vpn-client-5.1.bin\n"), "{out}");
    assert!(out.contains("into targets version 2"), "{out}");
    assert_eq!(p.unsigned_releases(), json!([]));

    // Version 2 lists both releases: the next draft carries them over and adds nothing.
    let draft = p.json(&["trust", "draft", "--no-releases", "--out", "targets-3.json"]);
    assert_eq!(
        (draft["version"].clone(), draft["targets"].clone(), draft["added"].clone()),
        (json!(3), json!(2), json!([]))
    );
    let listed = p.ws.read_json("targets-3.json")["signed"]["targets"].clone();
    let paths: Vec<&String> = listed.as_object().unwrap().keys().collect();
    assert_eq!(paths, ["vpn-client/5.0/vpn-client-5.0.bin", "vpn-client/5.1/vpn-client-5.1.bin"]);
}

#[test]
fn a_draft_the_server_tampered_with_is_refused_and_nothing_is_signed() {
    let p = Publisher::with_root();
    let first = p.publish("vpn-client", "5.0");
    p.ok(&["release", "sign", &first, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"]);
    let second = p.publish("vpn-client", "5.1");
    let sign = ["release", "sign", &second, "--key", "targets.key", "--passphrase-env", "TARGETS_PASS"];

    // An extra target slipped in, another hash for a published target, a new delegation.
    let extra = TamperingProxy::drafts(&p.server.url, |signed| {
        let entry = signed["targets"]["vpn-client/5.1/vpn-client-5.1.bin"].clone();
        signed["targets"]["vpn-client/9.9/evil.bin"] = entry;
    });
    let (code, _, err) = p.run_via(&extra.url, &sign);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("adds the target vpn-client/9.9/evil.bin") && err.contains("compromised"), "{err}");
    assert!(err.contains("nothing was signed"), "{err}");

    let rehashed = TamperingProxy::drafts(&p.server.url, |signed| {
        signed["targets"]["vpn-client/5.0/vpn-client-5.0.bin"]["hashes"]["sha256"] = json!("0".repeat(64));
    });
    let (code, _, err) = p.run_via(&rehashed.url, &sign);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("changes the published target vpn-client/5.0/vpn-client-5.0.bin (hashes)"), "{err}");

    let delegating = TamperingProxy::drafts(&p.server.url, |signed| {
        let key = json!({ "keytype": "ed25519", "scheme": "ed25519", "keyval": { "public": "0".repeat(64) } });
        let role =
            json!({ "name": "evil", "keyids": ["00"], "threshold": 1, "terminating": false, "paths": ["*/*/*"] });
        signed["delegations"] = json!({ "keys": { "00": key }, "roles": [role] });
    });
    let (code, _, err) = p.run_via(&delegating.url, &sign);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("changes the delegations"), "{err}");
    // `trust draft` refuses it the same way, and writes nothing for an offline signer.
    let (code, _, err) = p.run_via(&delegating.url, &["trust", "draft", "--release", &second, "--out", "t.json"]);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("changes the delegations") && err.contains("nothing was written"), "{err}");
    assert!(!p.ws.exists("t.json"));

    // The extra target slipped into the published version too, so that the draft seems to
    // carry it over: that version's signatures no longer verify with the root's targets keys.
    let evil = |signed: &mut Value| {
        let entry = signed["targets"]["vpn-client/5.0/vpn-client-5.0.bin"].clone();
        signed["targets"]["vpn-client/9.9/evil.bin"] = entry;
    };
    let forged = TamperingProxy::start(
        &p.server.url,
        Arc::new(move |target, signed| {
            let tampered = target.contains("/trust/image/draft") || target.ends_with("/tuf/image/1.targets.json");
            if tampered {
                evil(signed);
            }
            tampered
        }),
    );
    let (code, _, err) = p.run_via(&forged.url, &sign);
    assert_eq!(code, 11, "{err}");
    assert!(err.contains("does not verify") && err.contains("targets metadata has 0 valid signature(s)"), "{err}");

    // Nothing was pushed; straight to the server, the same command succeeds.
    assert_eq!(p.json(&["trust", "status"])["roles"]["targets"]["version"], 1);
    assert_eq!(p.unsigned_releases()[0]["id"].to_string(), second);
    assert_pushed(&p.json(&sign), "targets", 2);
}

/// Rewrites the `signed` part of a metadata file or draft fetched at a request target (path
/// and query); returns whether it changed anything.
type Tamper = Arc<dyn Fn(&str, &mut Value) -> bool + Send + Sync>;

/// A proxy in front of a server that rewrites metadata the server returns, as a compromised
/// server would; everything else passes through unchanged. One request per connection.
struct TamperingProxy {
    url: String,
}

impl TamperingProxy {
    /// Rewrites the drafts of targets metadata.
    fn drafts(upstream: &str, tamper: fn(&mut Value)) -> Self {
        Self::start(
            upstream,
            Arc::new(move |target, signed| {
                let draft = target.contains("/trust/image/draft");
                if draft {
                    tamper(signed);
                }
                draft
            }),
        )
    }

    fn start(upstream: &str, tamper: Tamper) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, tamper) = (upstream.clone(), tamper.clone());
                std::thread::spawn(move || relay(client, &upstream, &tamper));
            }
        });
        Self { url }
    }
}

/// Reads an HTTP/1.1 head: its lines without the blank one that ends it.
fn read_head(reader: &mut impl std::io::BufRead) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            return lines;
        }
        lines.push(line.trim_end().to_owned());
    }
}

/// The head with `name` set to `value` (any former value dropped), ending in a blank line.
fn with_header(head: &[String], name: &str, value: &str) -> Vec<u8> {
    let prefix = format!("{name}:");
    let mut out: Vec<String> = head.iter().filter(|l| !l.to_ascii_lowercase().starts_with(&prefix)).cloned().collect();
    out.push(format!("{name}: {value}"));
    format!("{}\r\n\r\n", out.join("\r\n")).into_bytes()
}

fn relay(client: TcpStream, upstream: &str, tamper: &Tamper) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let head = read_head(&mut reader);
    let length = head
        .iter()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let target = head[0].split(' ').nth(1).unwrap_or_default().to_owned();

    let mut server = TcpStream::connect(upstream).unwrap();
    server.write_all(&with_header(&head, "connection", "close")).unwrap();
    server.write_all(&body).unwrap();
    let mut answer = BufReader::new(server);
    let head = read_head(&mut answer);
    let mut body = Vec::new();
    answer.read_to_end(&mut body).unwrap();
    let ok = head[0].contains(" 200 ");
    let mut file = serde_json::from_slice::<Value>(&body).ok().filter(|f| ok && f.get("signed").is_some());
    let tampered = file.as_mut().is_some_and(|file| tamper(&target, &mut file["signed"]));
    let head = match file.filter(|_| tampered) {
        Some(file) => {
            body = serde_json::to_vec(&file).unwrap();
            with_header(&head, "content-length", &body.len().to_string())
        }
        None => format!("{}\r\n\r\n", head.join("\r\n")).into_bytes(),
    };
    let mut client = client;
    client.write_all(&head).unwrap();
    client.write_all(&body).unwrap();
}

/// `--root` pins the publisher's own root: signing goes ahead when the server's repository
/// chains from it, and is refused (exit 11, nothing signed) when it does not — a server that
/// replaced the whole root history with keys of its own.
#[test]
fn a_pinned_root_must_anchor_what_the_server_publishes() {
    let p = Publisher::with_root();
    let first = p.publish("vpn-client", "5.0");
    let signed = p.json(&[
        "release",
        "sign",
        &first,
        "--key",
        "targets.key",
        "--passphrase-env",
        "TARGETS_PASS",
        "--root",
        "root.json",
    ]);
    assert_pushed(&signed, "targets", 1);

    // The publisher's root names other keys than those the server's repository is signed by
    // (as when the server forged its root history): the published targets do not verify.
    p.ok(&["key", "generate", "--out", "other-targets.key", "--passphrase-env", "TARGETS_PASS"]);
    p.ok(&["key", "generate", "--out", "other-root.key", "--passphrase-env", "ROOT_PASS"]);
    p.ok(&[
        "root",
        "create",
        "--root-key",
        "other-root.key.pub",
        "--targets-key",
        "other-targets.key.pub",
        "--online-keys",
        "online-keys.json",
        "--out",
        "other-root.json",
    ]);
    p.ok(&["metadata", "sign", "other-root.json", "--key", "other-root.key", "--passphrase-env", "ROOT_PASS"]);
    let second = p.publish("vpn-client", "5.1");
    let (code, out, err) = p.run(&[
        "release",
        "sign",
        &second,
        "--key",
        "targets.key",
        "--passphrase-env",
        "TARGETS_PASS",
        "--root",
        "other-root.json",
    ]);
    assert_eq!(code, 11, "{out}\n{err}");
    assert!(err.contains("does not verify"), "{err}");
    assert_eq!(p.unsigned_releases().as_array().unwrap().len(), 1, "nothing was signed");
}
