//! Keeping the check-in path to one database read.
//!
//! A check-in needs the device (one query), the releases approved for its groups, the groups'
//! schedules, the signed targets and the releases marked bad. All but the device change only
//! when an administrator or publisher acts, so they are cached:
//! every admin request that is not a read invalidates the cache (see `routes::router`), and
//! entries also expire after [`CatalogueCache::TTL`], which bounds staleness when several
//! server replicas share one database.
//!
//! A check-in that changed nothing but the time of contact does not write at once either: the
//! stamp goes to [`ContactBuffer`], which the server flushes every second in one transaction.
//! A crash loses at most that second of last-contact stamps, never reported facts (those are
//! written before the check-in is answered).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::{Approval, DeviceId, Group, GroupName, Release};
use ferry_store::Store;

use crate::membership::GroupIndex;

type Approved = Arc<Vec<(Release, Vec<Approval>)>>;
type Groups = Arc<HashMap<GroupName, Group>>;
/// Rollouts a check-in must consider (every state but completed), each with its release.
pub type Rollouts = Arc<Vec<(ferry_core::rollout::Rollout, Release)>>;
type Bad = Arc<Vec<Release>>;
/// Every target the image repository's signed targets list, by path.
pub type SignedIndex = Arc<HashMap<String, ferry_tuf::TargetFile>>;

/// Most distinct group sets cached at once; past that the cache starts over.
const MAX_ENTRIES: usize = 4096;

#[derive(Default)]
struct Inner {
    generation: u64,
    approved: HashMap<Vec<GroupName>, (Instant, Approved)>,
    /// As `approved`, plus the releases a test device is offered without an approval.
    piloted: HashMap<Vec<GroupName>, (Instant, Approved)>,
    groups: Option<(Instant, Groups)>,
    /// Built from the `groups` entry it holds, so filters are parsed once per read of them.
    index: Option<Arc<GroupIndex>>,
    signed: Option<(Instant, SignedIndex)>,
    rollouts: Option<(Instant, Rollouts)>,
    bad: Option<(Instant, Bad)>,
}

/// Cached catalogue reads for check-ins.
#[derive(Default)]
pub struct CatalogueCache {
    inner: Mutex<Inner>,
    require_signed: bool,
}

impl CatalogueCache {
    /// A cache that, if `require_signed`, keeps only releases signed targets metadata lists
    /// (`trust.require_signed_releases`).
    pub fn new(require_signed: bool) -> Self {
        Self { inner: Mutex::default(), require_signed }
    }

    /// How long an entry is trusted without invalidation.
    pub const TTL: Duration = Duration::from_secs(2);

