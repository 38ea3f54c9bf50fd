//! [`Updater`]: the TUF client workflow (specification 5.1–5.7) with IO, driving
//! [`ferry_tuf::TrustedSet`].

use std::path::{Path, PathBuf};

use ferry_tuf::trusted::MAX_DELEGATIONS;
use ferry_tuf::{TargetFile, TargetSearch, Targets, TimestampUpdate, TrustedSet};
use reqwest::Url;
use tracing::{debug, info};

use crate::config::{as_directory, UpdaterConfig};
use crate::download;
use crate::error::{Error, Result};
use crate::fetch::Fetcher;
use crate::persist::{self, escape, role_file};

/// What a successful [`Updater::refresh`] trusts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSummary {
    /// The trusted root's version.
    pub root_version: u64,
    /// The trusted timestamp's version.
    pub timestamp_version: u64,
    /// The trusted snapshot's version.
    pub snapshot_version: u64,
    /// The trusted top-level targets' version.
    pub targets_version: u64,
    /// Whether the repository published a new timestamp since the last refresh. When it did
    /// not, the refresh went on with the persisted metadata and fetched nothing more.
    pub timestamp_changed: bool,
}

/// A verifying TUF client for one repository: refreshes trusted metadata, looks targets up
/// through delegations, and downloads them. See the crate documentation for the workflow.
#[derive(Debug)]
pub struct Updater {
    repo: Repository,
    trusted: TrustedSet,
    /// Whether `trusted` went through a whole, successful refresh.
    refreshed: bool,
}

/// Everything but the trusted state, so that a lookup can borrow both at once.
#[derive(Debug)]
struct Repository {
    config: UpdaterConfig,
    metadata_url: Url,
    target_base_url: Option<Url>,
    fetcher: Fetcher,
}

impl Updater {
    /// An updater starting from `metadata_dir/root.json`, which must verify with its own keys
    /// (its expiry is checked at refresh, since a newer root may follow). Reads no network.
    pub fn new(config: UpdaterConfig) -> Result<Self> {
        let client = config.build_client()?;
        let fetcher = Fetcher::new(client, config.headers.clone(), config.request_timeout);
        let repo = Repository {
            metadata_url: as_directory(&config.metadata_url),
            target_base_url: config.target_base_url.as_ref().map(as_directory),
            fetcher,
            config,
        };
        let root_path = repo.config.metadata_dir.join("root.json");
        let root = std::fs::read(&root_path).map_err(|source| Error::NoTrustedRoot { path: root_path, source })?;
        let trusted = TrustedSet::new(&root, repo.clock()).map_err(Error::tuf("root.json"))?;
        Ok(Self { repo, trusted, refreshed: false })
    }

    /// Runs the client workflow once: the root chain (5.3), timestamp (5.4), snapshot (5.5) and
    /// top-level targets (5.6), each accepted file persisted atomically under its non-versioned
    /// name. The clock is read once, at the start (5.1). On an error, what was accepted before
    /// it stays persisted (a newer root, say), nothing unverified is, and lookups and downloads
    /// need a successful refresh again.
    pub async fn refresh(&mut self) -> Result<RefreshSummary> {
        self.refreshed = false;
        let now = self.repo.plausible_now()?;
        let root_path = self.repo.metadata_dir().join("root.json");
        let root =
            tokio::fs::read(&root_path).await.map_err(|source| Error::NoTrustedRoot { path: root_path, source })?;
        let mut set = TrustedSet::new(&root, now).map_err(Error::tuf("root.json"))?;
        let result = self.repo.refresh(&mut set).await;
        self.trusted = set;
        let timestamp_changed = result?;
        self.refreshed = true;
        let version = |v: Option<u64>| v.unwrap_or_default();
        let summary = RefreshSummary {
            root_version: self.trusted.root().version,
            timestamp_version: version(self.trusted.timestamp().map(|t| t.version)),
            snapshot_version: version(self.trusted.snapshot().map(|s| s.version)),
            targets_version: version(self.trusted.targets().map(|t| t.version)),
            timestamp_changed,
        };
        info!(?summary, url = %self.repo.metadata_url, "metadata refreshed");
        Ok(summary)
    }

