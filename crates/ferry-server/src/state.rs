//! What every handler shares.

use std::sync::Arc;

use ferry_content::ContentStore;
use ferry_store::Store;

use crate::config::Config;

/// Shared server state.
pub struct AppState {
    /// Persistent state.
    pub store: Arc<dyn Store>,
    /// Artifact bytes.
    pub content: Arc<dyn ContentStore>,
    /// Configuration in force.
    pub config: Config,
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
