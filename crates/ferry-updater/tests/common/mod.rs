//! Real fixtures for the updater's tests: repositories with freshly generated ed25519 and ECDSA
//! keys and really signed metadata, served over HTTP on 127.0.0.1 by a small axum server whose
//! files the test changes between requests, and which can misbehave on purpose (endless data,
//! a connection cut mid-file, `Range` ignored or answered wrongly).

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use ferry_tuf::metadata::sign;
use ferry_tuf::time::format_expires;
use ferry_tuf::{
    DelegatedRole, Delegations, KeyKind, MetaFile, Role, Root, SigningKey, Snapshot, TargetFile, Targets, Timestamp,
};
use ferry_updater::{Updater, UpdaterConfig};
use futures::{Stream, StreamExt as _};
use reqwest::Url;
use serde_json::{json, Value};

/// Where [`Serve::Endless`] gives up: far beyond anything the tests' clients should accept.
pub const ENDLESS_LIMIT: usize = 64 * 1024 * 1024;

/// The credential the server requires when started with one.
pub const TOKEN: &str = "ferry_dev_test-credential";

pub use ferry_core::time::now;

/// An expiry a week ahead.
pub fn later() -> String {
    format_expires(now() + 7 * 86_400)
}

/// An expiry that has passed.
pub fn past() -> String {
    format_expires(now() - 3600)
}

pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

pub fn key(kind: KeyKind) -> SigningKey {
    SigningKey::generate(kind).unwrap()
}

/// Content of `len` bytes that differs at every offset modulo 251.
pub fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// Every file in `dir` (not recursive) and its bytes: to show that nothing changed.
pub fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect()
}

