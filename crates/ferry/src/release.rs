//! `ferry release`: publishing releases (uploading their artifacts first), listing them, and
//! signing them (see [`crate::trust`]).

use std::path::PathBuf;

use ferry_api::ReleaseSpec;
use ferry_client::AdminClient;
use ferry_core::catalogue::{ReleaseError, MAX_NOTES};
use ferry_core::{
    Artifact, ArtifactName, Classification, Dependency, PlatformName, ProductName, RebootBehaviour, Release,
    ReleaseChange, ReleaseId, ReleaseKind, Sha256, Version, VersionRange,
};

use crate::context::Context;
use crate::exit::{local_file, usage};
use crate::output::say;
use crate::output::{list, print_fields, print_table, wire_name, yes_no};
use crate::time::format_unix;
use crate::values::{dependency, release_id, wire_enum};

/// Manages releases.
#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReleaseCommand {
    /// Uploads artifacts and publishes a release made of them.
    Publish(Box<PublishArgs>),
    /// Lists releases, newest first.
    List {
        /// Only releases of this product.
        #[arg(long)]
        product: Option<ProductName>,
    },
    /// Shows one release with its artifacts.
    Show {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
    },
    /// Signs releases into targets metadata and pushes it, with keys on this machine: `ferry
    /// trust draft`, `ferry metadata sign` and `ferry trust push` in one go.
    Sign(Box<crate::trust::ReleaseSignArgs>),
    /// Deletes a release that no device can have been offered: one never approved for install,
    /// never reported on by a device and not in the signed targets metadata. Archive the others.
    Delete {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
    },
    /// Stops offering a release. It stays listed, with its content, and can be unarchived.
    Archive {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
    },
    /// Offers an archived release again (to the groups that approve it).
    Unarchive {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
    },
    /// Marks a release bad: withdraws it from every offer and tells each device running it to
    /// go back to the version it kept before it. There is no undo: publish a fixed release.
    MarkBad {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
        /// What is wrong with it (up to 1024 bytes), shown with the release.
        #[arg(long)]
        reason: String,
    },
    /// Changes a release's notes (the only part of a published release that can change).
    Edit {
        /// Release id.
        #[arg(value_parser = release_id)]
        id: ReleaseId,
        /// New release notes.
        #[arg(long, required_unless_present = "notes_file", conflicts_with = "notes_file")]
        notes: Option<String>,
        /// Read the new release notes from a file.
        #[arg(long, value_name = "FILE")]
        notes_file: Option<PathBuf>,
    },
}

/// `ferry release publish`.
#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// Product the release belongs to.
    #[arg(long)]
    product: ProductName,
    /// Version, e.g. 5.0.04 or "4.0 (Rel)".
    #[arg(long)]
    version: Version,
    /// Platform it installs on (repeat for several).
    #[arg(long = "platform", value_name = "PLATFORM", required = true)]
    platforms: Vec<PlatformName>,
    /// File to upload as an artifact, named by its file name (repeat for several).
    #[arg(long = "artifact", value_name = "FILE", required = true)]
    artifacts: Vec<PathBuf>,
    /// full, patch or config.
    #[arg(long, default_value = "full", value_parser = wire_enum::<ReleaseKind>)]
    kind: ReleaseKind,
    /// Devices install it without consent.
    #[arg(long)]
    required: bool,
    /// none, required or possible.
    #[arg(long, default_value = "none", value_parser = wire_enum::<RebootBehaviour>)]
    reboot: RebootBehaviour,
    /// security, critical, bugfix, feature or maintenance.
    #[arg(long, default_value = "feature", value_parser = wire_enum::<Classification>)]
    classification: Classification,
    /// Release notes.
    #[arg(long, conflicts_with = "notes_file")]
    notes: Option<String>,
    /// Read the release notes from a file.
    #[arg(long, value_name = "FILE")]
    notes_file: Option<PathBuf>,
    /// A version this release replaces (repeat for several).
    #[arg(long, value_name = "VERSION")]
    supersedes: Vec<Version>,
    /// An installed version that needs no update (repeat for several).
    #[arg(long = "no-update-version", value_name = "VERSION")]
    no_update_versions: Vec<Version>,
    /// For patches: the lowest installed version it applies to.
    #[arg(long, value_name = "VERSION")]
    applies_from: Option<Version>,
    /// For patches: the highest installed version it applies to.
    #[arg(long, value_name = "VERSION")]
    applies_to: Option<Version>,
    /// A release needed first, as PRODUCT>=VERSION (repeat for several).
    #[arg(long = "depends-on", value_name = "DEPENDENCY", value_parser = dependency)]
    depends_on: Vec<Dependency>,
    #[arg(long, value_name = "TYPE", help = crate::media::HELP)]
    media_type: Option<String>,
}

