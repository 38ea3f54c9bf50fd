//! What can go wrong with metadata, keys and signatures.

/// A metadata, key or signature failure. Every message names the role or key concerned and
/// says what was expected, so that an operator reading it knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    /// The bytes are not the JSON shape TUF metadata has.
    #[error("{what} is not valid TUF metadata: {reason}")]
    Malformed {
        /// What was being read (a role name or file name).
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// The metadata is of another role than expected.
    #[error("expected {expected} metadata but got {found}")]
    WrongType {
        /// The role type expected.
        expected: String,
        /// The `_type` found.
        found: String,
    },
    /// A key of a type or scheme this implementation does not know, or unreadable key material.
    #[error("key {keyid}: {reason}")]
    BadKey {
        /// The key's id, or a description of the key when it has none yet.
        keyid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Fewer distinct authorised keys signed than the role's threshold.
    #[error(
        "{role} metadata has {valid} valid signature(s) from its authorised keys but needs {threshold}; \
         sign it with more of the keys the {signer} lists for {role}"
    )]
    Threshold {
        /// The role.
        role: String,
        /// Distinct authorised keys with a valid signature.
        valid: usize,
        /// Signatures needed.
        threshold: u32,
        /// Which metadata names the role's keys ("root" or a delegating role).
        signer: String,
    },
    /// The metadata's expiry time has passed.
    #[error("{role} metadata expired at {expires}")]
    Expired {
        /// The role.
        role: String,
        /// Its `expires`.
        expires: String,
    },
    /// A version number went backwards.
    #[error("{role} version {new} is older than the trusted version {trusted} (rollback attack?)")]
    RolledBack {
        /// The role.
        role: String,
        /// The version trusted before.
        trusted: u64,
        /// The version offered now.
        new: u64,
    },
    /// Metadata or a target does not match what the metadata that references it says.
    #[error("{what} does not match: {reason}")]
    Mismatch {
        /// What was checked.
        what: String,
        /// How it differs.
        reason: String,
    },
    /// The operation needs metadata that is not loaded yet, or breaks the update order.
    #[error("{0}")]
    Order(String),
    /// Something was refused for its size.
    #[error("{what} is larger than the {limit}-byte limit")]
    TooLarge {
        /// What was too large.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
}

impl TufError {
    /// Shorthand for [`TufError::Malformed`].
    pub fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Malformed { what: what.into(), reason: reason.to_string() }
    }

    /// Shorthand for [`TufError::Mismatch`].
    pub fn mismatch(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Mismatch { what: what.into(), reason: reason.into() }
    }
}

/// Results of this crate.
pub type Result<T, E = TufError> = std::result::Result<T, E>;