    /// The entry for target `path` and the targets role that lists it, or `None` when no role
    /// trusted for the path lists it. Searches delegations lazily (5.7): a delegated role's
    /// metadata is loaded (persisted copy first, else fetched, verified and persisted) only when
    /// the search reaches it. Refreshes first when no refresh succeeded yet.
    ///
    /// A role loaded here is checked for expiry against the start time of the last refresh
    /// (the specification's fixed update start time, 5.1, as python-tuf does), not the clock
    /// now: refresh before a lookup that must reflect the current time.
    pub async fn get_targetinfo(&mut self, path: &str) -> Result<Option<(String, TargetFile)>> {
        self.ensure_refreshed().await?;
        // Each round loads one more role; the search visits at most MAX_DELEGATIONS + 1.
        for _ in 0..=MAX_DELEGATIONS + 1 {
            match self.trusted.find_target(path).map_err(Error::tuf(format!("delegations for {path}")))? {
                TargetSearch::Found { role, target } => return Ok(Some((role, target))),
                TargetSearch::NotFound => return Ok(None),
                TargetSearch::NeedRole { role, parent } => {
                    self.repo.load_targets(&mut self.trusted, &role, &parent).await?
                }
            }
        }
        Ok(None)
    }

    /// Downloads target `path` (with its entry from [`Updater::get_targetinfo`]) into `dest_dir`
    /// and returns the file's path. See [`crate::download`] for the file layout, resuming and the
    /// checks; a file already there with the right length and digests is returned unfetched.
    pub async fn download_target(&self, path: &str, target: &TargetFile, dest_dir: &Path) -> Result<PathBuf> {
        let url = self.target_url(path, target)?;
        let limit = self.repo.config.bandwidth_limit;
        download::download(&self.repo.fetcher, &url, path, target, dest_dir, limit).await
    }

    /// The top-level targets metadata, refreshing first when no refresh succeeded yet.
    pub async fn top_level_targets(&mut self) -> Result<&Targets> {
        self.ensure_refreshed().await?;
        self.trusted.targets().ok_or_else(|| Error::Tuf {
            file: "targets.json".into(),
            source: ferry_tuf::TufError::Order("no targets metadata is loaded".into()),
        })
    }

    /// The trusted metadata as of the last refresh (or only the root, before one).
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The configuration.
    pub fn config(&self) -> &UpdaterConfig {
        &self.repo.config
    }

    async fn ensure_refreshed(&mut self) -> Result<()> {
        if !self.refreshed {
            self.refresh().await?;
        }
        Ok(())
    }

    /// `TARGET_BASE/dir/HASH.basename` with consistent snapshots (and prefixing on), else
    /// `TARGET_BASE/path`.
    fn target_url(&self, path: &str, target: &TargetFile) -> Result<Url> {
        let base =
            self.repo.target_base_url.as_ref().ok_or_else(|| {
                Error::Config("no target base URL is configured, so targets cannot be downloaded".into())
            })?;
        let relative = if self.trusted.root().consistent_snapshot && self.repo.config.prefix_targets_with_hash {
            let hash = target
                .sha256()
                .or_else(|| target.hashes.values().next().map(String::as_str))
                .ok_or_else(|| Error::NoKnownHash { target: path.to_owned() })?;
            match path.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/{hash}.{name}"),
                None => format!("{hash}.{path}"),
            }
        } else {
            path.to_owned()
        };
        join(base, &url_path(&relative))
    }
}

impl Repository {
    fn metadata_dir(&self) -> &Path {
        &self.config.metadata_dir
    }

    /// The configured fixed time, or the system clock.
    fn clock(&self) -> i64 {
        // Before 1970 reads as 0, which the plausibility check refuses.
        self.config.now.unwrap_or_else(ferry_core::time::now)
    }

