//! Where the passphrases of sealed keys come from: `--passphrase-env VAR`, `--passphrase-file
//! FILE`, or a prompt on the terminal with echo off. Passphrases are wiped from memory when
//! dropped.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use ferry_tuf::sealed::{PassphraseSource, SecretBytes};

use crate::exit::usage;

/// The passphrase flags of every command that seals or opens keys.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PassphraseArgs {
    /// Take the passphrase from this environment variable. Repeat for keys with different
    /// passphrases: each key opens with the first one that fits.
    #[arg(long = "passphrase-env", value_name = "VAR")]
    passphrase_env: Vec<String>,
    /// Take the passphrase from this file (one trailing newline is ignored). Repeatable like
    /// --passphrase-env.
    #[arg(long = "passphrase-file", value_name = "FILE")]
    passphrase_file: Vec<PathBuf>,
}

impl PassphraseArgs {
    fn sources(&self) -> Vec<PassphraseSource> {
        let env = self.passphrase_env.iter().cloned().map(PassphraseSource::Env);
        env.chain(self.passphrase_file.iter().cloned().map(PassphraseSource::File)).collect()
    }

    /// The passphrases given by flags; empty when there are none (then prompt).
    pub fn given(&self) -> anyhow::Result<Vec<SecretBytes>> {
        self.sources().iter().map(|s| Ok(SecretBytes::new(s.read()?))).collect()
    }

    /// The passphrase for a new key: from the one flag given, or typed twice on the terminal.
    pub fn for_new_key(&self, key_file: &Path) -> anyhow::Result<SecretBytes> {
        let mut given = self.given()?;
        match given.len() {
            0 => {}
            1 => return Ok(given.remove(0)),
            _ => return Err(usage("a new key has one passphrase: give --passphrase-env or --passphrase-file once")),
        }
        require_terminal()?;
        let first = prompt(&format!("passphrase for the new key {}: ", key_file.display()))?;
        let second = prompt("the same passphrase again: ")?;
        if first != second {
            return Err(usage("the two passphrases differ; nothing was written, run the command again"));
        }
        Ok(first)
    }
}

/// Asks for the passphrase of `key_file` on the terminal.
pub fn prompt_for(key_file: &Path) -> anyhow::Result<SecretBytes> {
    require_terminal()?;
    prompt(&format!("passphrase for {}: ", key_file.display()))
}

/// Prompting needs a person at a terminal; a script must say where the passphrase is.
fn require_terminal() -> anyhow::Result<()> {
    if std::io::stdin().is_terminal() {
        return Ok(());
    }
    Err(usage(
        "a passphrase is needed and standard input is not a terminal to ask on; pass \
         --passphrase-env VAR (a variable holding it) or --passphrase-file FILE",
    ))
}

fn prompt(text: &str) -> anyhow::Result<SecretBytes> {
    let typed = rpassword::prompt_password(text)
        .map_err(|e| usage(format!("cannot read a passphrase from the terminal: {e}; use --passphrase-env")))?;
    Ok(SecretBytes::new(typed.into_bytes()))
}