impl ReleaseArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            ReleaseCommand::Publish(args) => args.run(ctx, &client).await,
            ReleaseCommand::List { product } => {
                // The server lists no releases for a product it does not have; a typo in the
                // name should not look like an empty catalogue.
                if let Some(product) = &product {
                    client.get_product(product).await?;
                }
                let releases = client.list_releases(product.as_ref()).await?;
                ctx.out.show(&releases, |rs| print_releases(rs))
            }
            ReleaseCommand::Show { id } => ctx.out.show(&client.get_release(id).await?, print_release),
            ReleaseCommand::Sign(args) => args.run(ctx, &client).await,
            ReleaseCommand::Delete { id } => {
                client.delete_release(id).await?;
                let deleted = serde_json::json!({ "release": id, "deleted": true });
                ctx.out.show(&deleted, |_| say!("deleted release {id}"))
            }
            ReleaseCommand::Archive { id } => {
                let release = client.update_release(id, &ReleaseChange { notes: None, archived: Some(true) }).await?;
                ctx.out
                    .show(&release, |r| say!("archived release {id} ({} {}): no longer offered", r.product, r.version))
            }
            ReleaseCommand::Unarchive { id } => {
                let release = client.update_release(id, &ReleaseChange { notes: None, archived: Some(false) }).await?;
                ctx.out.show(&release, |r| say!("unarchived release {id} ({} {})", r.product, r.version))
            }
            ReleaseCommand::MarkBad { id, reason } => {
                let release = client.mark_release_bad(id, &reason).await?;
                ctx.out.show(&release, |r| {
                    say!("release {id} ({} {}) is marked bad{}", r.product, r.version, bad_detail(r));
                    say!(
                        "it is offered to no device; devices running it go back to the version they kept at their \
                         next check-in (ferry device why ID shows it per device)"
                    );
                })
            }
            ReleaseCommand::Edit { id, notes, notes_file } => {
                let notes = match (notes, notes_file) {
                    (Some(notes), _) => notes,
                    (None, Some(path)) => std::fs::read_to_string(&path).map_err(local_file("read", &path))?,
                    (None, None) => unreachable!("clap requires --notes or --notes-file"),
                };
                if notes.len() > MAX_NOTES {
                    return Err(usage(ReleaseError::NotesTooLong(notes.len()).to_string()));
                }
                let release = client.update_release(id, &ReleaseChange { notes: Some(notes), archived: None }).await?;
                ctx.out.show(&release, |r| say!("changed the notes of release {id} ({} {})", r.product, r.version))
            }
        }
    }
}

impl PublishArgs {
    async fn run(self, ctx: &Context, client: &AdminClient) -> anyhow::Result<()> {
        let mut spec = self.spec()?;
        // Check the release as the server will, and that its product and platforms exist,
        // before uploading anything: a mistake then costs no transfer. Placeholder digests
        // stand in for the artifacts' content.
        spec.clone().into_release().check().map_err(explain)?;
        client.get_product(&spec.product).await?;
        for platform in &spec.platforms {
            client.get_platform(platform).await?;
        }
        for (path, artifact) in self.artifacts.iter().zip(spec.artifacts.iter_mut()) {
            let info = crate::content::upload(client, path).await?;
            artifact.sha256 = info.sha256;
            artifact.length = info.length;
        }
        let release = client.create_release(&spec).await?;
        ctx.out.created(&release, release.id, |r| {
            let platforms = list(&r.platforms);
            say!("published release {}: {} {} ({}) for {platforms}", r.id, r.product, r.version, r.kind.as_str());
        })
    }

