//! What every handler shares.

use std::sync::Arc;

use ferry_content::ContentStore;
use ferry_store::Store;
use ferry_tuf::SigningKey;

use crate::cache::{CatalogueCache, ContactBuffer};
use crate::config::Config;
use crate::lookups::CredentialLookups;
use crate::trust::keys::{self, KeyError};
use crate::trust::OnlineKeys;

/// Shared server state.
pub struct AppState {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Artifact bytes.
    pub content: Arc<dyn ContentStore>,
    /// Configuration in force.
    pub config: Config,
    /// Catalogue reads cached for check-ins.
    pub catalogue: CatalogueCache,
    /// Last-contact stamps waiting to be written.
    pub contacts: ContactBuffer,
    /// Device credential checks, batched.
    pub credentials: CredentialLookups,
    /// The online signing keys; replaced as a whole when they are rotated.
    pub keys: std::sync::RwLock<Arc<OnlineKeys>>,
    /// Guards the online keys against rotation. The write side is held by whatever changes
    /// them or the keys waiting to take over (root pushes, director rotation, creating the
    /// next image keys) and by image snapshot/timestamp signing, which it also serializes.
    /// The read side is held while signing with the keys in force where signings may run
    /// side by side: devices' director chains at check-in, and the director root's re-signing.
    pub rotation: tokio::sync::RwLock<()>,
    /// Rate limits of enrollment (per source address and overall).
    pub enrollments: crate::limits::EnrollmentLimits,
    /// The time every handler and background task goes by.
    pub clock: Clock,
    /// Rollouts this server skips grant attempts for, briefly, after a limit refused one.
    pub grant_hints: crate::rollouts::GrantHints,
    /// The devices each rollout has granted, as far as this server knows.
    pub granted: crate::rollouts::GrantedSets,
    /// Devices waiting for a wake-up, and the wake requests not delivered yet.
    pub wakeups: crate::wakeups::Wakeups,
}

/// The server's clock in Unix seconds: the system clock, unless a test has set it. Tests move
/// it instead of sleeping until metadata expires, deadlines pass or contact times advance.
#[derive(Debug, Clone)]
pub struct Clock(Arc<std::sync::atomic::AtomicI64>);

/// The value of [`Clock`]'s cell while it follows the system clock.
const SYSTEM: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Self(Arc::new(std::sync::atomic::AtomicI64::new(SYSTEM)))
    }
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> i64 {
        match self.0.load(std::sync::atomic::Ordering::SeqCst) {
            SYSTEM => ferry_core::time::now(),
            set => set,
        }
    }

    /// Stops the clock at `at`, Unix seconds: it reads `at` until set again.
    pub fn set(&self, at: i64) {
        self.0.store(at.max(SYSTEM + 1), std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock `secs` ahead of what it reads now, and stops it there.
    pub fn advance(&self, secs: i64) {
        self.set(self.now() + secs);
    }
}

impl AppState {
    /// The online keys in force.
    pub fn keys(&self) -> Arc<OnlineKeys> {
        self.keys.read().expect("keys lock").clone()
    }

    /// Reads the online keys again from the keys directory, after a rotation.
    pub fn reload_keys(&self) -> Result<(), KeyError> {
        let keys = OnlineKeys::load_or_create(&self.config.keys_dir())?;
        *self.keys.write().expect("keys lock") = Arc::new(keys);
        Ok(())
    }

    /// Puts a rotation into force once a root listing the new keys is stored: `rotated` are
    /// the key names and the waiting keys that root lists for them. Call it with
    /// [`Self::rotation`] held for writing.
    ///
    /// Every waiting key is promoted (renamed into place; [`keys::promote`] is idempotent), even
    /// when one of them fails, and then all keys are reloaded from the keys directory. When the
    /// directory cannot follow (a promotion or the reload fails), the keys in memory still
    /// become the ones the root lists, so that the server signs only with those, and the error
    /// is returned: the waiting key files that were not promoted stay, and the next start
    /// finishes the rotation ([`crate::trust::image::adopt_rotated_keys`]).
    pub fn take_over_keys(&self, rotated: &[(&str, &SigningKey)]) -> Result<(), KeyError> {
        let dir = self.config.keys_dir();
        let mut failed = None;
        for (name, key) in rotated {
            if let Err(e) = keys::promote(&dir, name, key.key_id()) {
                tracing::error!(key = name, error = %e, "a rotated online key could not be put in place");
                failed.get_or_insert(e);
            }
        }
        let failed = match failed {
            Some(e) => e,
            None => match self.reload_keys() {
                Ok(()) => {
                    let keys = self.keys();
                    match rotated.iter().find(|(name, key)| keys.get(name).map(|k| k.key_id()) != Some(key.key_id())) {
                        None => return Ok(()),
                        Some((name, key)) => KeyError {
                            path: dir.join(format!("{name}.pk8")),
                            reason: format!("after the rotation it does not hold the key {}", key.key_id()),
                        },
                    }
                }
                Err(e) => e,
            },
        };
        let mut in_force = self.keys.write().expect("keys lock");
        let keys = in_force.replaced(rotated)?;
        *in_force = Arc::new(keys);
        Err(failed)
    }
}