    /// The clock, refused when it reads before the earliest plausible time.
    fn plausible_now(&self) -> Result<i64> {
        let now = self.clock();
        if now < self.config.earliest_plausible_time {
            return Err(Error::ClockNotSet { now, earliest: self.config.earliest_plausible_time });
        }
        Ok(now)
    }

    /// 5.3–5.6 on `set`; returns whether the timestamp changed.
    async fn refresh(&self, set: &mut TrustedSet) -> Result<bool> {
        self.update_root(set).await?;
        let changed = self.update_timestamp(set).await?;
        self.update_snapshot(set).await?;
        self.load_targets(set, "targets", "root").await?;
        Ok(changed)
    }

    /// 5.3: `N.root.json` for N = trusted + 1, … until "not found" or the rotation cap, each
    /// checked by the old and its own root keys and persisted; then the final root's expiry
    /// and, when the online keys changed, the deletion of the persisted timestamp and snapshot.
    async fn update_root(&self, set: &mut TrustedSet) -> Result<()> {
        for _ in 0..self.config.max_root_rotations {
            let file = format!("{}.root.json", set.root().version + 1);
            let bytes = match self.fetch(&file, self.config.root_max_length).await {
                Ok(bytes) => bytes,
                // 403 as well: object stores answer it for a missing key (python-tuf does the same).
                Err(Error::Http { status: 404 | 403, .. }) => break,
                Err(e) => return Err(e),
            };
            set.update_root(&bytes).map_err(Error::tuf(&file))?;
            info!(version = set.root().version, "trusted root rotated");
            self.persist("root.json", set.root_bytes()).await?;
        }
        set.check_final_root().map_err(Error::tuf("root.json"))?;
        if set.online_keys_rotated() {
            // 5.3.11: recovery from a fast-forward attack on the online roles.
            info!("timestamp or snapshot keys rotated: forgetting the persisted timestamp and snapshot");
            for file in ["timestamp.json", "snapshot.json"] {
                persist::remove_optional(&self.metadata_dir().join(file)).await?;
            }
        }
        Ok(())
    }

    /// 5.4, with the persisted timestamp (when it still verifies) as the rollback reference.
    async fn update_timestamp(&self, set: &mut TrustedSet) -> Result<bool> {
        if let Some(local) = self.read_local("timestamp.json").await? {
            if let Err(e) = set.load_local_timestamp(&local) {
                debug!(error = %e, "the persisted timestamp no longer verifies; ignoring it");
            }
        }
        let bytes = self.fetch("timestamp.json", self.config.timestamp_max_length).await?;
        match set.update_timestamp(&bytes).map_err(Error::tuf("timestamp.json"))? {
            TimestampUpdate::Updated => {
                self.persist("timestamp.json", &bytes).await?;
                Ok(true)
            }
            TimestampUpdate::Unchanged => Ok(false),
        }
    }

    /// 5.5: the persisted snapshot when it is still the final one, else the version the
    /// timestamp names (with the persisted one as the rollback reference).
    async fn update_snapshot(&self, set: &mut TrustedSet) -> Result<()> {
        if let Some(local) = self.read_local("snapshot.json").await? {
            match set.load_local_snapshot(&local) {
                Ok(true) => return Ok(()),
                Ok(false) => debug!("the persisted snapshot is not the final one; fetching"),
                Err(e) => debug!(error = %e, "the persisted snapshot no longer verifies; ignoring it"),
            }
        }
        let meta = set
            .timestamp()
            .ok_or_else(|| ferry_tuf::TufError::Order("no timestamp is loaded".into()))
            .and_then(|t| t.snapshot_meta().cloned())
            .map_err(Error::tuf("timestamp.json"))?;
        let file = if set.root().consistent_snapshot {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".to_owned()
        };
        let bytes = self.fetch(&file, length_cap(meta.length, self.config.snapshot_max_length)).await?;
        set.update_snapshot(&bytes).map_err(Error::tuf(&file))?;
        self.persist("snapshot.json", &bytes).await
    }

