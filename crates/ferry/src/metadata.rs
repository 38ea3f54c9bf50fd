//! `ferry metadata sign` and `ferry metadata verify`: signing TUF metadata files with sealed
//! keys, and checking signature thresholds the way the server and devices will, before a file
//! is carried back from the offline machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_tuf::keys::verify_threshold;
use ferry_tuf::metadata::add_signatures;
use ferry_tuf::time::parse_expires;
use ferry_tuf::{PublicKey, Role, Root, Signature, SigningKey, Snapshot, Targets, Timestamp, TufError, Verifiable};
use serde::Serialize;
use serde_json::Value;

use crate::atomic::{write_file, Access, Existing};
use crate::context::Context;
use crate::exit::{local_file, usage, LocalConflict, MetadataRefused};
use crate::key::open_keys;
use crate::output::say;
use crate::passphrase::PassphraseArgs;

/// Signs and checks metadata files.
#[derive(Debug, clap::Args)]
pub struct MetadataArgs {
    #[command(subcommand)]
    command: MetadataCommand,
}

#[derive(Debug, clap::Subcommand)]
enum MetadataCommand {
    /// Adds signatures to a metadata file (root, targets, snapshot or timestamp), in place
    /// unless --out is given.
    Sign(SignArgs),
    /// Checks a metadata file's signatures against the keys and threshold that trust it, and
    /// its expiry. Exits 11 when they fall short.
    Verify(VerifyArgs),
}

/// `ferry metadata sign`.
#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The metadata file.
    file: PathBuf,
    /// A sealed private key to sign with (repeat for several).
    #[arg(long = "key", value_name = "KEY_FILE", required = true)]
    keys: Vec<PathBuf>,
    /// Write the signed file here instead of replacing FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    passphrase: PassphraseArgs,
}

/// `ferry metadata verify`.
#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The metadata file.
    file: PathBuf,
    /// The root metadata that trusts FILE. For a new root version, the previous version: both
    /// its threshold and the new root's own are checked.
    #[arg(long, value_name = "ROOT_FILE")]
    root: Option<PathBuf>,
    /// The role FILE is for: a delegated role's name for delegated targets (default: the
    /// file's type, e.g. targets).
    #[arg(long)]
    role: Option<String>,
    /// For a delegated role: the targets metadata that delegates to it.
    #[arg(long, value_name = "TARGETS_FILE")]
    targets: Option<PathBuf>,
}

/// The four top-level role types; delegated targets metadata is of type targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `root`.
    Root,
    /// `targets`, top-level or delegated.
    Targets,
    /// `snapshot`.
    Snapshot,
    /// `timestamp`.
    Timestamp,
}

impl Kind {
    /// The type of a metadata file, from its `signed._type`.
    pub fn of(file: &Path, bytes: &[u8]) -> anyhow::Result<Self> {
        let what = file.display().to_string();
        let value: Value = serde_json::from_slice(bytes).map_err(|e| TufError::malformed(&what, e))?;
        match value.pointer("/signed/_type").and_then(Value::as_str) {
            Some(Root::TYPE) => Ok(Self::Root),
            Some(Targets::TYPE) => Ok(Self::Targets),
            Some(Snapshot::TYPE) => Ok(Self::Snapshot),
            Some(Timestamp::TYPE) => Ok(Self::Timestamp),
            other => Err(TufError::malformed(
                what,
                format!("signed._type is {other:?}; expected root, targets, snapshot or timestamp"),
            )
            .into()),
        }
    }

    /// The `_type` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Root => Root::TYPE,
            Self::Targets => Targets::TYPE,
            Self::Snapshot => Snapshot::TYPE,
            Self::Timestamp => Timestamp::TYPE,
        }
    }
}

/// Reads a metadata file.
pub fn read(file: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(file).map_err(local_file("read", file))
}

/// Metadata signed by more keys.
pub struct Signed {
    /// The file's new bytes.
    pub bytes: Vec<u8>,
    /// Its type.
    pub kind: Kind,
    /// Its version.
    pub version: u64,
}

