//! `ferry trust` and `ferry release sign`: the online half of signing. The server's online keys
//! go to the offline machine (for root metadata), drafts of the next targets metadata go there
//! to be signed, and signed root and targets metadata come back to be pushed.
//!
//! A draft is the server's word, so it is checked before anything signs it or it is written
//! for an offline signer: against the version of the role the server publishes, verified from
//! root version 1 up, it may only add the releases asked for (see [`check_draft`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferry_api::trust::{OnlineKeys, Published, TargetsDraft, TrustStatus};
use ferry_client::{AdminClient, ClientError, DeviceClient};
use ferry_core::{ProductName, ReleaseId};
use ferry_tuf::draft::{check_draft, Expected};
use ferry_tuf::trusted::MAX_ROOT_ROTATIONS;
use ferry_tuf::{Targets, TrustedSet, TufError, Verifiable};
use serde::Serialize;

use crate::atomic::{write_file, Access, Existing};
use crate::context::Context;
use crate::exit::{usage, MetadataRefused};
use crate::key::open_keys;
use crate::metadata::{self, Kind};
use crate::output::{print_fields, print_table, say, yes_no};
use crate::passphrase::PassphraseArgs;
use crate::values::{expires_days, release_id};

/// The image repository's signed metadata on the server.
#[derive(Debug, clap::Args)]
pub struct TrustArgs {
    #[command(subcommand)]
    command: TrustCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TrustCommand {
    /// Shows the server's online public keys; --out saves them for `ferry root create`.
    OnlineKeys {
        /// Also write them to this file.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Start (or continue) an online-key rotation: show the snapshot and timestamp keys
        /// the server will switch to once a pushed root lists them (`ferry root rotate
        /// --online-keys FILE`).
        #[arg(long)]
        next: bool,
    },
    /// Rotates the director's online keys now: devices follow the new director root.
    RotateDirectorKeys,
    /// Shows the versions and expiries of the image repository's metadata, and the releases
    /// that no signed targets metadata lists yet.
    Status,
    /// Writes the next version of targets metadata, unsigned, with releases added: carry it to
    /// the offline machine, sign it with `ferry metadata sign`, push it with `ferry trust push`.
    Draft(DraftArgs),
    /// Pushes signed root or targets metadata to the server, which verifies it.
    Push(PushArgs),
}

/// `ferry trust draft`.
#[derive(Debug, clap::Args)]
struct DraftArgs {
    /// targets, or a delegated role (a product's name).
    #[arg(long, default_value = "targets", value_parser = role_name)]
    role: String,
    /// A release to add (repeat for several; default: every release not yet signed).
    #[arg(long = "release", value_name = "ID", value_parser = release_id)]
    releases: Vec<ReleaseId>,
    /// Add no release: the next version lists what the current one does (to add a
    /// delegation or to renew the expiry).
    #[arg(long, conflicts_with = "releases")]
    no_releases: bool,
    /// Days until the drafted metadata expires (the server's default: 365).
    #[arg(long, value_name = "DAYS", value_parser = expires_days)]
    expires_days: Option<u32>,
    /// Where to write the unsigned metadata.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Trust the server's repository from this root metadata (a root.json the root keys
    /// signed, e.g. the one you pushed) instead of the server's `1.root.json`: a server that
    /// forged its whole root history is then caught too. Newer roots must chain from it.
    #[arg(long = "root", value_name = "ROOT_FILE")]
    pinned_root: Option<PathBuf>,
}

/// `ferry trust push`.
#[derive(Debug, clap::Args)]
struct PushArgs {
    /// Signed root or targets metadata.
    file: PathBuf,
    /// For delegated targets metadata: the role's name (default: targets; root files need none).
    #[arg(long, value_parser = role_name)]
    role: Option<String>,
}

/// `targets` or a delegated role's name, which follows the product-name rule (the server's too).
fn role_name(s: &str) -> Result<String, String> {
    if s == "targets" {
        return Ok(s.to_owned());
    }
    ProductName::new(s).map(|p| p.as_str().to_owned()).map_err(|e| format!("{e}; a role is targets or a product"))
}

impl TrustArgs {
    /// Runs the subcommand.
    pub async fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let client = ctx.admin()?;
        match self.command {
            TrustCommand::OnlineKeys { out, next } => {
                let keys = if next { client.next_online_keys().await? } else { client.online_keys().await? };
                if let Some(out) = &out {
                    let mut bytes = serde_json::to_vec_pretty(&keys)?;
                    bytes.push(b'\n');
                    write_file(out, &bytes, Access::Public, Existing::Replace)?;
                }
                ctx.out.show(&keys, |k| print_online_keys(k, out.as_deref()))
            }
            TrustCommand::Status => ctx.out.show(&client.trust_status().await?, print_status),
            TrustCommand::RotateDirectorKeys => ctx.out.show(&client.rotate_director_keys().await?, |r| {
                println!(
                    "director keys rotated: director root version {}, director key {}",
                    r.root_version,
                    r.director.key_id()
                );
            }),
            TrustCommand::Draft(args) => args.run(ctx, &client).await,
            TrustCommand::Push(args) => {
                let bytes = metadata::read(&args.file)?;
                let published = push(&client, &args.file, bytes, args.role.as_deref()).await?;
                ctx.out.show(&published, print_published)
            }
        }
    }
}