    /// The release to create, with artifacts named after their files and not yet hashed.
    fn spec(&self) -> anyhow::Result<ReleaseSpec> {
        let notes = match (&self.notes, &self.notes_file) {
            (Some(notes), _) => notes.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(local_file("read", path))?,
            (None, None) => String::new(),
        };
        let applies_to = (self.applies_from.is_some() || self.applies_to.is_some())
            .then(|| VersionRange { min: self.applies_from.clone(), max: self.applies_to.clone() });
        let artifacts = self
            .artifacts
            .iter()
            .map(|path| {
                let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let name = ArtifactName::new(file_name)
                    .map_err(|e| usage(format!("--artifact {}: {e}; rename the file", path.display())))?;
                let media_type = match &self.media_type {
                    Some(given) => given.clone(),
                    None => {
                        crate::media::infer(file_name).ok_or_else(|| usage(crate::media::unknown(path)))?.to_owned()
                    }
                };
                Ok(Artifact {
                    name,
                    length: 0,
                    sha256: Sha256::from_bytes([0; 32]),
                    media_type,
                    custom: serde_json::Map::new(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ReleaseSpec {
            product: self.product.clone(),
            version: self.version.clone(),
            kind: self.kind,
            platforms: self.platforms.clone(),
            artifacts,
            required: self.required,
            reboot: self.reboot,
            classification: self.classification,
            notes,
            dependencies: self.depends_on.clone(),
            supersedes: self.supersedes.clone(),
            no_update_versions: self.no_update_versions.clone(),
            applies_to,
        })
    }
}

/// Says a refused release's problem in terms of this command's flags where they differ.
fn explain(err: ReleaseError) -> anyhow::Error {
    match err {
        ReleaseError::PatchWithoutRange => {
            usage("a patch release needs --applies-from and/or --applies-to: the installed versions it patches")
        }
        ReleaseError::RangeWithoutPatch => usage("--applies-from and --applies-to are only for --kind patch"),
        other => usage(other.to_string()),
    }
}

fn print_releases(releases: &[Release]) {
    print_table(
        &[
            "id",
            "product",
            "version",
            "kind",
            "platforms",
            "artifacts",
            "required",
            "class",
            "created",
            "bad",
            "archived",
        ],
        releases.iter().map(|r| {
            vec![
                r.id.to_string(),
                r.product.to_string(),
                r.version.to_string(),
                r.kind.as_str().to_owned(),
                list(&r.platforms),
                r.artifacts.len().to_string(),
                yes_no(r.required),
                wire_name(&r.classification),
                format_unix(r.created_at),
                yes_no(r.bad.is_some()),
                yes_no(r.archived),
            ]
        }),
    );
}

/// `: REASON (by NAME, TIME)` for a release marked bad, nothing otherwise.
fn bad_detail(r: &Release) -> String {
    r.bad.as_ref().map_or_else(String::new, |b| format!(": {} (by {}, {})", b.reason, b.by, format_unix(b.at)))
}

fn print_release(r: &Release) {
    let range = r.applies_to.as_ref().map(|range| {
        let end = |v: &Option<Version>| v.as_ref().map_or_else(|| "*".to_owned(), Version::to_string);
        format!("{} to {}", end(&range.min), end(&range.max))
    });
    print_fields(&[
        ("id", r.id.to_string()),
        ("product", r.product.to_string()),
        ("version", r.version.to_string()),
        ("kind", r.kind.as_str().to_owned()),
        ("platforms", list(&r.platforms)),
        ("required", yes_no(r.required)),
        ("reboot", wire_name(&r.reboot)),
        ("classification", wire_name(&r.classification)),
        ("supersedes", list(&r.supersedes)),
        ("no update for", list(&r.no_update_versions)),
        ("applies to", range.unwrap_or_else(|| "-".to_owned())),
        ("depends on", list(r.dependencies.iter().map(|d| format!("{}>={}", d.product, d.min_version)))),
        ("counter", r.counter.to_string()),
        ("created", format_unix(r.created_at)),
        ("archived", yes_no(r.archived)),
        ("bad", if r.bad.is_some() { format!("yes{}", bad_detail(r)) } else { yes_no(false) }),
    ]);
    if !r.notes.is_empty() {
        say!("\n{}\n", r.notes.trim_end());
    }
    print_table(
        &["artifact", "length", "sha256", "media type"],
        r.artifacts
            .iter()
            .map(|a| vec![a.name.to_string(), a.length.to_string(), a.sha256.to_string(), a.media_type.clone()]),
    );
}