    /// 5.6 for `role` (delegated by `parent`): the persisted copy when it verifies as the
    /// version the snapshot lists, else `VERSION.ROLE.json` fetched, verified and persisted.
    async fn load_targets(&self, set: &mut TrustedSet, role: &str, parent: &str) -> Result<()> {
        let local_file = role_file(role);
        if let Some(local) = self.read_local(&local_file).await? {
            match set.update_delegated_targets(&local, role, parent) {
                Ok(()) => return Ok(()),
                Err(e) => debug!(role, error = %e, "the persisted copy is not current; fetching"),
            }
        }
        let meta = set.snapshot_meta(role).map_err(Error::tuf(&local_file))?.clone();
        let file = if set.root().consistent_snapshot {
            format!("{}.{}.json", meta.version, escape(role))
        } else {
            local_file.clone()
        };
        let bytes = self.fetch(&file, length_cap(meta.length, self.config.targets_max_length)).await?;
        set.update_delegated_targets(&bytes, role, parent).map_err(Error::tuf(&file))?;
        self.persist(&local_file, &bytes).await
    }

    async fn fetch(&self, file: &str, cap: u64) -> Result<Vec<u8>> {
        let url = join(&self.metadata_url, file)?;
        debug!(%url, cap, "fetching metadata");
        self.fetcher.get_capped(&url, file, cap).await
    }

    async fn read_local(&self, file: &str) -> Result<Option<Vec<u8>>> {
        persist::read_optional(&self.metadata_dir().join(file)).await
    }

    async fn persist(&self, file: &str, bytes: &[u8]) -> Result<()> {
        persist::write_atomically(self.metadata_dir(), file, bytes).await
    }
}

/// The size cap of a metadata file the referencing metadata gives `length` for: that length,
/// but never more than the configured cap `max` for the role (a signed but huge length must not
/// lift the cap).
fn length_cap(length: Option<u64>, max: u64) -> u64 {
    length.map_or(max, |length| length.min(max))
}

/// `base` (ending with `/`) followed by `relative`, by concatenation: `Url::join` would let a
/// leading `/` or `//host` in `relative` replace the base's path or host.
fn join(base: &Url, relative: &str) -> Result<Url> {
    let text = format!("{base}{relative}");
    Url::parse(&text).map_err(|e| Error::Config(format!("cannot form a URL from {text:?}: {e}")))
}

/// A target path as a URL path: the characters that would end or change the path (`?`, `#`,
/// `%`, `\`) percent-encoded, `/` kept; the URL parser encodes spaces and non-ASCII itself.
fn url_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            '%' => out.push_str("%25"),
            '\\' => out.push_str("%5C"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_length_never_lifts_the_configured_cap() {
        assert_eq!(length_cap(None, 2_000), 2_000);
        assert_eq!(length_cap(Some(700), 2_000), 700);
        assert_eq!(length_cap(Some(2_000), 2_000), 2_000);
        assert_eq!(length_cap(Some(u64::MAX), 2_000), 2_000);
    }

    #[test]
    fn urls_are_joined_under_the_base() {
        let base = Url::parse("http://127.0.0.1:1/repo/targets/").unwrap();
        assert_eq!(join(&base, "a/b.bin").unwrap().as_str(), "http://127.0.0.1:1/repo/targets/a/b.bin");
        assert_eq!(join(&base, "//evil/x").unwrap().as_str(), "http://127.0.0.1:1/repo/targets///evil/x");
        assert_eq!(
            join(&base, &url_path("a/what?#%.bin")).unwrap().as_str(),
            "http://127.0.0.1:1/repo/targets/a/what%3F%23%25.bin"
        );
        assert_eq!(join(&base, "1.%3F.json").unwrap().path(), "/repo/targets/1.%3F.json");
    }
}