fn print_online_keys(keys: &OnlineKeys, out: Option<&Path>) {
    let mut rows = vec![
        ("snapshot", &keys.snapshot),
        ("timestamp", &keys.timestamp),
        ("director_root", &keys.director_root),
        ("director", &keys.director),
    ];
    // The keys waiting to take over in an online-key rotation.
    if let Some(next) = &keys.next {
        rows.extend([("next snapshot", &next.snapshot), ("next timestamp", &next.timestamp)]);
    }
    print_table(
        &["role", "scheme", "keyid"],
        rows.into_iter().map(|(role, key)| vec![role.to_owned(), key.scheme.clone(), key.key_id()]),
    );
    if let Some(out) = out {
        say!("wrote {}: give it to `ferry root create --online-keys`", out.display());
    }
}

fn print_status(status: &TrustStatus) {
    print_fields(&[("signed releases required", yes_no(status.require_signed_releases))]);
    let roles = status.roles.iter().map(|(role, r)| {
        vec![role.clone(), r.version.to_string(), r.expires.clone().unwrap_or_else(|| "-".to_owned())]
    });
    print_table(&["role", "version", "expires"], roles);
    if status.unsigned_releases.is_empty() {
        say!("every release is signed");
        return;
    }
    say!("releases awaiting a signature:");
    print_table(
        &["id", "product", "version"],
        status.unsigned_releases.iter().map(|r| vec![r.id.to_string(), r.product.to_string(), r.version.to_string()]),
    );
}

/// What `ferry trust draft` prints.
#[derive(Debug, Serialize)]
struct DraftWritten<'a> {
    file: &'a Path,
    role: &'a str,
    version: u64,
    expires: &'a str,
    /// How many targets the draft lists.
    targets: usize,
    /// The target paths it adds to the published version.
    added: &'a [String],
}

impl DraftArgs {
    async fn run(self, ctx: &Context, client: &AdminClient) -> anyhow::Result<()> {
        let releases = (self.no_releases || !self.releases.is_empty()).then_some(self.releases.as_slice());
        // `None` asks for every release not yet signed.
        let drafted = client.draft_targets(&self.role, releases, self.expires_days).await?;
        let request = DraftRequest {
            role: &self.role,
            releases,
            expires_days: self.expires_days,
            pinned_root: self.pinned_root.as_deref(),
            doing: Doing::Write,
        };
        let checked = check_server_draft(ctx, client, &drafted, request).await?;
        let bytes = ferry_tuf::metadata::sign(&checked.draft, &[])?;
        write_file(&self.out, &bytes, Access::Public, Existing::Replace)?;
        let report = DraftWritten {
            file: &self.out,
            role: &self.role,
            version: checked.draft.version,
            expires: &checked.draft.expires,
            targets: checked.draft.targets.len(),
            added: &checked.added,
        };
        ctx.out.show(&report, |r| {
            say!(
                "wrote unsigned {} version {} ({} target(s), expires {}) to {}",
                r.role,
                r.version,
                r.targets,
                r.expires,
                r.file.display()
            );
            print_added(&checked.added, checked.published);
            say!("sign it with `ferry metadata sign {} --key KEY`, then `ferry trust push`", self.out.display());
        })
    }
}

