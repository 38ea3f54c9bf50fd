//! Signed metadata: the server's online keys and the TUF image repository (TRUST.md).

pub mod director;
pub mod image;
pub mod keys;

pub use keys::OnlineKeys;