/// Rewrites a signed metadata file's `signed` part after signing, keeping the signatures.
pub fn tamper(file: &[u8], change: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(file).unwrap();
    change(&mut value["signed"]);
    serde_json::to_vec_pretty(&value).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The HTTP server.

/// How the server answers for one path.
#[derive(Debug, Clone)]
pub enum Serve {
    /// The bytes; `Range: bytes=N-` is honoured (206 with `Content-Range`).
    Bytes(Vec<u8>),
    /// An endless body of `x`s, with no `Content-Length` (cut at [`ENDLESS_LIMIT`]).
    Endless,
    /// Once: a `Content-Length` of the whole, `after` bytes, then the connection is cut. Served
    /// as `Bytes` from then on.
    CutAfter { bytes: Vec<u8>, after: usize },
    /// The bytes, always whole with 200, whatever `Range` asks.
    IgnoreRange(Vec<u8>),
    /// For a `Range` request, 206 with the whole body and a `Content-Range` starting at 0.
    BadContentRange(Vec<u8>),
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct ServerState {
    files: HashMap<String, Serve>,
    log: Vec<Logged>,
    token: Option<String>,
}

/// The test's HTTP server; clones share it.
#[derive(Clone)]
pub struct Server {
    pub addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl Server {
    /// Starts serving on 127.0.0.1 on a free port; with `token`, every request without
    /// `Authorization: Bearer TOKEN` gets 401, as the Ferry server's `/tuf/*` routes do.
    pub async fn start(token: Option<&str>) -> Self {
        let state = Arc::new(Mutex::new(ServerState { token: token.map(str::to_owned), ..Default::default() }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    pub fn put(&self, path: &str, serve: Serve) {
        self.state.lock().unwrap().files.insert(path.to_owned(), serve);
    }

    pub fn put_bytes(&self, path: &str, bytes: &[u8]) {
        self.put(path, Serve::Bytes(bytes.to_vec()));
    }

    pub fn remove(&self, path: &str) {
        self.state.lock().unwrap().files.remove(path);
    }

    /// What the server serves as plain bytes at `path`.
    pub fn bytes(&self, path: &str) -> Vec<u8> {
        match self.state.lock().unwrap().files.get(path) {
            Some(Serve::Bytes(bytes)) => bytes.clone(),
            other => panic!("{path} is served as {other:?}"),
        }
    }

    /// The requests received so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The paths requested so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.log().into_iter().map(|l| l.path).collect()
    }
}

async fn handle(State(state): State<Arc<Mutex<ServerState>>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let text = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
    let (range, authorization) = (text(header::RANGE), text(header::AUTHORIZATION));
    let mut state = state.lock().unwrap();
    let response = answer(&mut state, &path, range.as_deref(), authorization.as_deref());
    state.log.push(Logged { path, range, authorization, status: response.status().as_u16() });
    response
}

fn answer(state: &mut ServerState, path: &str, range: Option<&str>, authorization: Option<&str>) -> Response {
    if let Some(token) = &state.token {
        if authorization != Some(format!("Bearer {token}").as_str()) {
            return status(StatusCode::UNAUTHORIZED);
        }
    }
    let Some(serve) = state.files.get(path).cloned() else { return status(StatusCode::NOT_FOUND) };
    match serve {
        Serve::Bytes(bytes) => match range.and_then(range_start) {
            Some(from) if from < bytes.len() => partial(&bytes, from, from),
            Some(_) => status(StatusCode::RANGE_NOT_SATISFIABLE),
            None => whole(bytes),
        },
        Serve::IgnoreRange(bytes) => whole(bytes),
        Serve::BadContentRange(bytes) if range.is_some() => partial(&bytes, 0, 0),
        Serve::BadContentRange(bytes) => whole(bytes),
        Serve::Endless => {
            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
            let endless = futures::stream::repeat_with(move || Ok::<_, io::Error>(chunk.clone()));
            // Cut after ENDLESS_LIMIT so that a client that fails to stop fails its test (with a
            // transport error) instead of hanging it.
            let limited = endless.take(ENDLESS_LIMIT / (16 * 1024)).chain(futures::stream::once(async {
                Err(io::Error::other("the endless body reached the test server's limit"))
            }));
            Response::new(Body::from_stream(limited))
        }
        Serve::CutAfter { bytes, after } => {
            state.files.insert(path.to_owned(), Serve::Bytes(bytes.clone()));
            let total = bytes.len();
            let stream = CutStream { prefix: Some(Bytes::copy_from_slice(&bytes[..after])), paused: false };
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(header::CONTENT_LENGTH, total.into());
            response
        }
    }
}

fn range_start(range: &str) -> Option<usize> {
    range.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response
}

fn whole(bytes: Vec<u8>) -> Response {
    Response::new(Body::from(bytes))
}

/// 206 with `bytes[from..]`, claiming in `Content-Range` to start at `claimed`.
fn partial(bytes: &[u8], from: usize, claimed: usize) -> Response {
    let mut response = Response::new(Body::from(bytes[from..].to_vec()));
    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    let value = format!("bytes {claimed}-{}/{}", bytes.len() - 1, bytes.len());
    response.headers_mut().insert(header::CONTENT_RANGE, value.parse().unwrap());
    response
}

/// Yields the prefix, then once `Pending` (so that the server flushes the prefix to the
/// socket), then an error, which makes the server drop the connection mid-body.
struct CutStream {
    prefix: Option<Bytes>,
    paused: bool,
}

impl Stream for CutStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(prefix)));
        }
        if !self.paused {
            self.paused = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(io::Error::other("the test server cuts the connection"))))
    }
}

// ---------------------------------------------------------------------------------------------
// Repositories.

/// One TUF repository served under `/{name}/metadata/` and `/{name}/targets/`, with consistent
/// snapshots. Change `targets` (or the keys), then [`Repo::publish`] a new version.
pub struct Repo {
    pub server: Server,
    pub name: String,
    pub root_keys: Vec<SigningKey>,
    pub targets_key: SigningKey,
    pub snapshot_key: SigningKey,
    pub timestamp_keys: Vec<SigningKey>,
    pub timestamp_threshold: u32,
    /// Each root version's file, from version 1.
    pub roots: Vec<Vec<u8>>,
    /// The top-level targets; `version` is the last published.
    pub targets: Targets,
    /// Delegated roles: their key and metadata (`version` is the last published).
    pub delegated: BTreeMap<String, (SigningKey, Targets)>,
    pub snapshot_version: u64,
    pub timestamp_version: u64,
    /// The last published targets, snapshot and timestamp files.
    pub last_targets: Vec<u8>,
    pub last_snapshot: Vec<u8>,
    pub last_timestamp: Vec<u8>,
}

impl Repo {
    /// A repository with root v1 published; [`Repo::publish`] publishes targets, snapshot and
    /// timestamp v1.
    pub fn new(server: &Server, name: &str) -> Self {
        Self::with_timestamp_keys(server, name, 1, 1)
    }

