//! Uptane's cross-check between the director repository and the image repository (see
//! `docs/trust.md`, "The cross-check between the repositories").
//!
//! The director, signed with online keys, says what one device should install now; the image
//! repository, signed offline by publishers, says what exists. A device installs an image only
//! when both agree, so a compromised server can choose among genuinely published releases but
//! cannot invent one, hand one device's assignment to another, give a device an image built for
//! another platform, or send a device backwards.
//!
//! The director's targets metadata names its device twice: in a top-level `custom` field of
//! `signed` (`{"custom": {"device": "<device-id>"}}`, kept in [`Targets::unrecognized`]) and in
//! each entry's `custom.device`. Each entry has the image repository's target path
//! (`product/version/artifact`), length and hashes, and under `custom.ferry` the same object the
//! image repository puts on its entry (product, version, kind, platforms, required, reboot,
//! release counter, media type).
//!
//! Both sides have been verified by the TUF client workflow before they reach this module: it
//! does no IO and checks only their agreement.

use serde_json::Value;

use crate::custom::FerryTarget;
use crate::metadata::{TargetFile, Targets};

/// The `custom.ferry` fields the director's entry and the image repository's entry must agree on.
pub const MATCHING_FIELDS: [&str; 4] = ["product", "version", "platforms", "release_counter"];

/// Why a director assignment is refused. Every message names the target path (or the device)
/// and both sides' values, so that an operator can tell which repository is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrossCheckError {
    /// The director metadata (or one of its entries) names another device, or none.
    #[error(
        "director metadata{} is for device {}, not {expected}; refusing another device's assignment",
        entry.as_ref().map(|p| format!(" entry {p}")).unwrap_or_default(),
        found.as_deref().unwrap_or("(none)")
    )]
    WrongDevice {
        /// The device this client is.
        expected: String,
        /// The device the metadata names, if any.
        found: Option<String>,
        /// The entry's target path, when an entry (rather than the whole metadata) is wrong.
        entry: Option<String>,
    },
    /// The director assigns a target the image repository does not list.
    #[error("the director assigns {path} but the image repository does not list it")]
    NotInImageRepository {
        /// The target path.
        path: String,
    },
    /// The lengths differ.
    #[error("{path}: the director says {director} bytes but the image repository says {image}")]
    Length {
        /// The target path.
        path: String,
        /// The director's length.
        director: u64,
        /// The image repository's length.
        image: u64,
    },
    /// A digest differs, or the image repository lacks one the check needs.
    #[error("{path}: the director's {algorithm} digest {director} differs from the image repository's {image}")]
    Digest {
        /// The target path.
        path: String,
        /// The hash algorithm.
        algorithm: String,
        /// The director's digest.
        director: String,
        /// The image repository's digest (`(none)` when it lists none for `algorithm`).
        image: String,
    },
    /// A `custom.ferry` field that must match differs.
    #[error("{path}: custom.ferry.{field} differs: the director says {director}, the image repository {image}")]
    Field {
        /// The target path.
        path: String,
        /// The field (one of [`MATCHING_FIELDS`]).
        field: String,
        /// The director's value, as JSON (`null` when missing).
        director: String,
        /// The image repository's value, as JSON (`null` when missing).
        image: String,
    },
    /// The image is not built for the device's platform: its entry's `custom.ferry.platforms`
    /// does not list it.
    #[error(
        "{path} is built for platform(s) {}, not for this device's platform {platform}; refusing an image for \
         another platform",
        platforms.join(", ")
    )]
    WrongPlatform {
        /// The target path.
        path: String,
        /// The device's platform.
        platform: String,
        /// The platforms the image repository's entry lists.
        platforms: Vec<String>,
    },
    /// The release counter is below the floor the device keeps for the product.
    #[error("{path}: release counter goes down from {floor} to {counter}; refusing an older release")]
    CounterDown {
        /// The target path.
        path: String,
        /// The lowest counter the device accepts (the one it has installed).
        floor: i64,
        /// The entry's counter.
        counter: i64,
    },
    /// An entry lacks what the check needs (a sha256, `custom.ferry`, an integer counter, a
    /// product naming the path's first segment, a non-empty list of platforms).
    #[error("{path}: {reason}")]
    Malformed {
        /// The target path.
        path: String,
        /// What is missing or wrong.
        reason: String,
    },
}

