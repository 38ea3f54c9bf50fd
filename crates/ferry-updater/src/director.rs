//! Uptane's two repositories on the device: what the director assigns, checked against what the
//! image repository publishes ([`ferry_tuf::uptane`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_tuf::uptane::{check_director_device, cross_check, CrossCheckError};
use ferry_tuf::TargetFile;
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

    /// What the director assigns to `device_id`, every entry cross-checked against the image
    /// repository with the release counter floor `floors` gives for its product (the counter of
    /// what is installed). Only the director's top-level targets count as assignments. One
    /// disagreeing entry refuses the whole assignment: it means one repository is compromised.
    /// An empty assignment is valid but must still name the device.
    pub async fn assigned(&mut self, device_id: &str, floors: &HashMap<String, i64>) -> Result<Vec<VerifiedTarget>> {
        let director = self.director.top_level_targets().await?.clone();
        check_director_device(device_id, &director)?;
        let mut verified = Vec::with_capacity(director.targets.len());
        for (path, entry) in &director.targets {
            let Some((image_role, image)) = self.image.get_targetinfo(path).await? else {
                return Err(CrossCheckError::NotInImageRepository { path: path.clone() }.into());
            };
            let product = entry.custom.as_ref().and_then(|c| c.pointer("/ferry/product")).and_then(Value::as_str);
            let floor = product.and_then(|p| floors.get(p)).copied();
            cross_check(device_id, &director, path, entry, &image, floor)?;
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
