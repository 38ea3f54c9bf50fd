//! What the trust routes refuse, by kind; `crate::error` gives each kind its HTTP answer.

/// A refusal of the image or director repository. Each variant is one kind of refusal, so
/// the status and code an API client sees follow from the kind, not from the route.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Pushed or drafted metadata does not verify, or does not fit the repository.
    #[error("{what} refused: {reason}")]
    Refused {
        /// What was refused (`root`, `targets metadata`, …).
        what: String,
        /// Why, from the verifier or the repository's rules.
        reason: String,
    },
    /// Targets metadata arrived before any root.
    #[error("there is no root metadata yet: push a signed root first (`ferry trust push`)")]
    NoRoot,
    /// A delegated role's metadata arrived before the top-level targets that delegate to it.
    #[error("no top-level targets delegates to {role}: push targets first")]
    NoTopLevelTargets {
        /// The delegated role.
        role: String,
    },
    /// A draft was asked for a role that the signed top-level targets do not delegate to.
    #[error(
        "the signed top-level targets do not delegate to role {role}; add it with `ferry targets delegate`, \
         sign and push the top-level targets first"
    )]
    NotDelegated {
        /// The role asked for.
        role: String,
    },
    /// A release asked for in a draft lies outside the paths delegated to the role.
    #[error(
        "release {release} ({product} {version}) is outside the paths delegated to role {role} ({paths:?}); sign \
         it with the role that covers {product}/…"
    )]
    OutsideDelegation {
        /// The release id.
        release: i64,
        /// Its product.
        product: String,
        /// Its version.
        version: String,
        /// The delegated role.
        role: String,
        /// The paths delegated to it.
        paths: Vec<String>,
    },
    /// Another publish stored the same role version first.
    #[error("{detail}: another publish happened at the same time; draft, sign and push again")]
    PublishRaced {
        /// The store's account of the clash.
        detail: String,
    },
    /// Another director key rotation stored the same root version first.
    #[error("{detail}: another rotation happened at the same time")]
    RotationRaced {
        /// The store's account of the clash.
        detail: String,
    },
    /// A device asked for a target that no release offered to it contains.
    #[error("no release offered to this device contains target {path}")]
    NotEntitled {
        /// The target path.
        path: String,
    },
    /// Per-device director metadata was asked for without a device credential.
    #[error("director metadata is issued per device: fetch it with the device's credential")]
    PerDevice,
}

impl TrustError {
    /// [`TrustError::Refused`] for `what`.
    pub fn refused(what: &str, reason: impl std::fmt::Display) -> Self {
        Self::Refused { what: what.to_owned(), reason: reason.to_string() }
    }
}