/// The device the director's targets metadata names in its top-level `custom.device`.
pub fn director_device(director: &Targets) -> Option<&str> {
    director.unrecognized.get("custom")?.get("device")?.as_str()
}

/// Checks that the director's targets metadata is for `device_id`. An empty assignment must
/// name the device too, so that one device's "nothing to do" cannot be replayed to another.
pub fn check_director_device(device_id: &str, director: &Targets) -> Result<(), CrossCheckError> {
    match director_device(director) {
        Some(found) if found == device_id => Ok(()),
        found => Err(CrossCheckError::WrongDevice {
            expected: device_id.to_owned(),
            found: found.map(str::to_owned),
            entry: None,
        }),
    }
}

/// The product a target path belongs to: its first segment (`gateway` for
/// `gateway/1.4.0/firmware.bin`), or `None` when the path has no `/` or starts with one.
/// [`cross_check`] requires `custom.ferry.product` to equal it, so that a device keys its
/// release counter floors by it and not by a free-form field.
pub fn path_product(path: &str) -> Option<&str> {
    path.split_once('/').map(|(product, _)| product).filter(|product| !product.is_empty())
}

/// Checks the director's entry for `path` against the image repository's entry for the same
/// path, for device `device_id` of platform `platform`:
///
/// - the metadata and the entry name `device_id`;
/// - the lengths are equal; both list a sha256 and they are equal, as is every other digest the
///   director lists and the image repository also lists;
/// - `custom.ferry` product, version, platforms and release counter are equal
///   ([`MATCHING_FIELDS`]);
/// - `custom.ferry.product` is a string equal to the path's first segment ([`path_product`]),
///   which is what the caller must key `counter_floor` by;
/// - `custom.ferry.platforms` is a non-empty array of strings that contains `platform` (exact,
///   case-sensitive comparison), so that a compromised director cannot hand a device a genuinely
///   published image built for another platform. An empty list is refused as malformed rather
///   than read as "any platform": the server never publishes one (a release names at least one
///   platform, see `ferry_core::Release::check`);
/// - the release counter is an integer not below `counter_floor` (the counter of what the device
///   has installed of that product; equal is allowed, so that a release can be reinstalled).
pub fn cross_check(
    device_id: &str,
    platform: &str,
    director: &Targets,
    path: &str,
    director_target: &TargetFile,
    image_target: &TargetFile,
    counter_floor: Option<i64>,
) -> Result<(), CrossCheckError> {
    check_director_device(device_id, director)?;
    let entry_device = director_target.custom.as_ref().and_then(|c| c.get("device")).and_then(Value::as_str);
    if entry_device != Some(device_id) {
        return Err(CrossCheckError::WrongDevice {
            expected: device_id.to_owned(),
            found: entry_device.map(str::to_owned),
            entry: Some(path.to_owned()),
        });
    }
    if director_target.length != image_target.length {
        return Err(CrossCheckError::Length {
            path: path.to_owned(),
            director: director_target.length,
            image: image_target.length,
        });
    }
    check_digests(path, director_target, image_target)?;
    let director_ferry = raw_ferry(path, "director", director_target)?;
    let image_ferry = raw_ferry(path, "image repository", image_target)?;
    for field in MATCHING_FIELDS {
        let (d, i) = (director_ferry.get(field), image_ferry.get(field));
        if d != i {
            let show = |v: Option<&Value>| v.map_or_else(|| "null".to_owned(), Value::to_string);
            return Err(CrossCheckError::Field {
                path: path.to_owned(),
                field: field.to_owned(),
                director: show(d),
                image: show(i),
            });
        }
    }
    // Both sides agree on the fields from here on; the image repository's are read and checked.
    let malformed = |reason: String| CrossCheckError::Malformed { path: path.to_owned(), reason };
    let ferry = FerryTarget::of(image_target).map_err(|e| malformed(format!("the image repository's entry: {e}")))?;
    let product = ferry.product.as_str();
    match path_product(path) {
        Some(expected) if product == expected => {}
        expected => {
            return Err(malformed(format!(
                "custom.ferry.product is {product:?}, not the path's first segment {}",
                expected.map_or_else(
                    || "(none: the path is not product/version/artifact)".to_owned(),
                    |e| format!("{e:?}")
                ),
            )))
        }
    }
    check_platform(path, platform, &ferry)?;
    match counter_floor {
        Some(floor) if ferry.release_counter < floor => {
            Err(CrossCheckError::CounterDown { path: path.to_owned(), floor, counter: ferry.release_counter })
        }
        _ => Ok(()),
    }
}