/// Adds signatures by `keys` to the metadata in `bytes` (read from `file`). Refuses a key that
/// has already signed it, so that a slip never silently replaces a signature.
pub fn sign(file: &Path, bytes: &[u8], keys: &[SigningKey]) -> anyhow::Result<Signed> {
    let kind = Kind::of(file, bytes)?;
    let keys: Vec<&SigningKey> = keys.iter().collect();
    let (bytes, version) = match kind {
        Kind::Root => add::<Root>(file, bytes, &keys)?,
        Kind::Targets => add::<Targets>(file, bytes, &keys)?,
        Kind::Snapshot => add::<Snapshot>(file, bytes, &keys)?,
        Kind::Timestamp => add::<Timestamp>(file, bytes, &keys)?,
    };
    Ok(Signed { bytes, kind, version })
}

fn add<T: Role>(file: &Path, bytes: &[u8], keys: &[&SigningKey]) -> anyhow::Result<(Vec<u8>, u64)> {
    let parsed = Verifiable::<T>::parse(&file.display().to_string(), bytes)?;
    if let Some(key) = keys.iter().find(|k| parsed.signatures.iter().any(|s| s.keyid == k.key_id())) {
        return Err(LocalConflict(format!(
            "key {} has already signed {}; nothing was written",
            key.key_id(),
            file.display()
        ))
        .into());
    }
    Ok((add_signatures::<T>(bytes, keys)?, parsed.signed.version()))
}

/// What `ferry metadata sign` prints.
#[derive(Debug, Serialize)]
struct SignReport {
    file: PathBuf,
    #[serde(rename = "type")]
    kind: &'static str,
    version: u64,
    signed_by: Vec<Signer>,
    signatures: usize,
}

#[derive(Debug, Serialize)]
struct Signer {
    keyid: String,
    key_file: PathBuf,
    /// For root metadata: whether the key is one of this version's root keys (otherwise it
    /// counts only toward the previous root's threshold).
    #[serde(skip_serializing_if = "Option::is_none")]
    root_key_of_this_version: Option<bool>,
}

impl MetadataArgs {
    /// Runs the subcommand.
    pub fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            MetadataCommand::Sign(args) => args.run(ctx),
            MetadataCommand::Verify(args) => args.run(ctx),
        }
    }
}

impl SignArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let bytes = read(&self.file)?;
        // Fails on a file that is not metadata before asking for any passphrase.
        Kind::of(&self.file, &bytes)?;
        let keys = open_keys(&self.keys, &self.passphrase)?;
        let signed = sign(&self.file, &bytes, &keys)?;
        let out = self.out.as_ref().unwrap_or(&self.file);
        write_file(out, &signed.bytes, Access::Public, Existing::Replace)?;

        let root_keys = match signed.kind {
            Kind::Root => Some(Verifiable::<Root>::parse("root", &signed.bytes)?.signed.roles["root"].keyids.clone()),
            _ => None,
        };
        let signatures = envelope_signatures(&signed.bytes)?.len();
        let report = SignReport {
            file: out.clone(),
            kind: signed.kind.name(),
            version: signed.version,
            signed_by: keys
                .iter()
                .zip(&self.keys)
                .map(|(key, path)| Signer {
                    keyid: key.key_id().to_owned(),
                    key_file: path.clone(),
                    root_key_of_this_version: root_keys.as_ref().map(|ids| ids.iter().any(|id| id == key.key_id())),
                })
                .collect(),
            signatures,
        };
        ctx.out.show(&report, |r| {
            say!("signed {} ({} version {}):", r.file.display(), r.kind, r.version);
            for s in &r.signed_by {
                let note = match s.root_key_of_this_version {
                    Some(false) => " (not a root key of this version: counts toward the previous root only)",
                    _ => "",
                };
                say!("  {} ({}){note}", s.keyid, s.key_file.display());
            }
            say!("it now has {} signature(s)", r.signatures);
        })
    }
}