    /// Forgets everything; called after every admin write.
    pub fn invalidate(&self) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.generation += 1;
        inner.approved.clear();
        inner.piloted.clear();
        inner.groups = None;
        inner.index = None;
        inner.signed = None;
        inner.rollouts = None;
        inner.bad = None;
    }

    fn generation(&self) -> u64 {
        self.inner.lock().expect("cache lock").generation
    }

    /// Releases approved (or declined) for any of `groups`, with those approvals.
    pub async fn approved(&self, store: &dyn Store, groups: &[GroupName]) -> ferry_store::Result<Approved> {
        let mut key = groups.to_vec();
        key.sort();
        let generation = {
            let inner = self.inner.lock().expect("cache lock");
            if let Some((at, v)) = inner.approved.get(&key) {
                if at.elapsed() < Self::TTL {
                    return Ok(v.clone());
                }
            }
            inner.generation
        };
        let mut fresh = store.approved_releases(&key).await?;
        if self.require_signed {
            let index = self.signed(store).await?;
            fresh.retain(|(release, _)| crate::signed::is_signed(release, &index));
        }
        let fresh: Approved = Arc::new(fresh);
        let mut inner = self.inner.lock().expect("cache lock");
        // Only keep what was read if no admin write happened meanwhile.
        if inner.generation == generation {
            if inner.approved.len() >= MAX_ENTRIES {
                inner.approved.clear();
            }
            inner.approved.insert(key, (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// What a test device in `groups` is considered for: the releases approved (or declined)
    /// for any of `groups`, with those approvals, followed by every other release it may be
    /// offered without an approval, with none: each release the signed targets list (every
    /// release, if signing is not required) that is not archived.
    pub async fn piloted(&self, store: &dyn Store, groups: &[GroupName]) -> ferry_store::Result<Approved> {
        let mut key = groups.to_vec();
        key.sort();
        let generation = {
            let inner = self.inner.lock().expect("cache lock");
            if let Some((at, v)) = inner.piloted.get(&key) {
                if at.elapsed() < Self::TTL {
                    return Ok(v.clone());
                }
            }
            inner.generation
        };
        let approved = if key.is_empty() { Arc::new(Vec::new()) } else { self.approved(store, &key).await? };
        let mut fresh = approved.as_ref().clone();
        let known: std::collections::HashSet<ferry_core::ReleaseId> = fresh.iter().map(|(r, _)| r.id).collect();
        let mut unapproved = store.list_releases(None).await?;
        unapproved.retain(|r| !r.archived && !known.contains(&r.id));
        if self.require_signed {
            let index = self.signed(store).await?;
            unapproved.retain(|release| crate::signed::is_signed(release, &index));
        }
        fresh.extend(unapproved.into_iter().map(|r| (r, Vec::new())));
        let fresh: Approved = Arc::new(fresh);
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            if inner.piloted.len() >= MAX_ENTRIES {
                inner.piloted.clear();
            }
            inner.piloted.insert(key, (Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// The image repository's signed targets (`signed::signed_index`).
    pub async fn signed(&self, store: &dyn Store) -> ferry_store::Result<SignedIndex> {
        if let Some((at, v)) = &self.inner.lock().expect("cache lock").signed {
            if at.elapsed() < Self::TTL {
                return Ok(v.clone());
            }
        }
        let generation = self.generation();
        let fresh: SignedIndex = Arc::new(crate::signed::signed_index(store).await?);
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            inner.signed = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// All groups with their filters parsed ([`CatalogueCache::groups`], parsed once per read).
    pub async fn group_index(&self, store: &dyn Store) -> ferry_store::Result<Arc<GroupIndex>> {
        let groups = self.groups(store).await?;
        let mut inner = self.inner.lock().expect("cache lock");
        if let Some(index) = &inner.index {
            if Arc::ptr_eq(index.groups(), &groups) {
                return Ok(index.clone());
            }
        }
        let index = Arc::new(GroupIndex::new(groups));
        // Keep it only while it matches the cached groups (not after an invalidation).
        if inner.groups.as_ref().is_some_and(|(_, g)| Arc::ptr_eq(g, index.groups())) {
            inner.index = Some(index.clone());
        }
        Ok(index)
    }

    /// Every rollout but the completed ones (a completed rollout has become approvals), with
    /// its release; with `require_signed`, only those whose release is signed.
    pub async fn rollouts(&self, store: &dyn Store) -> ferry_store::Result<Rollouts> {
        if let Some((at, v)) = &self.inner.lock().expect("cache lock").rollouts {
            if at.elapsed() < Self::TTL {
                return Ok(v.clone());
            }
        }
        let generation = self.generation();
        let index = if self.require_signed { Some(self.signed(store).await?) } else { None };
        let mut fresh = Vec::new();
        for rollout in store.list_rollouts(None, false).await? {
            if rollout.state == ferry_core::rollout::RolloutState::Completed {
                continue;
            }
            let Some(release) = store.get_release(rollout.release).await? else { continue };
            if release.archived || index.as_ref().is_some_and(|i| !crate::signed::is_signed(&release, i)) {
                continue;
            }
            fresh.push((rollout, release));
        }
        let fresh: Rollouts = Arc::new(fresh);
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            inner.rollouts = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// Every release marked bad (a short list, read by every director check-in).
    pub async fn bad(&self, store: &dyn Store) -> ferry_store::Result<Bad> {
        if let Some((at, v)) = &self.inner.lock().expect("cache lock").bad {
            if at.elapsed() < Self::TTL {
                return Ok(v.clone());
            }
        }
        let generation = self.generation();
        let fresh: Bad = Arc::new(store.bad_releases().await?);
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            inner.bad = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }

    /// All groups by name.
    pub async fn groups(&self, store: &dyn Store) -> ferry_store::Result<Groups> {
        if let Some((at, v)) = &self.inner.lock().expect("cache lock").groups {
            if at.elapsed() < Self::TTL {
                return Ok(v.clone());
            }
        }
        let generation = self.generation();
        let fresh: Groups = Arc::new(store.list_groups().await?.into_iter().map(|g| (g.name.clone(), g)).collect());
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.generation == generation {
            inner.groups = Some((Instant::now(), fresh.clone()));
        }
        Ok(fresh)
    }
}

/// Last-contact stamps waiting to be written.
#[derive(Default)]
pub struct ContactBuffer {
    pending: Mutex<HashMap<DeviceId, i64>>,
}

impl ContactBuffer {
    /// How often [`ContactBuffer::flush`] runs while the server serves.
    pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

    /// Notes that `device` was in contact at `at`.
    pub fn record(&self, device: &DeviceId, at: i64) {
        let mut pending = self.pending.lock().expect("contact lock");
        let slot = pending.entry(device.clone()).or_insert(at);
        *slot = (*slot).max(at);
    }

    /// Writes every pending stamp in one store call.
    pub async fn flush(&self, store: &dyn Store) {
        let batch: Vec<(DeviceId, i64)> =
            std::mem::take(&mut *self.pending.lock().expect("contact lock")).into_iter().collect();
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.touch_devices(&batch).await {
            // Stamps are refreshed by the next check-in; losing one round is harmless.
            tracing::warn!(error = %e, devices = batch.len(), "could not record last contact");
        }
    }
}
