//! What Ferry writes in the `custom` objects of TUF metadata, read and written only through
//! these types:
//!
//! - [`FerryTarget`]: what Ferry says about a release in each target entry it writes, the object
//!   under the entry's `custom.ferry`, which the publisher's signature covers like the rest of
//!   the entry;
//! - [`DirectorInstructions`]: what the director's targets metadata says beside its entries, in
//!   its top-level `custom`: the device it is for and, when the device runs a release an
//!   administrator marked bad, the instruction to go back to the version it kept.

use ferry_core::{PlatformName, ProductName, RebootBehaviour, ReleaseId, ReleaseKind, Version};
use serde::{Deserialize, Serialize};

use crate::metadata::{TargetFile, Targets};

/// The key under a target entry's `custom` that holds a [`FerryTarget`].
pub const KEY: &str = "ferry";

/// A release as a target entry's `custom.ferry` describes it. The server writes every field;
/// readers accept entries without the optional ones (written by older servers or other
/// tools) and ignore fields they do not know, so that a newer server's entries still verify.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FerryTarget {
    /// The release's product: the target path's first segment.
    pub product: ProductName,
    /// The release's version.
    pub version: Version,
    /// Full or delta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ReleaseKind>,
    /// The platforms the release is built for.
    pub platforms: Vec<PlatformName>,
    /// Whether the release must be installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Whether installing it needs a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<RebootBehaviour>,
    /// The per-product counter the server gave the release; devices refuse one that goes down.
    pub release_counter: i64,
    /// The artifact's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl FerryTarget {
    /// Reads `target`'s `custom.ferry`; the error says what is missing or wrong.
    pub fn of(target: &TargetFile) -> Result<Self, String> {
        let value = target
            .custom
            .as_ref()
            .and_then(|c| c.get(KEY))
            .filter(|v| v.is_object())
            .ok_or_else(|| "it has no custom.ferry object".to_owned())?;
        // The error names the field, so that an operator can tell what the entry lacks.
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string().as_str() {
            "." => format!("custom.ferry: {}", e.inner()),
            field => format!("custom.ferry.{field}: {}", e.inner()),
        })
    }

    /// The entry's `custom` with this as `custom.ferry`, next to `other` custom fields.
    pub fn into_custom(self, mut other: serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
        // A struct of strings, numbers and lists always serialises.
        let value = serde_json::to_value(self).unwrap_or_default();
        other.insert(KEY.to_owned(), value);
        serde_json::Value::Object(other)
    }
}

/// The top-level `custom` of a device's director targets metadata, signed with the chain: the
/// device it is for (also when it lists nothing) and what that device is told to do besides
/// installing the entries. Readers ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirectorInstructions {
    /// The device id the metadata is for.
    pub device: String,
    /// Releases this device runs that it must leave for the version it kept before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback: Vec<RollbackInstruction>,
}

/// An instruction to leave one installed release: the device goes back to the version it kept
/// before it, on that version line, and only when what it runs is exactly this release (same
/// release id, version and counter). It names no version to go to: the only possible target is
/// the device's own kept version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackInstruction {
    /// The product.
    pub product: ProductName,
    /// Its version line.
    pub kind: VersionLine,
    /// The release to leave.
    pub release: ReleaseId,
    /// Its version.
    pub version: Version,
    /// Its release counter.
    pub counter: i64,
}

/// A product's version line: software (full and patch releases) or configuration bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionLine {
    /// Full and patch releases.
    Software,
    /// Configuration bundles (`config` releases).
    Config,
}

impl VersionLine {
    /// The line releases of `kind` follow.
    pub fn of(kind: ReleaseKind) -> Self {
        if kind.is_config() {
            Self::Config
        } else {
            Self::Software
        }
    }

    /// A release kind on this line, for code keyed by kind (`Full` stands for software).
    pub fn kind(self) -> ReleaseKind {
        match self {
            Self::Software => ReleaseKind::Full,
            Self::Config => ReleaseKind::Config,
        }
    }
}

impl DirectorInstructions {
    /// The key of the targets metadata's top-level field that holds them.
    pub const KEY: &'static str = "custom";

    /// No instructions, for `device`.
    pub fn for_device(device: impl Into<String>) -> Self {
        Self { device: device.into(), rollback: Vec::new() }
    }

