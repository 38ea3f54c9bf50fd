//! `ferry root create` and `ferry root rotate`: unsigned root metadata for the image repository,
//! built from public key files and the server's online keys, ready for `ferry metadata sign`.

use std::path::{Path, PathBuf};

use ferry_tuf::metadata::sign;
use ferry_tuf::{PublicKey, Root, Verifiable};
use serde::Serialize;
use serde_json::Value;

use crate::atomic::{write_file, Access, Existing};
use crate::context::Context;
use crate::exit::usage;
use crate::key::read_public_keys;
use crate::metadata::read;
use crate::output::{print_table, say};
use crate::time::expires_in_days;
use crate::values::expires_days;

/// Builds root metadata.
#[derive(Debug, clap::Args)]
pub struct RootArgs {
    #[command(subcommand)]
    command: RootCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RootCommand {
    /// Writes the first root (version 1), unsigned: root and targets keys from public key
    /// files, snapshot and timestamp keys from the server's online keys.
    Create(CreateArgs),
    /// Writes the next root version, unsigned, changing only what is given. It must be signed
    /// by the current root's threshold of root keys and by the new one's.
    Rotate(RotateArgs),
}

/// `ferry root create`.
#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Where to write the unsigned root.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// A root key's public key file (repeat for several).
    #[arg(long = "root-key", value_name = "PUB", required = true)]
    root_keys: Vec<PathBuf>,
    /// Root signatures needed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    root_threshold: u32,
    /// A targets key's public key file (repeat for several).
    #[arg(long = "targets-key", value_name = "PUB", required = true)]
    targets_keys: Vec<PathBuf>,
    /// Targets signatures needed.
    #[arg(long, value_name = "N", default_value_t = 1)]
    targets_threshold: u32,
    /// The server's online keys, as `ferry trust online-keys --out FILE` writes them.
    #[arg(long, value_name = "FILE")]
    online_keys: PathBuf,
    /// Days until the root expires.
    #[arg(long, value_name = "DAYS", default_value = "365", value_parser = expires_days)]
    expires_days: u32,
}

/// `ferry root rotate`.
#[derive(Debug, clap::Args)]
struct RotateArgs {
    /// The current root metadata.
    #[arg(long, value_name = "CURRENT_ROOT")]
    from: PathBuf,
    /// Where to write the next version, unsigned.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace the root keys with these public key files (repeat for several).
    #[arg(long = "root-key", value_name = "PUB")]
    root_keys: Vec<PathBuf>,
    /// Root signatures needed (default: unchanged).
    #[arg(long, value_name = "N")]
    root_threshold: Option<u32>,
    /// Replace the targets keys with these public key files (repeat for several).
    #[arg(long = "targets-key", value_name = "PUB")]
    targets_keys: Vec<PathBuf>,
    /// Targets signatures needed (default: unchanged).
    #[arg(long, value_name = "N")]
    targets_threshold: Option<u32>,
    /// Take the snapshot and timestamp keys from this `ferry trust online-keys` file.
    #[arg(long, value_name = "FILE")]
    online_keys: Option<PathBuf>,
    /// Days from now until the new root expires.
    #[arg(long, value_name = "DAYS", default_value = "365", value_parser = expires_days)]
    expires_days: u32,
}

impl RootArgs {
    /// Runs the subcommand.
    pub fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let (root, out, signers) = match self.command {
            RootCommand::Create(args) => (args.root()?, args.out, None),
            RootCommand::Rotate(args) => {
                let (current, next) = args.roots()?;
                (next, args.out, Some(current))
            }
        };
        root.check()?;
        write_file(&out, &sign(&root, &[])?, Access::Public, Existing::Replace)?;
        let report = Report::new(&out, &root, signers.as_ref());
        ctx.out.show(&report, print)
    }
}

impl CreateArgs {
    fn root(&self) -> anyhow::Result<Root> {
        let root_keys = read_public_keys(&self.root_keys)?;
        let targets_keys = read_public_keys(&self.targets_keys)?;
        check_threshold("--root-threshold", self.root_threshold, root_keys.len())?;
        check_threshold("--targets-threshold", self.targets_threshold, targets_keys.len())?;
        let (snapshot, timestamp) = read_online_keys(&self.online_keys)?;
        Ok(Root::new(
            1,
            expires_in_days(self.expires_days),
            &[
                ("root", root_keys, self.root_threshold),
                ("targets", targets_keys, self.targets_threshold),
                ("snapshot", vec![snapshot], 1),
                ("timestamp", vec![timestamp], 1),
            ],
        ))
    }
}

