//! How an [`crate::Updater`] reaches its repository and what it accepts.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ferry_tuf::trusted::{
    DEFAULT_ROOT_MAX, DEFAULT_SNAPSHOT_MAX, DEFAULT_TARGETS_MAX, DEFAULT_TIMESTAMP_MAX, MAX_ROOT_ROTATIONS,
};
use reqwest::header::HeaderMap;
use reqwest::Url;

use crate::error::{Error, Result};

/// 2025-01-01T00:00:00Z: a clock reading before this has not been set (see the crate
/// documentation, "Devices without a real-time clock").
pub const DEFAULT_EARLIEST_PLAUSIBLE_TIME: i64 = 1_735_689_600;

/// Default timeout for connecting, for a whole metadata request, and for a target download
/// that receives nothing.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One repository's settings. [`UpdaterConfig::new`] gives the defaults; fields are public so
/// that the agent sets what its own configuration says.
#[derive(Clone)]
pub struct UpdaterConfig {
    /// Where trusted metadata lives: `root.json` (required, see [`crate::init`]),
    /// `timestamp.json`, `snapshot.json`, `targets.json` and delegated `ROLE.json` files, each the
    /// original bytes of the newest version that verified.
    pub metadata_dir: PathBuf,
    /// The repository's metadata URL; a `/` is appended when missing.
    pub metadata_url: Url,
    /// Where targets are fetched from; needed only to download. A `/` is appended when missing.
    pub target_base_url: Option<Url>,
    /// Headers sent with every request, e.g. `Authorization: Bearer …` (the Ferry server requires
    /// a device credential on `/tuf/*`). Never printed by `Debug`.
    pub headers: HeaderMap,
    /// How many new root versions one refresh follows at most (5.3.2).
    pub max_root_rotations: u32,
    /// Size cap of a `N.root.json`, in bytes.
    pub root_max_length: u64,
    /// Size cap of `timestamp.json`, in bytes.
    pub timestamp_max_length: u64,
    /// Size cap of the snapshot, in bytes. When the timestamp gives the snapshot's length, the
    /// cap is the smaller of the two.
    pub snapshot_max_length: u64,
    /// Size cap of a targets role (top-level or delegated), in bytes. When the snapshot gives the
    /// role's length, the cap is the smaller of the two.
    pub targets_max_length: u64,
    /// Connect timeout, timeout of a whole metadata request, and how long a target download
    /// may receive nothing before it is abandoned (resumably).
    pub request_timeout: Duration,
    /// With consistent snapshots, fetch targets as `dir/HASH.basename` (the specification's
    /// default and what the Ferry server serves); otherwise as their plain path.
    pub prefix_targets_with_hash: bool,
    /// An HTTP client to use instead of building one (the agent's, with its proxy and
    /// bandwidth settings). When given, `request_timeout` applies only per metadata request.
    pub client: Option<reqwest::Client>,
    /// Largest average download rate of targets, in bytes per second (`None`: unlimited). The
    /// transfer pauses between chunks to stay under it; metadata is not throttled.
    pub bandwidth_limit: Option<u64>,
    /// A fixed "now" in Unix seconds, for tests. `None` (the default) reads the system clock at
    /// the start of each refresh: the specification's fixed update start time (5.1).
    pub now: Option<i64>,
    /// A clock reading before this (Unix seconds) means the clock was never set, and refresh
    /// refuses to run ([`Error::ClockNotSet`]).
    pub earliest_plausible_time: i64,
}

impl UpdaterConfig {
    /// Defaults: the caps of `ferry_tuf::trusted`, 32 root rotations, hash-prefixed targets,
    /// no extra headers, no target base URL, the system clock.
    pub fn new(metadata_dir: impl Into<PathBuf>, metadata_url: Url) -> Self {
        Self {
            metadata_dir: metadata_dir.into(),
            metadata_url,
            target_base_url: None,
            headers: HeaderMap::new(),
            max_root_rotations: MAX_ROOT_ROTATIONS,
            root_max_length: DEFAULT_ROOT_MAX,
            timestamp_max_length: DEFAULT_TIMESTAMP_MAX,
            snapshot_max_length: DEFAULT_SNAPSHOT_MAX,
            targets_max_length: DEFAULT_TARGETS_MAX,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            prefix_targets_with_hash: true,
            client: None,
            bandwidth_limit: None,
            now: None,
            earliest_plausible_time: DEFAULT_EARLIEST_PLAUSIBLE_TIME,
        }
    }

    /// The HTTP client: the one given, or one built with rustls and the timeouts. No total
    /// request timeout is set on it, since a firmware image may take long to arrive; metadata
    /// requests get one each.
    pub(crate) fn build_client(&self) -> Result<reqwest::Client> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        reqwest::Client::builder()
            .connect_timeout(self.request_timeout)
            .read_timeout(self.request_timeout)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
    }
}

/// `url` with a trailing `/`, so that file names join under it.
pub(crate) fn as_directory(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl fmt::Debug for UpdaterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials: only their names are shown.
        let headers: Vec<&str> = self.headers.keys().map(|k| k.as_str()).collect();
        f.debug_struct("UpdaterConfig")
            .field("metadata_dir", &self.metadata_dir)
            .field("metadata_url", &self.metadata_url.as_str())
            .field("target_base_url", &self.target_base_url.as_ref().map(Url::as_str))
            .field("headers", &headers)
            .field("max_root_rotations", &self.max_root_rotations)
            .field("root_max_length", &self.root_max_length)
            .field("timestamp_max_length", &self.timestamp_max_length)
            .field("snapshot_max_length", &self.snapshot_max_length)
            .field("targets_max_length", &self.targets_max_length)
            .field("request_timeout", &self.request_timeout)
            .field("prefix_targets_with_hash", &self.prefix_targets_with_hash)
            .field("client", &self.client.as_ref().map(|_| "given"))
            .field("bandwidth_limit", &self.bandwidth_limit)
            .field("now", &self.now)
            .field("earliest_plausible_time", &self.earliest_plausible_time)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_header_values() {
        let mut config = UpdaterConfig::new("/tmp/m", Url::parse("https://ferry.example/tuf/image").unwrap());
        config.headers.insert("authorization", "Bearer ferry_dev_secret".parse().unwrap());
        let shown = format!("{config:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(!shown.contains("ferry_dev_secret"), "{shown}");
    }

    #[test]
    fn directory_urls_end_with_a_slash() {
        let url = Url::parse("https://ferry.example/tuf/image").unwrap();
        assert_eq!(as_directory(&url).as_str(), "https://ferry.example/tuf/image/");
        assert_eq!(as_directory(&as_directory(&url)).as_str(), "https://ferry.example/tuf/image/");
    }
}
