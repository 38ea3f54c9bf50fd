//! Static device groups and the approvals that release updates to them.

use serde::{Deserialize, Serialize};

use crate::catalogue::ReleaseId;
use crate::names::GroupName;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A static group of devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Group {
    /// Unique name.
    pub name: GroupName,
    /// Free text.
    pub description: String,
    /// Base interval between check-ins, in seconds.
    pub checkin_interval_secs: u64,
    /// Relative jitter applied to the interval, in `[0, 1]`.
    pub checkin_jitter: f64,
    /// SHA-256 (hex) of the group's enrollment key, if it has one.
    pub enrollment_key_hash: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Every member is a test device (see `Device::test`).
    #[serde(default)]
    pub test: bool,
}

/// What an approval tells the group's devices to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum ApprovalAction {
    /// Install, optionally by a deadline.
    Install,
    /// Never offer it to this group.
    Decline,
}

impl ApprovalAction {
    /// The lower-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Decline => "decline",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "install" => Some(Self::Install),
            "decline" => Some(Self::Decline),
            _ => None,
        }
    }
}

/// The approval of one release for one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Approval {
    /// The release.
    pub release: ReleaseId,
    /// The group.
    pub group: GroupName,
    /// Install or decline.
    pub action: ApprovalAction,
    /// For installs: unix seconds after which devices install without consent.
    pub deadline: Option<i64>,
    /// Name of the admin token that set it.
    pub approved_by: String,
    /// Unix seconds.
    pub approved_at: i64,
}
