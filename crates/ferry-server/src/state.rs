//! What every handler shares.

use std::sync::Arc;

use ferry_content::ContentStore;
use ferry_store::Store;

use crate::cache::{CatalogueCache, ContactBuffer};
use crate::config::Config;
use crate::lookups::CredentialLookups;
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
    /// Held while online keys may rotate (root pushes, director rotation).
    pub rotation: tokio::sync::Mutex<()>,
}

impl AppState {
    /// The online keys in force.
    pub fn keys(&self) -> Arc<OnlineKeys> {
        self.keys.read().expect("keys lock").clone()
    }

    /// Reads the online keys again from the keys directory, after a rotation.
    pub fn reload_keys(&self) -> Result<(), crate::trust::keys::KeyError> {
        let keys = OnlineKeys::load_or_create(&self.config.keys_dir())?;
        *self.keys.write().expect("keys lock") = Arc::new(keys);
        Ok(())
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
