//! Uptane's two repositories on the device: what the director assigns, checked against what the
//! image repository publishes ([`ferry_tuf::uptane`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_tuf::uptane::{check_director_device, cross_check, path_product, CrossCheckError};
use ferry_tuf::{DirectorInstructions, TargetFile};
use serde_json::Value;

use crate::error::Result;
use crate::updater::{RefreshSummary, Updater};

/// A director assignment that passed the cross-check: install `target` (the image repository's
/// entry) from `path`.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedTarget {
    /// The target path (`product/version/artifact`).
    pub path: String,
    /// The image repository's entry: length, hashes and `custom` to download and install by.
    pub target: TargetFile,
    /// The image repository's targets role that lists it.
    pub image_role: String,
    /// The director entry's `custom` (the device, the `ferry` object, anything the director adds).
    pub director_custom: Option<Value>,
}

/// A director repository and an image repository, each with its own [`Updater`] (and its own
/// metadata directory and trusted root).
#[derive(Debug)]
pub struct Director {
    director: Updater,
    image: Updater,
}

impl Director {
    /// Both repositories' updaters.
    pub fn new(director: Updater, image: Updater) -> Self {
        Self { director, image }
    }

    /// Refreshes the director's metadata, then the image repository's. Both must succeed.
    pub async fn refresh_both(&mut self) -> Result<(RefreshSummary, RefreshSummary)> {
        let director = self.director.refresh().await?;
        let image = self.image.refresh().await?;
        Ok((director, image))
    }

    /// Refreshes the director's metadata only: enough to read its [`Director::instructions`],
    /// which need nothing from the image repository.
    pub async fn refresh_director(&mut self) -> Result<RefreshSummary> {
        self.director.refresh().await
    }

    /// What the director's verified targets metadata tells `device_id` besides its assignment
    /// (its top-level `custom`, see [`DirectorInstructions`]). Refused unless the metadata names
    /// this device, like the assignment; a `custom` that does not read as instructions is
    /// refused as malformed.
    pub async fn instructions(&mut self, device_id: &str) -> Result<DirectorInstructions> {
        let director = self.director.top_level_targets().await?;
        check_director_device(device_id, director)?;
        DirectorInstructions::of(director)
            .map_err(|reason| CrossCheckError::Malformed { path: "targets.json".into(), reason }.into())
    }

    /// What the director assigns to `device_id`, a device of platform `platform`, every entry
    /// cross-checked against the image repository ([`cross_check`]): the image must be built for
    /// `platform` (listed in its `custom.ferry.platforms`), its `custom.ferry.product` must be the
    /// path's first segment, and its release counter must not be below the floor `floors` gives
    /// for that product (the counter of what is installed; keyed by product name, e.g.
    /// `gateway` for `gateway/1.4.0/firmware.bin`). Only the director's top-level targets count
    /// as assignments. One disagreeing entry refuses the whole assignment: it means one
    /// repository is compromised. An empty assignment is valid but must still name the device.
    pub async fn assigned(
        &mut self,
        device_id: &str,
        platform: &str,
        floors: &HashMap<String, i64>,
    ) -> Result<Vec<VerifiedTarget>> {
        let director = self.director.top_level_targets().await?.clone();
        check_director_device(device_id, &director)?;
        let mut verified = Vec::with_capacity(director.targets.len());
        for (path, entry) in &director.targets {
            let Some((image_role, image)) = self.image.get_targetinfo(path).await? else {
                return Err(CrossCheckError::NotInImageRepository { path: path.clone() }.into());
            };
            // Keyed by the path's product, which cross_check requires custom.ferry.product to
            // equal (a path without one is refused there).
            let floor = path_product(path).and_then(|p| floors.get(p)).copied();
            cross_check(device_id, platform, &director, path, entry, &image, floor)?;
            verified.push(VerifiedTarget {
                path: path.clone(),
                target: image,
                image_role,
                director_custom: entry.custom.clone(),
            });
        }
        Ok(verified)
    }

    /// Downloads a verified target from the image repository into `dest_dir`.
    pub async fn download(&self, target: &VerifiedTarget, dest_dir: &Path) -> Result<PathBuf> {
        self.image.download_target(&target.path, &target.target, dest_dir).await
    }

    /// The director repository's updater.
    pub fn director(&self) -> &Updater {
        &self.director
    }

    /// The image repository's updater.
    pub fn image(&self) -> &Updater {
        &self.image
    }
}
