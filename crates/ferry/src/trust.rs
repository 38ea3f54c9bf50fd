//! `ferry trust` and `ferry release sign`: the online half of signing. The server's online keys
//! go to the offline machine (for root metadata), drafts of the next targets metadata go there
//! to be signed, and signed root and targets metadata come back to be pushed.

use std::path::{Path, PathBuf};

use ferry_client::AdminClient;
use ferry_core::{ProductName, ReleaseId};
use ferry_tuf::PublicKey;
use serde::Serialize;
use serde_json::Value;

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
                    r["root_version"],
                    serde_json::from_value::<PublicKey>(r["director"].clone()).map(|k| k.key_id()).unwrap_or_default()
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

fn print_online_keys(keys: &Value, out: Option<&Path>) {
    let mut rows = Vec::new();
    key_rows("", keys, &mut rows);
    print_table(&["role", "scheme", "keyid"], rows);
    if let Some(out) = out {
        say!("wrote {}: give it to `ferry root create --online-keys`", out.display());
    }
}

/// One row per key, by role; nested groups of keys (the server's `next` keys, waiting to take
/// over) are prefixed with the group's name.
fn key_rows(prefix: &str, keys: &Value, rows: &mut Vec<Vec<String>>) {
    for (role, value) in keys.as_object().into_iter().flatten() {
        match serde_json::from_value::<PublicKey>(value.clone()) {
            Ok(key) => rows.push(vec![format!("{prefix}{role}"), key.scheme.clone(), key.key_id()]),
            Err(_) => key_rows(&format!("{prefix}{role} "), value, rows),
        }
    }
}

fn print_status(status: &Value) {
    print_fields(&[("signed releases required", yes_no(status["require_signed_releases"].as_bool().unwrap_or(false)))]);
    let roles =
        status["roles"].as_object().into_iter().flatten().map(|(role, r)| {
            vec![role.clone(), r["version"].to_string(), r["expires"].as_str().unwrap_or("-").to_owned()]
        });
    print_table(&["role", "version", "expires"], roles);
    let unsigned = status["unsigned_releases"].as_array().cloned().unwrap_or_default();
    if unsigned.is_empty() {
        say!("every release is signed");
        return;
    }
    say!("releases awaiting a signature:");
    print_table(
        &["id", "product", "version"],
        unsigned.iter().map(|r| {
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            vec![r["id"].to_string(), text(&r["product"]), text(&r["version"])]
        }),
    );
}

impl DraftArgs {
    async fn run(self, ctx: &Context, client: &AdminClient) -> anyhow::Result<()> {
        let releases = (self.no_releases || !self.releases.is_empty()).then_some(self.releases.as_slice());
        // `None` asks for every release not yet signed.
        let draft = client.draft_targets(&self.role, releases, self.expires_days).await?;
        let mut bytes = serde_json::to_vec_pretty(&draft)?;
        bytes.push(b'\n');
        write_file(&self.out, &bytes, Access::Public, Existing::Replace)?;
        let signed = &draft["signed"];
        let report = serde_json::json!({
            "file": self.out,
            "role": self.role,
            "version": signed["version"],
            "expires": signed["expires"],
            "targets": signed["targets"].as_object().map_or(0, |t| t.len()),
        });
        ctx.out.show(&report, |r| {
            say!(
                "wrote unsigned {} version {} ({} target(s), expires {}) to {}",
                self.role,
                r["version"],
                r["targets"],
                r["expires"].as_str().unwrap_or("-"),
                self.out.display()
            );
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
async fn push(client: &AdminClient, file: &Path, bytes: Vec<u8>, role: Option<&str>) -> anyhow::Result<Value> {
    let kind = Kind::of(file, &bytes)?;
    let role = push_role(file, kind, role)?;
    let unsigned = serde_json::from_slice::<Value>(&bytes)?["signatures"].as_array().is_none_or(Vec::is_empty);
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

fn print_published(p: &Value) {
    let role = p["role"].as_str().unwrap_or("?");
    match (p["snapshot_version"].as_u64(), p["timestamp_version"].as_u64()) {
        (Some(snapshot), Some(timestamp)) => say!(
            "published {role} version {} (the server signed snapshot version {snapshot} and timestamp version \
             {timestamp})",
            p["version"]
        ),
        _ => say!("published {role} version {}", p["version"]),
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
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// What `ferry release sign` prints.
#[derive(Debug, Serialize)]
struct ReleaseSigned {
    role: String,
    version: u64,
    releases: Vec<ReleaseId>,
    signed_by: Vec<String>,
    published: Value,
}

impl ReleaseSignArgs {
    /// Runs `ferry release sign`.
    pub async fn run(self, ctx: &Context, client: &AdminClient) -> anyhow::Result<()> {
        // Keys first: a wrong passphrase costs no round trip and leaves nothing half done.
        let keys = open_keys(&self.keys, &self.passphrase)?;
        let drafted = client.draft_targets(&self.role, Some(&self.ids), self.expires_days).await?;
        let what = PathBuf::from(format!("the drafted {} metadata", self.role));
        let signed = metadata::sign(&what, &serde_json::to_vec(&drafted)?, &keys)?;
        let published = push(client, &what, signed.bytes, Some(&self.role)).await?;
        let report = ReleaseSigned {
            role: self.role.clone(),
            version: signed.version,
            releases: self.ids.clone(),
            signed_by: keys.iter().map(|k| k.key_id().to_owned()).collect(),
            published,
        };
        ctx.out.show(&report, |r| {
            let ids = r.releases.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            say!("signed release(s) {ids} into {} version {} with {}", r.role, r.version, r.signed_by.join(", "));
            print_published(&r.published);
        })
    }
}