    /// Reads the top-level `custom` of director targets metadata; the error names the field
    /// that is missing or wrong.
    pub fn of(targets: &Targets) -> Result<Self, String> {
        let value = targets
            .unrecognized
            .get(Self::KEY)
            .filter(|v| v.is_object())
            .ok_or_else(|| "the director metadata has no top-level custom object".to_owned())?;
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string().as_str() {
            "." => format!("custom: {}", e.inner()),
            field => format!("custom.{field}: {}", e.inner()),
        })
    }

    /// The value to store under [`DirectorInstructions::KEY`].
    pub fn to_value(&self) -> serde_json::Value {
        // Strings, numbers and lists of them always serialise.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn entry(custom: serde_json::Value) -> TargetFile {
        TargetFile::new(4, SHA, Some(custom))
    }

    #[test]
    fn what_the_server_writes_reads_back_and_unknown_fields_are_ignored() {
        let written = FerryTarget {
            product: ProductName::new("gateway").unwrap(),
            version: "1.4.0".parse().unwrap(),
            kind: Some(ReleaseKind::Full),
            platforms: vec![PlatformName::new("arm64").unwrap()],
            required: Some(true),
            reboot: Some(RebootBehaviour::Required),
            release_counter: 12,
            media_type: Some("application/octet-stream".into()),
        };
        let custom = written.clone().into_custom([("vendor".to_owned(), json!(1))].into_iter().collect());
        assert_eq!(custom["vendor"], 1, "other custom fields are kept");
        assert_eq!(custom["ferry"]["release_counter"], 12);
        assert_eq!(FerryTarget::of(&entry(custom.clone())).unwrap(), written);
        let mut newer = custom;
        newer["ferry"]["rollout_hint"] = json!("slow");
        assert_eq!(FerryTarget::of(&entry(newer)).unwrap(), written);
    }

    #[test]
    fn a_missing_or_wrong_identity_field_is_refused() {
        let good = json!({ "product": "gateway", "version": "1.4.0", "platforms": ["arm64"], "release_counter": 3 });
        let read = FerryTarget::of(&entry(json!({ "ferry": good.clone() }))).unwrap();
        assert_eq!((read.kind, read.required, read.reboot, read.media_type), (None, None, None, None));
        for (field, value) in [
            ("release_counter", json!("3")),
            ("platforms", json!("arm64")),
            ("product", json!(7)),
            ("product", json!("Not A Product")),
        ] {
            let mut bad = good.clone();
            bad[field] = value;
            let err = FerryTarget::of(&entry(json!({ "ferry": bad }))).unwrap_err();
            assert!(err.starts_with(&format!("custom.ferry.{field}")), "{field}: {err}");
        }
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("release_counter");
        assert!(FerryTarget::of(&entry(json!({ "ferry": missing }))).unwrap_err().contains("release_counter"));
        for custom in [json!({}), json!({ "ferry": "gateway" })] {
            assert_eq!(FerryTarget::of(&entry(custom)).unwrap_err(), "it has no custom.ferry object");
        }
    }

    fn director(custom: serde_json::Value) -> Targets {
        let mut targets = Targets::new(1, "2030-01-01T00:00:00Z".to_owned());
        targets.unrecognized.insert("custom".into(), custom);
        targets
    }

    #[test]
    fn director_instructions_read_back_and_an_empty_list_is_left_out() {
        let none = DirectorInstructions::for_device("gw-1");
        assert_eq!(none.to_value(), json!({ "device": "gw-1" }), "as every director wrote it before instructions");
        assert_eq!(DirectorInstructions::of(&director(none.to_value())).unwrap(), none);
        let told = DirectorInstructions {
            device: "gw-1".into(),
            rollback: vec![RollbackInstruction {
                product: ProductName::new("gateway").unwrap(),
                kind: VersionLine::Config,
                release: ReleaseId(9),
                version: "2".parse().unwrap(),
                counter: 4,
            }],
        };
        let value = told.to_value();
        assert_eq!(
            value["rollback"],
            json!([{ "product": "gateway", "kind": "config", "release": 9, "version": "2", "counter": 4 }])
        );
        let mut newer = value.clone();
        newer["pin"] = json!(true);
        assert_eq!(DirectorInstructions::of(&director(newer)).unwrap(), told, "unknown fields are ignored");
        assert_eq!(VersionLine::of(ReleaseKind::Patch), VersionLine::Software);
        assert_eq!(VersionLine::Config.kind(), ReleaseKind::Config);
    }

    #[test]
    fn malformed_director_instructions_are_refused_with_the_field() {
        let mut bad = json!({ "device": "gw-1", "rollback": [{ "product": "gateway", "kind": "firmware",
            "release": 9, "version": "2", "counter": 4 }] });
        assert!(DirectorInstructions::of(&director(bad.clone())).unwrap_err().starts_with("custom.rollback[0].kind"));
        bad["rollback"][0]["kind"] = json!("software");
        bad["rollback"][0]["counter"] = json!("4");
        assert!(DirectorInstructions::of(&director(bad)).unwrap_err().starts_with("custom.rollback[0].counter"));
        let missing = Targets::new(1, "2030-01-01T00:00:00Z".to_owned());
        assert!(DirectorInstructions::of(&missing).is_err());
    }
}