impl RotateArgs {
    /// The current root and the next.
    fn roots(&self) -> anyhow::Result<(Root, Root)> {
        if same_file(&self.from, &self.out) {
            return Err(usage("--out must differ from --from: the current root stays as it is"));
        }
        let current = Verifiable::<Root>::parse(&self.from.display().to_string(), &read(&self.from)?)?.signed;
        let mut next = current.clone();
        next.version += 1;
        next.expires = expires_in_days(self.expires_days);
        for (role, flag, paths, threshold) in [
            ("root", "--root-threshold", &self.root_keys, self.root_threshold),
            ("targets", "--targets-threshold", &self.targets_keys, self.targets_threshold),
        ] {
            let keys = if paths.is_empty() { keys_of(&current, role)? } else { read_public_keys(paths)? };
            let threshold = threshold.unwrap_or(current.roles[role].threshold);
            check_threshold(flag, threshold, keys.len())?;
            next.set_role(role, &keys, threshold);
        }
        if let Some(path) = &self.online_keys {
            let (snapshot, timestamp) = read_online_keys(path)?;
            next.set_role("snapshot", &[snapshot], 1);
            next.set_role("timestamp", &[timestamp], 1);
        }
        Ok((current, next))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// A role's keys as `root` lists them.
fn keys_of(root: &Root, role: &str) -> anyhow::Result<Vec<PublicKey>> {
    let listed = root.roles.get(role).ok_or_else(|| usage(format!("the current root lists no {role} role")))?;
    listed
        .keyids
        .iter()
        .map(|id| root.keys.get(id).cloned().ok_or_else(|| usage(format!("the current root lacks key {id}"))))
        .collect()
}

fn check_threshold(flag: &str, threshold: u32, keys: usize) -> anyhow::Result<()> {
    if threshold == 0 || threshold as usize > keys {
        return Err(usage(format!("{flag} is {threshold} with {keys} key(s); it must be from 1 to {keys}")));
    }
    Ok(())
}

/// The snapshot and timestamp keys of a `ferry trust online-keys --out FILE` file.
fn read_online_keys(path: &Path) -> anyhow::Result<(PublicKey, PublicKey)> {
    let not_online_keys = |detail: String| {
        usage(format!(
            "{} is not the server's online keys ({detail}); write it with `ferry trust online-keys --out FILE`",
            path.display()
        ))
    };
    let value: Value = serde_json::from_slice(&read(path)?).map_err(|e| not_online_keys(e.to_string()))?;
    let key = |role: &str| -> anyhow::Result<PublicKey> {
        let entry = value.get(role).cloned().ok_or_else(|| not_online_keys(format!("no {role} key")))?;
        let key: PublicKey = serde_json::from_value(entry).map_err(|e| not_online_keys(format!("{role}: {e}")))?;
        key.check().map_err(|e| not_online_keys(e.to_string()))?;
        Ok(key)
    };
    Ok((key("snapshot")?, key("timestamp")?))
}

/// What `ferry root create` and `ferry root rotate` print.
#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    version: u64,
    expires: String,
    roles: Vec<RoleReport>,
    /// The root keys that must sign it: this version's, and for a rotation also the current
    /// version's.
    must_sign: Vec<Signers>,
}

#[derive(Debug, Serialize)]
struct RoleReport {
    role: &'static str,
    keyids: Vec<String>,
    threshold: u32,
}

#[derive(Debug, Serialize)]
struct Signers {
    root_version: u64,
    keyids: Vec<String>,
    threshold: u32,
}

impl Report {
    fn new(file: &Path, root: &Root, current: Option<&Root>) -> Self {
        let roles = ["root", "targets", "snapshot", "timestamp"]
            .map(|role| {
                let listed = &root.roles[role];
                RoleReport { role, keyids: listed.keyids.clone(), threshold: listed.threshold }
            })
            .into();
        let must_sign = current
            .into_iter()
            .chain([root])
            .map(|r| {
                let listed = &r.roles["root"];
                Signers { root_version: r.version, keyids: listed.keyids.clone(), threshold: listed.threshold }
            })
            .collect();
        Self { file: file.to_owned(), version: root.version, expires: root.expires.clone(), roles, must_sign }
    }
}

fn print(r: &Report) {
    say!("wrote unsigned root version {} to {} (expires {})", r.version, r.file.display(), r.expires);
    print_table(
        &["role", "threshold", "keys"],
        r.roles.iter().map(|role| vec![role.role.to_owned(), role.threshold.to_string(), role.keyids.join("\n")]),
    );
    for need in &r.must_sign {
        say!("needs {} signature(s) by root keys of version {}", need.threshold, need.root_version);
    }
    say!(
        "sign it with `ferry metadata sign {} --key ROOT_KEY`, then `ferry trust push {}`",
        r.file.display(),
        r.file.display()
    );
}