/// Checks that `custom.ferry.platforms` is non-empty and lists `platform`.
fn check_platform(path: &str, platform: &str, ferry: &FerryTarget) -> Result<(), CrossCheckError> {
    if ferry.platforms.is_empty() {
        return Err(CrossCheckError::Malformed {
            path: path.to_owned(),
            reason: "custom.ferry.platforms is empty; a release names the platforms it is built for".to_owned(),
        });
    }
    if !ferry.platforms.iter().any(|p| p.as_str() == platform) {
        return Err(CrossCheckError::WrongPlatform {
            path: path.to_owned(),
            platform: platform.to_owned(),
            platforms: ferry.platforms.iter().map(|p| p.as_str().to_owned()).collect(),
        });
    }
    Ok(())
}

fn check_digests(path: &str, director: &TargetFile, image: &TargetFile) -> Result<(), CrossCheckError> {
    let missing = |side: &str| CrossCheckError::Malformed {
        path: path.to_owned(),
        reason: format!("the {side}'s entry lists no sha256 digest"),
    };
    director.sha256().ok_or_else(|| missing("director"))?;
    image.sha256().ok_or_else(|| missing("image repository"))?;
    for (algorithm, d) in &director.hashes {
        let i = image.hashes.get(algorithm);
        // sha256 must be on both sides (checked above); another algorithm only where both list it.
        if let Some(i) = i {
            if !d.eq_ignore_ascii_case(i) {
                return Err(CrossCheckError::Digest {
                    path: path.to_owned(),
                    algorithm: algorithm.clone(),
                    director: d.clone(),
                    image: i.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The `custom.ferry` object as JSON, for comparing the two sides field by field.
fn raw_ferry<'a>(
    path: &str,
    side: &str,
    target: &'a TargetFile,
) -> Result<&'a serde_json::Map<String, Value>, CrossCheckError> {
    target.custom.as_ref().and_then(|c| c.get("ferry")).and_then(Value::as_object).ok_or_else(|| {
        CrossCheckError::Malformed {
            path: path.to_owned(),
            reason: format!("the {side}'s entry has no custom.ferry object"),
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const DEVICE: &str = "dev-0001";
    const PLATFORM: &str = "arm64";
    const PATH: &str = "gateway/1.4.0/firmware.bin";
    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn ferry(counter: i64) -> Value {
        json!({
            "product": "gateway",
            "version": "1.4.0",
            "kind": "full",
            "platforms": ["arm64", "armv7"],
            "required": false,
            "reboot": "required",
            "release_counter": counter,
            "media_type": "application/octet-stream",
        })
    }

    fn image(counter: i64) -> TargetFile {
        TargetFile::new(4096, SHA, Some(json!({ "ferry": ferry(counter) })))
    }

    fn director_entry(device: &str, counter: i64) -> TargetFile {
        TargetFile::new(4096, SHA, Some(json!({ "device": device, "ferry": ferry(counter) })))
    }

    fn director(device: Option<&str>, entry: &TargetFile) -> Targets {
        let mut targets = Targets::new(7, "2030-01-01T00:00:00Z".into());
        if let Some(device) = device {
            targets.unrecognized.insert("custom".into(), json!({ "device": device }));
        }
        targets.targets.insert(PATH.into(), entry.clone());
        targets
    }

    fn check(
        director_meta: &Targets,
        entry: &TargetFile,
        image: &TargetFile,
        floor: Option<i64>,
    ) -> Result<(), CrossCheckError> {
        cross_check(DEVICE, PLATFORM, director_meta, PATH, entry, image, floor)
    }

    #[test]
    fn agreeing_entries_pass() {
        let entry = director_entry(DEVICE, 12);
        let meta = director(Some(DEVICE), &entry);
        assert_eq!(director_device(&meta), Some(DEVICE));
        check(&meta, &entry, &image(12), None).unwrap();
        check(&meta, &entry, &image(12), Some(12)).unwrap();
        check(&meta, &entry, &image(12), Some(3)).unwrap();
        // Fields outside MATCHING_FIELDS may differ (the director may add its own).
        let mut relaxed = entry.clone();
        relaxed.custom.as_mut().unwrap()["ferry"]["reboot"] = json!("none");
        relaxed.custom.as_mut().unwrap()["wave"] = json!(3);
        check(&meta, &relaxed, &image(12), None).unwrap();
        // Digest case does not matter.
        let mut upper = entry.clone();
        upper.hashes.insert("sha256".into(), SHA.to_ascii_uppercase());
        check(&meta, &upper, &image(12), None).unwrap();
    }

    #[test]
    fn metadata_for_another_device_is_refused() {
        let entry = director_entry(DEVICE, 12);
        let other = director(Some("dev-0002"), &entry);
        let err = check(&other, &entry, &image(12), None).unwrap_err();
        assert_eq!(
            err,
            CrossCheckError::WrongDevice { expected: DEVICE.into(), found: Some("dev-0002".into()), entry: None }
        );
        assert_eq!(
            err.to_string(),
            "director metadata is for device dev-0002, not dev-0001; refusing another device's assignment"
        );
        let unnamed = director(None, &entry);
        assert!(matches!(
            check(&unnamed, &entry, &image(12), None),
            Err(CrossCheckError::WrongDevice { found: None, .. })
        ));
        // An empty assignment must name the device too.
        let mut empty = Targets::new(1, "2030-01-01T00:00:00Z".into());
        assert!(check_director_device(DEVICE, &empty).is_err());
        empty.unrecognized.insert("custom".into(), json!({ "device": DEVICE }));
        check_director_device(DEVICE, &empty).unwrap();
        empty.unrecognized.insert("custom".into(), json!({ "device": 17 }));
        assert!(check_director_device(DEVICE, &empty).is_err());
    }

    #[test]
    fn entry_for_another_device_is_refused() {
        let entry = director_entry("dev-0002", 12);
        let meta = director(Some(DEVICE), &entry);
        let err = check(&meta, &entry, &image(12), None).unwrap_err();
        assert_eq!(
            err,
            CrossCheckError::WrongDevice {
                expected: DEVICE.into(),
                found: Some("dev-0002".into()),
                entry: Some(PATH.into())
            }
        );
        assert!(err.to_string().contains(PATH));
        let mut no_device = entry.clone();
        no_device.custom.as_mut().unwrap().as_object_mut().unwrap().remove("device");
        assert!(matches!(check(&meta, &no_device, &image(12), None), Err(CrossCheckError::WrongDevice { .. })));
    }

    #[test]
    fn length_must_match() {
        let mut entry = director_entry(DEVICE, 12);
        entry.length = 4097;
        let meta = director(Some(DEVICE), &entry);
        assert_eq!(
            check(&meta, &entry, &image(12), None),
            Err(CrossCheckError::Length { path: PATH.into(), director: 4097, image: 4096 })
        );
    }

    #[test]
    fn digests_must_match() {
        let mut entry = director_entry(DEVICE, 12);
        entry.hashes.insert("sha256".into(), "0".repeat(64));
        let meta = director(Some(DEVICE), &entry);
        assert!(matches!(
            check(&meta, &entry, &image(12), None),
            Err(CrossCheckError::Digest { algorithm, .. }) if algorithm == "sha256"
        ));
        // Another digest the director lists must match where the image repository lists it.
        let mut entry = director_entry(DEVICE, 12);
        entry.hashes.insert("sha512".into(), "a".repeat(128));
        let mut img = image(12);
        check(&meta, &entry, &img, None).unwrap();
        img.hashes.insert("sha512".into(), "b".repeat(128));
        assert!(matches!(
            check(&meta, &entry, &img, None),
            Err(CrossCheckError::Digest { algorithm, .. }) if algorithm == "sha512"
        ));
        // Both sides need a sha256.
        let mut no_sha = director_entry(DEVICE, 12);
        no_sha.hashes = [("sha512".to_owned(), "a".repeat(128))].into();
        assert!(matches!(check(&meta, &no_sha, &image(12), None), Err(CrossCheckError::Malformed { .. })));
        let entry = director_entry(DEVICE, 12);
        let mut img = image(12);
        img.hashes = [("sha512".to_owned(), "a".repeat(128))].into();
        assert!(matches!(check(&meta, &entry, &img, None), Err(CrossCheckError::Malformed { .. })));
    }

    #[test]
    fn product_version_platforms_and_counter_must_match() {
        for (field, value) in [
            ("product", json!("router")),
            ("version", json!("1.4.1")),
            ("platforms", json!(["arm64"])),
            ("release_counter", json!(13)),
        ] {
            let mut entry = director_entry(DEVICE, 12);
            entry.custom.as_mut().unwrap()["ferry"][field] = value;
            let meta = director(Some(DEVICE), &entry);
            let err = check(&meta, &entry, &image(12), None).unwrap_err();
            assert!(matches!(&err, CrossCheckError::Field { field: f, .. } if f == field), "{field}: {err}");
            // A field missing on one side differs too.
            let mut missing = director_entry(DEVICE, 12);
            missing.custom.as_mut().unwrap()["ferry"].as_object_mut().unwrap().remove(field);
            assert!(matches!(check(&meta, &missing, &image(12), None), Err(CrossCheckError::Field { .. })), "{field}");
        }
        let entry = director_entry(DEVICE, 12);
        let meta = director(Some(DEVICE), &entry);
        let mut bare = image(12);
        bare.custom = None;
        assert!(matches!(check(&meta, &entry, &bare, None), Err(CrossCheckError::Malformed { .. })));
        let mut text_counter = director_entry(DEVICE, 12);
        text_counter.custom.as_mut().unwrap()["ferry"]["release_counter"] = json!("12");
        let mut img = image(12);
        img.custom.as_mut().unwrap()["ferry"]["release_counter"] = json!("12");
        assert!(matches!(check(&meta, &text_counter, &img, None), Err(CrossCheckError::Malformed { .. })));
    }

    #[test]
    fn release_counter_must_not_go_down() {
        let entry = director_entry(DEVICE, 11);
        let meta = director(Some(DEVICE), &entry);
        let err = check(&meta, &entry, &image(11), Some(12)).unwrap_err();
        assert_eq!(err, CrossCheckError::CounterDown { path: PATH.into(), floor: 12, counter: 11 });
        assert!(err.to_string().contains("release counter goes down from 12 to 11"), "{err}");
    }

    /// `entry` and `image` with `custom.ferry.field` set to `value` on both sides.
    fn both_with(field: &str, value: Value) -> (TargetFile, TargetFile) {
        let (mut entry, mut img) = (director_entry(DEVICE, 12), image(12));
        entry.custom.as_mut().unwrap()["ferry"][field] = value.clone();
        img.custom.as_mut().unwrap()["ferry"][field] = value;
        (entry, img)
    }

    #[test]
    fn an_image_for_another_platform_is_refused() {
        let entry = director_entry(DEVICE, 12);
        let meta = director(Some(DEVICE), &entry);
        // Any platform the entry lists is accepted.
        cross_check(DEVICE, "armv7", &meta, PATH, &entry, &image(12), None).unwrap();
        let err = cross_check(DEVICE, "x86_64", &meta, PATH, &entry, &image(12), None).unwrap_err();
        assert_eq!(
            err,
            CrossCheckError::WrongPlatform {
                path: PATH.into(),
                platform: "x86_64".into(),
                platforms: vec!["arm64".into(), "armv7".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "gateway/1.4.0/firmware.bin is built for platform(s) arm64, armv7, not for this device's platform \
             x86_64; refusing an image for another platform"
        );
        // Exact comparison: no case folding, no prefix matching.
        for platform in ["ARM64", "arm", "arm64 ", ""] {
            assert!(
                matches!(
                    cross_check(DEVICE, platform, &meta, PATH, &entry, &image(12), None),
                    Err(CrossCheckError::WrongPlatform { .. })
                ),
                "{platform:?}"
            );
        }
    }

    #[test]
    fn platforms_must_be_a_non_empty_list_of_strings() {
        for platforms in [json!([]), json!("arm64"), json!(["arm64", 7]), json!(null), json!({ "arm64": true })] {
            let (entry, img) = both_with("platforms", platforms.clone());
            let meta = director(Some(DEVICE), &entry);
            let err = check(&meta, &entry, &img, None).unwrap_err();
            assert!(matches!(&err, CrossCheckError::Malformed { reason, .. } if reason.contains("platforms")), "{err}");
        }
        let (entry, img) = both_with("platforms", json!([]));
        let meta = director(Some(DEVICE), &entry);
        assert!(check(&meta, &entry, &img, None).unwrap_err().to_string().contains("custom.ferry.platforms is empty"));
        // Missing on both sides.
        let (mut entry, mut img) = (director_entry(DEVICE, 12), image(12));
        entry.custom.as_mut().unwrap()["ferry"].as_object_mut().unwrap().remove("platforms");
        img.custom.as_mut().unwrap()["ferry"].as_object_mut().unwrap().remove("platforms");
        let meta = director(Some(DEVICE), &entry);
        assert!(matches!(check(&meta, &entry, &img, None), Err(CrossCheckError::Malformed { .. })));
    }

    #[test]
    fn the_product_must_be_the_paths_first_segment() {
        assert_eq!(path_product(PATH), Some("gateway"));
        assert_eq!(path_product("gateway/firmware.bin"), Some("gateway"));
        assert_eq!(path_product("firmware.bin"), None);
        assert_eq!(path_product("/gateway/1.4.0/firmware.bin"), None);

        // Both repositories agree on a product that is not the path's: the floor the device keeps
        // for "gateway" would not apply, so the entry is refused.
        let (entry, img) = both_with("product", json!("router"));
        let meta = director(Some(DEVICE), &entry);
        let err = check(&meta, &entry, &img, Some(13)).unwrap_err();
        assert_eq!(
            err,
            CrossCheckError::Malformed {
                path: PATH.into(),
                reason: r#"custom.ferry.product is "router", not the path's first segment "gateway""#.into(),
            }
        );
        for product in [json!(7), json!(null), json!(["gateway"]), json!("Gateway"), json!("")] {
            let (entry, img) = both_with("product", product.clone());
            let meta = director(Some(DEVICE), &entry);
            assert!(matches!(check(&meta, &entry, &img, None), Err(CrossCheckError::Malformed { .. })), "{product}");
        }
        // A path that is not product/version/artifact names no product.
        let entry = director_entry(DEVICE, 12);
        let meta = director(Some(DEVICE), &entry);
        for path in ["firmware.bin", "/gateway/1.4.0/firmware.bin"] {
            let err = cross_check(DEVICE, PLATFORM, &meta, path, &entry, &image(12), None).unwrap_err();
            assert!(matches!(&err, CrossCheckError::Malformed { reason, .. } if reason.contains("(none")), "{err}");
        }
    }
}