    /// As [`Repo::new`], with `keys` timestamp keys of which `threshold` must sign.
    pub fn with_timestamp_keys(server: &Server, name: &str, keys: usize, threshold: u32) -> Self {
        let mut repo = Self {
            server: server.clone(),
            name: name.to_owned(),
            root_keys: vec![key(KeyKind::Ed25519)],
            targets_key: key(KeyKind::EcdsaP256),
            snapshot_key: key(KeyKind::Ed25519),
            timestamp_keys: (0..keys).map(|_| key(KeyKind::EcdsaP256)).collect(),
            timestamp_threshold: threshold,
            roots: Vec::new(),
            targets: Targets::new(0, later()),
            delegated: BTreeMap::new(),
            snapshot_version: 0,
            timestamp_version: 0,
            last_targets: Vec::new(),
            last_snapshot: Vec::new(),
            last_timestamp: Vec::new(),
        };
        let root = repo.root_meta(1);
        let signers: Vec<&SigningKey> = repo.root_keys.iter().collect();
        let file = sign(&root, &signers).unwrap();
        repo.put_root(file);
        repo
    }

    /// Root metadata of `version` naming the repository's current keys.
    pub fn root_meta(&self, version: u64) -> Root {
        Root::new(
            version,
            later(),
            &[
                ("root", self.root_keys.iter().map(|k| k.public().clone()).collect(), 1),
                ("targets", vec![self.targets_key.public().clone()], 1),
                ("snapshot", vec![self.snapshot_key.public().clone()], 1),
                (
                    "timestamp",
                    self.timestamp_keys.iter().map(|k| k.public().clone()).collect(),
                    self.timestamp_threshold,
                ),
            ],
        )
    }

    /// Publishes a root file as the next version `N.root.json`.
    pub fn put_root(&mut self, file: Vec<u8>) {
        self.server.put_bytes(&self.metadata_path(&format!("{}.root.json", self.roots.len() + 1)), &file);
        self.roots.push(file);
    }

    pub fn metadata_path(&self, file: &str) -> String {
        format!("/{}/metadata/{file}", self.name)
    }

    pub fn metadata_url(&self) -> Url {
        self.server.url(&format!("/{}/metadata/", self.name))
    }

    pub fn target_base_url(&self) -> Url {
        self.server.url(&format!("/{}/targets/", self.name))
    }

    /// Where the server serves target `path`: `dir/HASH.basename`.
    pub fn target_path(&self, path: &str, target: &TargetFile) -> String {
        let hash = target.sha256().unwrap();
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = if dir.is_empty() { String::new() } else { format!("{dir}/") };
        format!("/{}/targets/{dir}{hash}.{base}", self.name)
    }

    /// Adds a target to `role` (`targets` or a delegated role) and serves its content.
    pub fn add_target(&mut self, role: &str, path: &str, content: &[u8], custom: Option<Value>) -> TargetFile {
        let target = TargetFile::new(content.len() as u64, &sha256(content), custom);
        self.server.put_bytes(&self.target_path(path, &target), content);
        let targets = if role == "targets" { &mut self.targets } else { &mut self.delegated.get_mut(role).unwrap().1 };
        targets.targets.insert(path.to_owned(), target.clone());
        target
    }