/// The role a metadata file is pushed as.
fn push_role(file: &Path, kind: Kind, role: Option<&str>) -> anyhow::Result<String> {
    match (kind, role) {
        (Kind::Root, None) => Ok("root".to_owned()),
        (Kind::Root, Some(role)) => {
            Err(usage(format!("{} is root metadata; --role {role} is for delegated targets only", file.display())))
        }
        (Kind::Targets, role) => Ok(role.unwrap_or("targets").to_owned()),
        (Kind::Snapshot | Kind::Timestamp, _) => Err(usage(format!(
            "{} is {} metadata, which the server signs itself; push root or targets metadata",
            file.display(),
            kind.name()
        ))),
    }
}

/// Pushes signed metadata; the server verifies it before storing anything.
async fn push(client: &AdminClient, file: &Path, bytes: Vec<u8>, role: Option<&str>) -> anyhow::Result<Published> {
    let kind = Kind::of(file, &bytes)?;
    let role = push_role(file, kind, role)?;
    let unsigned = serde_json::from_slice::<serde_json::Value>(&bytes)?
        .get("signatures")
        .and_then(serde_json::Value::as_array)
        .is_none_or(Vec::is_empty);
    if unsigned {
        return Err(MetadataRefused(format!(
            "{} has no signatures; sign it first: `ferry metadata sign {} --key KEY`",
            file.display(),
            file.display()
        ))
        .into());
    }
    let published = client.push_image_metadata(&role, bytes).await.map_err(|e| {
        anyhow::Error::from(e).context(format!("the server did not accept {} as {role} metadata", file.display()))
    })?;
    Ok(published)
}

fn print_published(p: &Published) {
    match (p.snapshot_version, p.timestamp_version) {
        (Some(snapshot), Some(timestamp)) => say!(
            "published {} version {} (the server signed snapshot version {snapshot} and timestamp version \
             {timestamp})",
            p.role,
            p.version
        ),
        _ => say!("published {} version {}", p.role, p.version),
    }
}

/// Drafts, signs and pushes targets metadata for releases in one go, for a publisher whose
/// targets key is on this machine.
#[derive(Debug, clap::Args)]
pub struct ReleaseSignArgs {
    /// Release ids (`ferry trust status` lists the unsigned ones).
    #[arg(value_parser = release_id, required = true)]
    ids: Vec<ReleaseId>,
    /// A sealed targets key (or the delegated role's key) to sign with (repeat for several).
    #[arg(long = "key", value_name = "KEY_FILE", required = true)]
    keys: Vec<PathBuf>,
    /// Sign as this delegated role instead of the top-level targets.
    #[arg(long, default_value = "targets", value_parser = role_name)]
    role: String,
    /// Days until the new targets metadata expires (the server's default: 365).
    #[arg(long, value_name = "DAYS", value_parser = expires_days)]
    expires_days: Option<u32>,
    /// Trust the server's repository from this root metadata (a root.json the root keys
    /// signed, e.g. the one you pushed) instead of the server's `1.root.json`: a server that
    /// forged its whole root history is then caught too. Newer roots must chain from it.
    #[arg(long = "root", value_name = "ROOT_FILE")]
    pinned_root: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// What `ferry release sign` prints.
#[derive(Debug, Serialize)]
struct ReleaseSigned {
    role: String,
    version: u64,
    releases: Vec<ReleaseId>,
    /// The target paths this version adds to the published one: what the keys vouched for.
    added: Vec<String>,
    signed_by: Vec<String>,
    published: Published,
}

impl ReleaseSignArgs {
    /// Runs `ferry release sign`. The server's draft is signed only once it checks against the
    /// version of the role the server publishes (see [`check_draft`]).
    pub async fn run(self, ctx: &Context, client: &AdminClient) -> anyhow::Result<()> {
        // Keys first: a wrong passphrase costs no round trip and leaves nothing half done.
        let keys = open_keys(&self.keys, &self.passphrase)?;
        let drafted = client.draft_targets(&self.role, Some(&self.ids), self.expires_days).await?;
        let request = DraftRequest {
            role: &self.role,
            releases: Some(&self.ids),
            expires_days: self.expires_days,
            pinned_root: self.pinned_root.as_deref(),
            doing: Doing::Sign,
        };
        let checked = check_server_draft(ctx, client, &drafted, request).await?;
        let what = PathBuf::from(format!("the drafted {} metadata", self.role));
        let signed = metadata::sign(&what, &ferry_tuf::metadata::sign(&checked.draft, &[])?, &keys)?;
        let published = push(client, &what, signed.bytes, Some(&self.role)).await?;
        let report = ReleaseSigned {
            role: self.role.clone(),
            version: signed.version,
            releases: self.ids.clone(),
            added: checked.added,
            signed_by: keys.iter().map(|k| k.key_id().to_owned()).collect(),
            published,
        };
        ctx.out.show(&report, |r| {
            let ids = r.releases.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            say!("signed release(s) {ids} into {} version {} with {}", r.role, r.version, r.signed_by.join(", "));
            print_added(&r.added, checked.published);
            print_published(&r.published);
        })
    }
}

/// Lists the target paths a draft adds, for the person about to sign it.
fn print_added(added: &[String], published: Option<u64>) {
    let over = published.map_or_else(|| "no version is published yet".to_owned(), |v| format!("over version {v}"));
    if added.is_empty() {
        say!("it adds no target ({over})");
        return;
    }
    say!("it adds {} target(s) ({over}):", added.len());
    for path in added {
        say!("  {path}");
    }
}

// --- Checking the server's drafts -----------------------------------------------------------
//
// A draft comes from the server, which a publisher's offline keys must not trust blindly: a
// compromised server could slip other targets, other hashes for published targets, or other
// delegations into it. So before a draft is signed (or written for an offline signer) it is
// compared with the version of the role the server publishes, verified from the root up with
// the TUF client workflow, and it may differ only by the releases asked for, a version one up
// and a fresh expiry.

/// The server's default for `--expires-days`.
const DEFAULT_EXPIRES_DAYS: u32 = 365;

/// What would not happen when a draft is refused.
#[derive(Debug, Clone, Copy)]
enum Doing {
    Sign,
    Write,
}

/// What a draft was asked for, and how to check it.
#[derive(Debug, Clone, Copy)]
struct DraftRequest<'a> {
    role: &'a str,
    /// The releases asked for; `None`: every unsigned one.
    releases: Option<&'a [ReleaseId]>,
    expires_days: Option<u32>,
    /// The publisher's root to verify the published metadata from (`--root`).
    pinned_root: Option<&'a Path>,
    doing: Doing,
}

