//! Device groups and the approvals that release updates to them.

use serde::{Deserialize, Serialize};

use crate::catalogue::ReleaseId;
use crate::names::GroupName;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A group of devices: static (devices are put in it by enrollment key or by an
/// administrator) or dynamic (its members are the devices its [`Group::filter`] matches now).
/// Groups form a forest through [`Group::parent`]: a parent's approvals apply to the devices of
/// its children.
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
    /// For a dynamic group, its filter text (`crate::filter`); a dynamic group has no static
    /// members and no enrollment key.
    #[serde(default)]
    pub filter: Option<String>,
    /// The group whose approvals also apply to this group's devices.
    #[serde(default)]
    pub parent: Option<GroupName>,
    /// When its devices may be granted updates by staged rollouts (emergencies aside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<MaintenanceWindow>,
}

/// A group's weekly maintenance window: periods such as `Mon-Fri 22:00-06:00; Sat 00:00-24:00`
/// in an IANA time zone (parsed and applied by the server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MaintenanceWindow {
    /// The IANA time zone, e.g. `Asia/Tokyo`.
    pub time_zone: String,
    /// The periods, e.g. `Mon-Fri 22:00-06:00; Sat,Sun 00:00-24:00`.
    pub periods: String,
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

/// How many levels a tree of groups may have, the root included.
pub const MAX_GROUP_DEPTH: usize = 16;

/// Why a group cannot take a parent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentError {
    /// The parent is the group itself or one of its descendants; the path closes the cycle.
    #[error("setting this parent would make a cycle: {}", path.iter().map(GroupName::as_str).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// From the group through its would-be ancestors back to itself.
        path: Vec<GroupName>,
    },
    /// The tree would have more levels than [`MAX_GROUP_DEPTH`].
    #[error("the group tree would be {levels} levels deep; the limit is {MAX_GROUP_DEPTH}")]
    TooDeep {
        /// Levels the tree would have.
        levels: usize,
    },
}

/// Checks that `group` may take `parent`, given every group's current parent (`parents`, which
/// may omit groups without one). Refuses a cycle and a tree deeper than [`MAX_GROUP_DEPTH`].
/// Stored trees are assumed acyclic; a cycle found above `parent` is reported as one anyway.
pub fn check_parent(
    parents: &std::collections::BTreeMap<GroupName, Option<GroupName>>,
    group: &GroupName,
    parent: &GroupName,
) -> Result<(), ParentError> {
    let mut path = vec![group.clone()];
    let mut at = Some(parent.clone());
    while let Some(current) = at {
        let closes = path.contains(&current);
        path.push(current.clone());
        if closes {
            // Show the cycle from the group it passes through first.
            let start = path.iter().position(|g| *g == current).unwrap_or(0);
            return Err(ParentError::Cycle { path: path.split_off(start) });
        }
        at = parents.get(&current).cloned().flatten();
    }
    let levels = path.len() + height_below(parents, group, 0);
    if levels > MAX_GROUP_DEPTH {
        return Err(ParentError::TooDeep { levels });
    }
    Ok(())
}

/// Levels of descendants below `group` (0 for a leaf), counting no further than the cap.
fn height_below(
    parents: &std::collections::BTreeMap<GroupName, Option<GroupName>>,
    group: &GroupName,
    depth: usize,
) -> usize {
    if depth > MAX_GROUP_DEPTH {
        return 0;
    }
    parents
        .iter()
        .filter(|(_, p)| p.as_ref() == Some(group))
        .map(|(child, _)| 1 + height_below(parents, child, depth + 1))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn n(s: &str) -> GroupName {
        GroupName::new(s).unwrap()
    }

    fn tree(edges: &[(&str, &str)]) -> BTreeMap<GroupName, Option<GroupName>> {
        edges.iter().map(|(c, p)| (n(c), Some(n(p)))).collect()
    }

    #[test]
    fn a_parent_may_be_any_group_outside_the_subtree() {
        let parents = tree(&[("b", "a"), ("c", "b")]);
        assert_eq!(check_parent(&parents, &n("d"), &n("c")), Ok(()));
        assert_eq!(check_parent(&parents, &n("c"), &n("a")), Ok(()));
    }

    #[test]
    fn cycles_are_refused_and_named() {
        let parents = tree(&[("b", "a")]);
        let e = check_parent(&parents, &n("a"), &n("b")).unwrap_err();
        assert_eq!(e.to_string(), "setting this parent would make a cycle: a -> b -> a");
        let e = check_parent(&parents, &n("a"), &n("a")).unwrap_err();
        assert_eq!(e.to_string(), "setting this parent would make a cycle: a -> a");
        let parents = tree(&[("b", "a"), ("c", "b")]);
        let e = check_parent(&parents, &n("a"), &n("c")).unwrap_err();
        assert_eq!(e.to_string(), "setting this parent would make a cycle: a -> c -> b -> a");
    }

    #[test]
    fn depth_counts_ancestors_and_descendants() {
        let names: Vec<String> = (0..20).map(|i| format!("g{i}")).collect();
        // g1 under g0, ..., g14 under g13: 15 levels.
        let mut parents: BTreeMap<GroupName, Option<GroupName>> =
            (1..15).map(|i| (n(&names[i]), Some(n(&names[i - 1])))).collect();
        assert_eq!(check_parent(&parents, &n("x"), &n("g14")), Ok(()));
        assert_eq!(check_parent(&parents, &n("y"), &n("g15")), Ok(()), "a parent without its own parent");
        parents.insert(n("x"), Some(n("g14")));
        assert_eq!(check_parent(&parents, &n("z"), &n("x")), Err(ParentError::TooDeep { levels: 17 }));
        // Moving a subtree counts its height: g10..g14 and x (6 levels) under g0..g9 stays 16.
        parents.insert(n("g10"), None);
        parents.insert(n("top"), None);
        assert_eq!(check_parent(&parents, &n("g10"), &n("g9")), Ok(()));
        assert_eq!(check_parent(&parents, &n("top"), &n("x")), Ok(()));
        parents.insert(n("g0"), Some(n("top")));
        assert!(matches!(check_parent(&parents, &n("g10"), &n("g9")), Err(ParentError::TooDeep { levels: 17 })));
    }
}