fn envelope_signatures(bytes: &[u8]) -> anyhow::Result<Vec<Signature>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| TufError::malformed("metadata", e))?;
    let signatures = value.get("signatures").cloned().unwrap_or(Value::Array(Vec::new()));
    Ok(serde_json::from_value(signatures).map_err(|e| TufError::malformed("signatures", e))?)
}

/// One threshold check of `ferry metadata verify`.
#[derive(Debug, Serialize)]
struct Check {
    role: String,
    /// Whose keys count: e.g. "root version 1" or "targets (delegating)".
    keys_of: String,
    threshold: u32,
    /// Distinct authorised keys with a valid signature.
    valid: usize,
    signed_by: Vec<String>,
    met: bool,
}

impl Check {
    fn new<T: Role>(
        file: &Verifiable<T>,
        role: &str,
        keys_of: String,
        keys: &BTreeMap<String, PublicKey>,
        authorised: &[String],
        threshold: u32,
    ) -> Self {
        let mut signed_by: Vec<String> = Vec::new();
        for sig in &file.signatures {
            let valid = authorised.contains(&sig.keyid)
                && keys.get(&sig.keyid).is_some_and(|k| k.verify(&file.canonical, &sig.sig).is_ok());
            if valid && !signed_by.contains(&sig.keyid) {
                signed_by.push(sig.keyid.clone());
            }
        }
        // The verdict is the library's, the same code the server and devices run.
        let met =
            verify_threshold(role, &keys_of, &file.canonical, &file.signatures, keys, authorised, threshold).is_ok();
        Self { role: role.to_owned(), keys_of, threshold, valid: signed_by.len(), signed_by, met }
    }

    fn with_root<T: Role>(file: &Verifiable<T>, role: &str, keys_of: String, root: &Root) -> anyhow::Result<Self> {
        let listed =
            root.roles.get(role).ok_or_else(|| TufError::malformed("root", format!("it lists no {role} role")))?;
        Ok(Self::new(file, role, keys_of, &root.keys, &listed.keyids, listed.threshold))
    }
}

/// What `ferry metadata verify` prints.
#[derive(Debug, Serialize)]
struct VerifyReport {
    file: PathBuf,
    #[serde(rename = "type")]
    kind: &'static str,
    role: String,
    version: u64,
    expires: String,
    expired: bool,
    checks: Vec<Check>,
    problems: Vec<String>,
    ok: bool,
}