impl Doing {
    fn nothing(self) -> &'static str {
        match self {
            Self::Sign => "nothing was signed",
            Self::Write => "nothing was written",
        }
    }
}

/// A draft that passed [`check_draft`].
#[derive(Debug)]
struct CheckedDraft {
    /// Its content, exactly what is signed or written.
    draft: Targets,
    /// The target paths it adds.
    added: Vec<String>,
    /// The published version it was checked against, if any.
    published: Option<u64>,
}

/// Checks a draft of `role` the server returned (for `releases`: `None` means every unsigned
/// one) against the version the server publishes, verified from the root. The refusal is a
/// [`MetadataRefused`] (exit code 11).
async fn check_server_draft(
    ctx: &Context,
    client: &AdminClient,
    drafted: &TargetsDraft,
    request: DraftRequest<'_>,
) -> anyhow::Result<CheckedDraft> {
    let DraftRequest { role, releases, expires_days, pinned_root, doing } = request;
    let refused = |reason: String| -> anyhow::Error {
        MetadataRefused(format!(
            "refusing the server's draft of {role} metadata: {reason}. The server may be compromised, or the \
             draft stale (another version was published meanwhile: run the command again); {}",
            doing.nothing()
        ))
        .into()
    };
    let bytes = serde_json::to_vec(drafted)?;
    let draft = Verifiable::<Targets>::parse(&format!("the drafted {role} metadata"), &bytes)
        .map_err(|e| refused(e.to_string()))?
        .signed;
    let allowed = release_paths(client, releases).await?;
    let now = crate::time::now();
    let pinned = match pinned_root {
        Some(path) => Some(std::fs::read(path).map_err(crate::exit::local_file("read", path))?),
        None => None,
    };
    let current = match published_targets(&ctx.tuf_reader()?, role, now, pinned.as_deref()).await {
        Ok(current) => current,
        Err(e) if e.is::<ClientError>() => return Err(e),
        Err(e) => {
            return Err(MetadataRefused(format!(
                "cannot check the server's draft of {role} metadata: the metadata the server publishes does not \
                 verify: {e:#}. The server may be compromised, or its repository broken; {}",
                doing.nothing()
            ))
            .into())
        }
    };
    let expected = Expected {
        allowed: &allowed,
        complete: releases.is_some(),
        now,
        expires_days: expires_days.unwrap_or(DEFAULT_EXPIRES_DAYS),
    };
    let added = check_draft(current.as_ref(), &draft, &expected).map_err(|e| refused(e.to_string()))?;
    Ok(CheckedDraft { published: current.map(|c| c.version), draft, added })
}