    /// Delegates `paths` from the top-level targets to a new role with its own key.
    pub fn delegate(&mut self, role: &str, paths: &[&str]) {
        let key = key(KeyKind::Ed25519);
        let delegations = self.targets.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Vec::new(),
            unrecognized: Default::default(),
        });
        delegations.keys.insert(key.key_id().to_owned(), key.public().clone());
        delegations.roles.push(DelegatedRole {
            name: role.to_owned(),
            keyids: vec![key.key_id().to_owned()],
            threshold: 1,
            terminating: false,
            paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
            path_hash_prefixes: None,
        });
        self.delegated.insert(role.to_owned(), (key, Targets::new(0, later())));
    }

    /// Signs the next version of the top-level targets (and of each delegated role), a snapshot
    /// listing them with hashes, and a timestamp naming it; serves them all.
    pub fn publish(&mut self) {
        let mut meta = BTreeMap::new();
        for (role, (key, targets)) in &mut self.delegated {
            targets.version += 1;
            let file = sign(targets, &[key]).unwrap();
            self.server.put_bytes(&format!("/{}/metadata/{}.{role}.json", self.name, targets.version), &file);
            meta.insert(format!("{role}.json"), MetaFile::of_bytes(targets.version, &file));
        }
        self.targets.version += 1;
        let targets = self.sign_targets(&self.targets, &self.targets_key);
        self.server.put_bytes(&self.metadata_path(&format!("{}.targets.json", self.targets.version)), &targets);
        meta.insert("targets.json".to_owned(), MetaFile::of_bytes(self.targets.version, &targets));
        self.last_targets = targets;
        let snapshot = self.publish_snapshot(meta);
        self.publish_timestamp(MetaFile::of_bytes(self.snapshot_version, &snapshot), &later(), None);
    }

    pub fn sign_targets(&self, targets: &Targets, key: &SigningKey) -> Vec<u8> {
        sign(targets, &[key]).unwrap()
    }

    /// Signs and serves snapshot `snapshot_version + 1` listing `meta`.
    pub fn publish_snapshot(&mut self, meta: BTreeMap<String, MetaFile>) -> Vec<u8> {
        self.snapshot_version += 1;
        let file = sign(&Snapshot::new(self.snapshot_version, later(), meta), &[&self.snapshot_key]).unwrap();
        self.server.put_bytes(&self.metadata_path(&format!("{}.snapshot.json", self.snapshot_version)), &file);
        self.last_snapshot = file.clone();
        file
    }

    /// Signs and serves timestamp `timestamp_version + 1` naming `snapshot`, with `signers`
    /// (default: every timestamp key).
    pub fn publish_timestamp(&mut self, snapshot: MetaFile, expires: &str, signers: Option<&[&SigningKey]>) -> Vec<u8> {
        self.timestamp_version += 1;
        let timestamp = Timestamp::new(self.timestamp_version, expires.to_owned(), snapshot);
        let all: Vec<&SigningKey> = self.timestamp_keys.iter().collect();
        let file = sign(&timestamp, signers.unwrap_or(&all)).unwrap();
        self.serve_timestamp(&file);
        file
    }

    /// As [`Repo::publish_timestamp`], naming the last published snapshot.
    pub fn republish_timestamp(&mut self, expires: &str, signers: Option<&[&SigningKey]>) -> Vec<u8> {
        let snapshot = MetaFile::of_bytes(self.snapshot_version, &self.last_snapshot);
        self.publish_timestamp(snapshot, expires, signers)
    }

    pub fn serve_timestamp(&mut self, file: &[u8]) {
        self.server.put_bytes(&self.metadata_path("timestamp.json"), file);
        self.last_timestamp = file.to_vec();
    }

    /// An updater for this repository with its trusted root (v1) installed in `dir`, sending
    /// the test credential.
    pub async fn updater(&self, dir: &Path) -> Updater {
        ferry_updater::init(dir, &self.roots[0]).await.unwrap();
        Updater::new(self.config(dir)).unwrap()
    }

    pub fn config(&self, dir: &Path) -> UpdaterConfig {
        let mut config = UpdaterConfig::new(dir, self.metadata_url());
        config.target_base_url = Some(self.target_base_url());
        config.headers.insert(header::AUTHORIZATION, format!("Bearer {TOKEN}").parse().unwrap());
        config
    }
}

/// The image repository's `custom` for a target, as `ferry-server`'s `target_for` writes it.
pub fn ferry_custom(product: &str, version: &str, counter: i64) -> Value {
    json!({
        "ferry": {
            "product": product,
            "version": version,
            "kind": "full",
            "platforms": ["arm64"],
            "required": false,
            "reboot": "required",
            "release_counter": counter,
            "media_type": "application/octet-stream",
        }
    })
}

/// A temporary directory tree for one test: metadata directories and a download directory.
pub struct Dirs {
    _root: tempfile::TempDir,
    pub metadata: PathBuf,
    pub director_metadata: PathBuf,
    pub downloads: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let metadata = root.path().join("metadata");
        let director_metadata = root.path().join("director-metadata");
        let downloads = root.path().join("downloads");
        Self { metadata, director_metadata, downloads, _root: root }
    }
}

/// The version of a metadata file.
pub fn version_of<T: Role>(file: &[u8]) -> u64 {
    ferry_tuf::Verifiable::<T>::parse(T::TYPE, file).unwrap().signed.version()
}