impl VerifyArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let bytes = read(&self.file)?;
        let kind = Kind::of(&self.file, &bytes)?;
        let role = self.role.clone().unwrap_or_else(|| kind.name().to_owned());
        if kind != Kind::Targets && role != kind.name() {
            return Err(usage(format!(
                "{} is {} metadata; --role applies to targets only",
                self.file.display(),
                kind.name()
            )));
        }
        let mut report = match kind {
            Kind::Root => self.root(&bytes)?,
            Kind::Targets if role == "targets" => self.top_level::<Targets>(&bytes, "targets")?,
            Kind::Targets => self.delegated(&bytes, &role)?,
            Kind::Snapshot => self.top_level::<Snapshot>(&bytes, "snapshot")?,
            Kind::Timestamp => self.top_level::<Timestamp>(&bytes, "timestamp")?,
        };
        if report.expired {
            report.problems.push(format!("it expired at {}; set a later expiry and sign it again", report.expires));
        }
        for check in report.checks.iter().filter(|c| !c.met) {
            report.problems.push(format!(
                "{} needs {} signature(s) from the {} keys of {}, has {}",
                check.role, check.threshold, check.role, check.keys_of, check.valid
            ));
        }
        report.ok = report.problems.is_empty();
        ctx.out.show(&report, print_verify)?;
        if !report.ok {
            return Err(MetadataRefused(format!(
                "{} does not verify: {}",
                self.file.display(),
                report.problems.join("; ")
            ))
            .into());
        }
        Ok(())
    }

    fn report<T: Role>(&self, file: &Verifiable<T>, role: &str, checks: Vec<Check>) -> VerifyReport {
        let expires = file.signed.expires().to_owned();
        let expired = parse_expires(&expires).map_or(true, |at| at <= crate::time::now());
        VerifyReport {
            file: self.file.clone(),
            kind: T::TYPE,
            role: role.to_owned(),
            version: file.signed.version(),
            expires,
            expired,
            checks,
            problems: Vec::new(),
            ok: false,
        }
    }

    fn trusted_root(&self) -> anyhow::Result<Option<Verifiable<Root>>> {
        let Some(path) = &self.root else { return Ok(None) };
        Ok(Some(Verifiable::<Root>::parse(&path.display().to_string(), &read(path)?)?))
    }

    fn root(&self, bytes: &[u8]) -> anyhow::Result<VerifyReport> {
        let new = Verifiable::<Root>::parse(&self.file.display().to_string(), bytes)?;
        let version = new.signed.version;
        let mut checks = Vec::new();
        if let Some(trusted) = self.trusted_root()? {
            let trusted_version = trusted.signed.version;
            if trusted_version + 1 == version {
                checks.push(Check::with_root(
                    &new,
                    "root",
                    format!("root version {trusted_version}"),
                    &trusted.signed,
                )?);
            } else if trusted_version != version {
                return Err(usage(format!(
                    "--root is root version {trusted_version}; root version {version} is checked against version \
                     {} (or against itself)",
                    version.saturating_sub(1)
                )));
            }
        }
        checks.push(Check::with_root(&new, "root", format!("root version {version} (itself)"), &new.signed)?);
        Ok(self.report(&new, "root", checks))
    }

    fn top_level<T: Role>(&self, bytes: &[u8], role: &str) -> anyhow::Result<VerifyReport> {
        let file = Verifiable::<T>::parse(&self.file.display().to_string(), bytes)?;
        let root = self.trusted_root()?.ok_or_else(|| {
            usage(format!("checking {role} metadata needs the root that lists its keys: pass --root ROOT_FILE"))
        })?;
        let keys_of = format!("root version {}", root.signed.version);
        let check = Check::with_root(&file, role, keys_of, &root.signed)?;
        Ok(self.report(&file, role, vec![check]))
    }

    fn delegated(&self, bytes: &[u8], role: &str) -> anyhow::Result<VerifyReport> {
        let file = Verifiable::<Targets>::parse(role, bytes)?;
        let path = self.targets.as_ref().ok_or_else(|| {
            usage(format!("checking the delegated role {role} needs the targets metadata that delegates to it: pass --targets FILE"))
        })?;
        let delegating = Verifiable::<Targets>::parse(&path.display().to_string(), &read(path)?)?;
        let delegations = delegating.signed.delegations.as_ref();
        let delegated = delegations
            .and_then(|d| d.roles.iter().find(|r| r.name == role))
            .ok_or_else(|| MetadataRefused(format!("{} does not delegate to a role named {role:?}", path.display())))?;
        let keys = delegations.map(|d| d.keys.clone()).unwrap_or_default();
        let keys_of = format!("targets version {} (delegating)", delegating.signed.version);
        let check = Check::new(&file, role, keys_of, &keys, &delegated.keyids, delegated.threshold);
        let mut report = self.report(&file, role, vec![check]);
        for target in file.signed.targets.keys().filter(|p| !delegated.is_delegated_path(p)) {
            report.problems.push(format!("target {target:?} is outside the paths delegated to {role}"));
        }
        Ok(report)
    }
}

fn print_verify(r: &VerifyReport) {
    let expired = if r.expired { " (EXPIRED)" } else { "" };
    say!(
        "{}: {} metadata for role {}, version {}, expires {}{expired}",
        r.file.display(),
        r.kind,
        r.role,
        r.version,
        r.expires
    );
    for c in &r.checks {
        let verdict = if c.met { "ok" } else { "NOT MET" };
        say!(
            "  {} signatures by the keys of {}: {} of threshold {}: {verdict}",
            c.role,
            c.keys_of,
            c.valid,
            c.threshold
        );
    }
    if r.ok {
        say!("ok");
    }
}