/// The target paths of the releases asked for (`None`: of every release, as the server
/// adds the unsigned ones).
async fn release_paths(client: &AdminClient, ids: Option<&[ReleaseId]>) -> anyhow::Result<BTreeSet<String>> {
    let releases = match ids {
        Some(ids) => {
            let mut releases = Vec::with_capacity(ids.len());
            for id in ids {
                releases.push(client.get_release(*id).await?);
            }
            releases
        }
        None => client.list_releases(None).await?,
    };
    Ok(releases.iter().flat_map(|r| r.artifacts.iter().map(|a| r.target_path(&a.name))).collect())
}

/// The version of targets role `role` the server's image repository publishes, verified as a
/// TUF client verifies it, by [`TrustedSet`]: from root version 1 (or the pinned root), each
/// later root in turn (at most [`MAX_ROOT_ROTATIONS`] of them, as a device follows in one
/// refresh), the timestamp, the snapshot it names, the top-level targets and, for a delegated
/// role, its metadata signed by the keys the top-level targets delegate to it. `None` when no
/// version is published. The targets' own expiry is not checked: renewing expired targets is a
/// reason to draft.
async fn published_targets(
    repo: &DeviceClient,
    role: &str,
    now: i64,
    pinned_root: Option<&[u8]>,
) -> anyhow::Result<Option<Targets>> {
    let mut set = match pinned_root {
        Some(root) => TrustedSet::new(root, now)?,
        None => {
            let Some(first) = repo.image_metadata("1.root.json").await? else { return Ok(None) };
            TrustedSet::new(&first, now)?
        }
    };
    let mut rotations = 0;
    loop {
        let version = set.root().version + 1;
        let Some(bytes) = repo.image_metadata(&format!("{version}.root.json")).await? else { break };
        if rotations == MAX_ROOT_ROTATIONS {
            return Err(TufError::malformed(
                "root",
                format!(
                    "more than {MAX_ROOT_ROTATIONS} versions follow the root trusted first; pass a newer root \
                     the root keys signed with --root"
                ),
            )
            .into());
        }
        set.update_root(&bytes)?;
        rotations += 1;
    }
    let Some(timestamp) = repo.image_metadata("timestamp.json").await? else { return Ok(None) };
    let _ = set.update_timestamp(&timestamp)?;
    let trusted_timestamp = set.timestamp().ok_or_else(|| TufError::Order("the timestamp was not loaded".into()))?;
    let snapshot_version = trusted_timestamp.snapshot_meta()?.version;
    let file = format!("{snapshot_version}.snapshot.json");
    let snapshot = repo
        .image_metadata(&file)
        .await?
        .ok_or_else(|| TufError::mismatch("timestamp", format!("it names {file}, which the server does not have")))?;
    set.update_snapshot(&snapshot)?;

    if !load_published(repo, &mut set, "targets", "root").await? {
        return Ok(None);
    }
    if role != "targets" {
        let delegations = set.targets().and_then(|t| t.delegations.as_ref());
        if !delegations.is_some_and(|d| d.roles.iter().any(|r| r.name == role)) {
            return Err(TufError::mismatch("targets", format!("it does not delegate to {role}")).into());
        }
        if !load_published(repo, &mut set, role, "targets").await? {
            return Ok(None);
        }
    }
    Ok(set.targets_role(role).cloned())
}

/// Loads targets role `role` (delegated by `parent`) into `set` at the version the trusted
/// snapshot lists; `false` when it lists none.
async fn load_published(repo: &DeviceClient, set: &mut TrustedSet, role: &str, parent: &str) -> anyhow::Result<bool> {
    let Ok(meta) = set.snapshot_meta(role) else { return Ok(false) };
    let file = format!("{}.{role}.json", meta.version);
    let bytes = repo
        .image_metadata(&file)
        .await?
        .ok_or_else(|| TufError::mismatch("snapshot", format!("it lists {file}, which the server does not have")))?;
    set.update_published_targets(&bytes, role, parent)?;
    Ok(true)
}
