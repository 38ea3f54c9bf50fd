//! `ferry targets delegate`: lets a product team sign its own releases. The top-level targets
//! metadata names a delegated role (a product's name), its keys, threshold and the target paths
//! it may sign for; the team then signs that role's metadata with its own keys.

use std::path::PathBuf;

use ferry_core::ProductName;
use ferry_tuf::metadata::sign;
use ferry_tuf::{DelegatedRole, Delegations, Targets, Verifiable};
use serde::Serialize;

use crate::atomic::{write_file, Access, Existing};
use crate::context::Context;
use crate::exit::usage;
use crate::key::read_public_keys;
use crate::metadata::read;
use crate::output::say;

/// Edits targets metadata.
#[derive(Debug, clap::Args)]
pub struct TargetsArgs {
    #[command(subcommand)]
    command: TargetsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TargetsCommand {
    /// Adds (or replaces) a delegated role in a targets file, e.g. one drafted with `ferry
    /// trust draft`. Its signatures are removed: sign it again afterwards.
    Delegate(DelegateArgs),
}

/// `ferry targets delegate`.
#[derive(Debug, clap::Args)]
struct DelegateArgs {
    /// The targets metadata file, edited in place.
    file: PathBuf,
    /// The delegated role: a product's name.
    #[arg(long)]
    role: ProductName,
    /// A public key file of the role (repeat for several).
    #[arg(long = "key", value_name = "PUB", required = true)]
    keys: Vec<PathBuf>,
    /// Signatures the role's metadata needs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threshold: u32,
    /// A target path pattern the role may sign for, `*` matching within one path part (repeat
    /// for several; default ROLE/*/*, every release of the product).
    #[arg(long = "path", value_name = "PATTERN")]
    paths: Vec<String>,
    /// Stop searching other roles for a path this role matches.
    #[arg(long)]
    terminating: bool,
}

/// What `ferry targets delegate` prints.
#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    role: String,
    keyids: Vec<String>,
    threshold: u32,
    paths: Vec<String>,
    terminating: bool,
    replaced: bool,
    removed_signatures: usize,
}

impl TargetsArgs {
    /// Runs the subcommand.
    pub fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            TargetsCommand::Delegate(args) => args.run(ctx),
        }
    }
}

impl DelegateArgs {
    fn run(self, ctx: &Context) -> anyhow::Result<()> {
        let role = self.role.as_str();
        if ["root", "targets", "snapshot", "timestamp"].contains(&role) {
            return Err(usage(format!("{role:?} is a top-level role; name the delegated role after its product")));
        }
        let keys = read_public_keys(&self.keys)?;
        if self.threshold == 0 || self.threshold as usize > keys.len() {
            return Err(usage(format!(
                "--threshold is {} with {} key(s); it must be from 1 to {}",
                self.threshold,
                keys.len(),
                keys.len()
            )));
        }
        let paths = if self.paths.is_empty() { vec![format!("{role}/*/*")] } else { self.paths.clone() };
        if let Some(bad) = paths.iter().find(|p| p.is_empty() || p.starts_with('/')) {
            return Err(usage(format!("--path {bad:?} is not a target path pattern such as {role}/*/*")));
        }

        let parsed = Verifiable::<Targets>::parse(&self.file.display().to_string(), &read(&self.file)?)?;
        let mut targets = parsed.signed;
        let delegations = targets.delegations.get_or_insert_with(|| Delegations {
            keys: Default::default(),
            roles: Vec::new(),
            unrecognized: Default::default(),
        });
        let delegated = DelegatedRole {
            name: role.to_owned(),
            keyids: keys.iter().map(|k| k.key_id()).collect(),
            threshold: self.threshold,
            terminating: self.terminating,
            paths: Some(paths),
            path_hash_prefixes: None,
        };
        let replaced = match delegations.roles.iter_mut().find(|r| r.name == role) {
            Some(existing) => {
                *existing = delegated.clone();
                true
            }
            None => {
                delegations.roles.push(delegated.clone());
                false
            }
        };
        for key in &keys {
            delegations.keys.insert(key.key_id(), key.clone());
        }
        let used: Vec<&String> = delegations.roles.iter().flat_map(|r| &r.keyids).collect();
        delegations.keys.retain(|id, _| used.contains(&id));

        write_file(&self.file, &sign(&targets, &[])?, Access::Public, Existing::Replace)?;
        let report = Report {
            file: self.file.clone(),
            role: role.to_owned(),
            keyids: delegated.keyids,
            threshold: delegated.threshold,
            paths: delegated.paths.unwrap_or_default(),
            terminating: delegated.terminating,
            replaced,
            removed_signatures: parsed.signatures.len(),
        };
        ctx.out.show(&report, |r| {
            let verb = if r.replaced { "replaced the delegation to" } else { "delegated" };
            say!(
                "{verb} {} in {}: paths {}, {} of {} key(s)",
                r.role,
                r.file.display(),
                r.paths.join(" "),
                r.threshold,
                r.keyids.len()
            );
            if r.removed_signatures > 0 {
                say!("removed its {} signature(s): the content changed, sign it again", r.removed_signatures);
            }
        })
    }
}
