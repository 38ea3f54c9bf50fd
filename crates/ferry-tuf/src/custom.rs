//! What Ferry says about a release in each target entry it writes: the object under the
//! entry's `custom.ferry`, which the publisher's signature covers like the rest of the entry.

use ferry_core::{PlatformName, ProductName, RebootBehaviour, ReleaseKind, Version};
use serde::{Deserialize, Serialize};

use crate::metadata::TargetFile;

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
}
