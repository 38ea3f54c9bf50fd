//! Device lifecycle, update states and admin roles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::{DeviceId, GroupName, PlatformName, ProductName};
use crate::version::Version;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Where a device stands in enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum DeviceStatus {
    /// An administrator listed the id in advance; the first enrollment with it is accepted.
    Preauthorized,
    /// Enrolled without a key and waiting for an administrator.
    Pending,
    /// Receives updates.
    Accepted,
    /// Refused by an administrator; its credential no longer works.
    Rejected,
}

impl DeviceStatus {
    /// The snake-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preauthorized => "preauthorized",
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Preauthorized, Self::Pending, Self::Accepted, Self::Rejected].into_iter().find(|x| x.as_str() == s)
    }
}

/// The state of one release on one device, as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum DeviceState {
    /// Download in progress; `progress` carries bytes received.
    Downloading,
    /// Downloaded and verified.
    Downloaded,
    /// Handler running.
    Installing,
    /// Installed; a reboot is needed before it can be committed.
    RebootPending,
    /// Installed, not yet confirmed running.
    Installed,
    /// Confirmed running after install (and reboot). Only this counts as success.
    Committed,
    /// Failed; `error_code` and `message` say why.
    Failed,
    /// Returned to the previous version.
    RolledBack,
    /// Postponed (outside a window, waiting for consent, retry later).
    Deferred,
}

impl DeviceState {
    /// All states, in lifecycle order.
    pub const ALL: [Self; 9] = [
        Self::Downloading,
        Self::Downloaded,
        Self::Installing,
        Self::RebootPending,
        Self::Installed,
        Self::Committed,
        Self::Failed,
        Self::RolledBack,
        Self::Deferred,
    ];

    /// The snake-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Downloading => "downloading",
            Self::Downloaded => "downloaded",
            Self::Installing => "installing",
            Self::RebootPending => "reboot_pending",
            Self::Installed => "installed",
            Self::Committed => "committed",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Deferred => "deferred",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the device has finished with this release, successfully or not.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Committed | Self::Failed | Self::RolledBack)
    }
}

/// What an admin token may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also approves releases and manages devices and group membership.
    Operator,
    /// Also manages the catalogue, groups and tokens.
    Admin,
}

impl Role {
    /// The lower-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Viewer, Self::Operator, Self::Admin].into_iter().find(|r| r.as_str() == s)
    }
}

/// Boot ids after a check-in, and whether the check-in reveals a cloned identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootTransition {
    /// Boot id to store as the latest.
    pub boot_id: Option<String>,
    /// Boot id to store as the one before.
    pub prev_boot_id: Option<String>,
    /// Set when two machines appear to share this identity: what was seen.
    pub conflict: Option<String>,
}

/// Tracks boot ids across check-ins (duplicate detection).
///
/// A machine's boot id changes only when it reboots and never returns to an earlier value. A
/// check-in that reports the boot id *before* the latest one therefore means two machines
/// (typically cloned from one image) alternate with the same credential.
pub fn boot_transition(last: Option<&str>, prev: Option<&str>, reported: Option<&str>) -> BootTransition {
    let keep =
        || BootTransition { boot_id: last.map(str::to_owned), prev_boot_id: prev.map(str::to_owned), conflict: None };
    let Some(reported) = reported else { return keep() };
    if Some(reported) == last {
        return keep();
    }
    let conflict = (Some(reported) == prev).then(|| {
        format!(
            "boot id went back from {} to {reported}: two machines appear to share this identity",
            last.unwrap_or("-")
        )
    });
    BootTransition { boot_id: Some(reported.to_owned()), prev_boot_id: last.map(str::to_owned), conflict }
}

/// A device as the server knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Device {
    /// The identity the device claims.
    pub id: DeviceId,
    /// Enrollment status.
    pub status: DeviceStatus,
    /// Static group memberships, by name.
    pub groups: Vec<GroupName>,
    /// Reported platform.
    pub platform: Option<PlatformName>,
    /// Reported installed software versions.
    pub installed: BTreeMap<ProductName, Version>,
    /// Reported installed configuration-bundle versions.
    pub configs: BTreeMap<ProductName, Version>,
    /// Reported inventory attributes.
    pub attributes: BTreeMap<String, String>,
    /// Reported agent version.
    pub agent_version: Option<String>,
    /// Boot id of the latest check-in.
    pub boot_id: Option<String>,
    /// Boot id before that.
    pub prev_boot_id: Option<String>,
    /// Unix seconds of the latest check-in.
    pub last_contact: Option<i64>,
    /// Unix seconds when the device was enrolled or pre-authorised.
    pub enrolled_at: i64,
    /// How often another machine was seen using this identity.
    pub identity_conflicts: i64,
    /// What the latest identity conflict was.
    pub last_conflict: Option<String>,
    /// Unix seconds of the latest identity conflict.
    pub last_conflict_at: Option<i64>,
    /// A test device: besides what its groups' approvals give it, it is offered every signed
    /// release no one has approved yet (its groups' declines still win). A member of a test
    /// group is a test device too.
    #[serde(default)]
    pub test: bool,
}

/// A stored admin token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AdminToken {
    /// Store-assigned id.
    pub id: i64,
    /// Human name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reboot_is_not_a_conflict() {
        let t = boot_transition(Some("a"), None, Some("b"));
        assert_eq!(t.boot_id.as_deref(), Some("b"));
        assert_eq!(t.prev_boot_id.as_deref(), Some("a"));
        assert!(t.conflict.is_none());
        let t = boot_transition(Some("b"), Some("a"), Some("c"));
        assert!(t.conflict.is_none());
    }

    #[test]
    fn same_boot_changes_nothing() {
        let t = boot_transition(Some("b"), Some("a"), Some("b"));
        assert_eq!((t.boot_id.as_deref(), t.prev_boot_id.as_deref()), (Some("b"), Some("a")));
        assert!(t.conflict.is_none());
    }

    #[test]
    fn alternating_boot_ids_reveal_a_clone() {
        let t = boot_transition(Some("b"), Some("a"), Some("a"));
        assert!(t.conflict.unwrap().contains("two machines"));
    }

    #[test]
    fn states_round_trip() {
        for s in DeviceState::ALL {
            assert_eq!(DeviceState::parse(s.as_str()), Some(s));
        }
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }
}
