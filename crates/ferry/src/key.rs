//! `ferry key`: the publisher's offline keys. A private key exists on disk only sealed with a
//! passphrase (`ferry_tuf::sealed`); its public half sits beside it in `FILE.pub`, the JSON
//! TUF metadata lists keys in, which is what travels to the machine that builds root metadata.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ferry_tuf::sealed::{self, SealError, SealParams, SecretBytes};
use ferry_tuf::{KeyKind, PublicKey, SigningKey};
use serde::Serialize;

use crate::atomic::{write_file, Access, Existing};
use crate::context::Context;
use crate::exit::{exists, local_file, usage};
use crate::output::{print_fields, say};
use crate::passphrase::{prompt_for, PassphraseArgs};

/// Set to `1` to seal keys with trivially cheap argon2id costs. For the test suite only: a key
/// sealed this way is barely protected against passphrase guessing. Deliberately undocumented
/// in `--help` and the README.
const INSECURE_FAST_SEALING_ENV: &str = "FERRY_INSECURE_FAST_KEY_SEALING";

/// Manages offline signing keys.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// Creates a key: FILE holds the private key sealed with a passphrase (mode 0600),
    /// FILE.pub the public key.
    Generate {
        /// Where to write the sealed private key; the public key goes to FILE.pub.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// ed25519 or ecdsa-p256.
        #[arg(long = "type", value_name = "TYPE", default_value = "ed25519", value_parser = key_kind)]
        kind: KeyKind,
        /// Replace FILE and FILE.pub if they exist (the old key is lost).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Shows a key's id and public key, from a public key file or a sealed key (which needs its
    /// passphrase).
    Show {
        /// A FILE.pub, or a sealed key file.
        file: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// What `ferry key generate` and `ferry key show` print.
#[derive(Debug, Serialize)]
struct KeyInfo {
    keyid: String,
    public_key: PublicKey,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    public_key_file: Option<PathBuf>,
}

impl KeyArgs {
    /// Runs the subcommand.
    pub fn run(self, ctx: &Context) -> anyhow::Result<()> {
        match self.command {
            KeyCommand::Generate { out, kind, force, passphrase } => {
                let info = generate(&out, kind, force, &passphrase)?;
                ctx.out.created(&info, &info.keyid, |i| {
                    say!("generated {} key {}", i.public_key.scheme, i.keyid);
                    print_fields(&[
                        ("private key (sealed)", opt_path(&i.private_key_file)),
                        ("public key", opt_path(&i.public_key_file)),
                    ]);
                })
            }
            KeyCommand::Show { file, passphrase } => {
                let bytes = std::fs::read(&file).map_err(local_file("read", &file))?;
                let public_key = if sealed::is_sealed(&bytes) {
                    open_key(&file, &bytes, &passphrase.given()?)?.public().clone()
                } else {
                    parse_public_key(&file, &bytes)?
                };
                let info =
                    KeyInfo { keyid: public_key.key_id(), public_key, private_key_file: None, public_key_file: None };
                ctx.out.show(&info, |i| {
                    print_fields(&[
                        ("keyid", i.keyid.clone()),
                        ("keytype", i.public_key.keytype.clone()),
                        ("scheme", i.public_key.scheme.clone()),
                        ("public", i.public_key.keyval.public.trim_end().to_owned()),
                    ])
                })
            }
        }
    }
}

fn opt_path(path: &Option<PathBuf>) -> String {
    path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}

fn key_kind(text: &str) -> Result<KeyKind, String> {
    KeyKind::parse(text).ok_or_else(|| format!("{text:?} is not a key type; use ed25519 or ecdsa-p256"))
}

/// `FILE.pub`.
pub fn public_file_of(private: &Path) -> PathBuf {
    let mut name = OsString::from(private.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

fn generate(out: &Path, kind: KeyKind, force: bool, passphrase: &PassphraseArgs) -> anyhow::Result<KeyInfo> {
    let public_file = public_file_of(out);
    let existing = if force { Existing::Replace } else { Existing::Keep };
    // Checked before asking for a passphrase; the writes below check again, atomically.
    if existing == Existing::Keep {
        if let Some(taken) = [out, &public_file].into_iter().find(|p| p.exists()) {
            return Err(exists(taken));
        }
    }
    let pass = passphrase.for_new_key(out)?;
    let key = SigningKey::generate(kind).context("cannot generate a key")?;
    let label = format!("ferry {} key {}", key.public().scheme, key.key_id());
    let sealed = sealed::seal(key.pkcs8(), &pass, &label, &seal_params())?;
    let mut public_json = serde_json::to_vec_pretty(key.public())?;
    public_json.push(b'\n');
    write_file(out, &sealed, Access::Private, existing)?;
    write_file(&public_file, &public_json, Access::Public, existing)?;
    Ok(KeyInfo {
        keyid: key.key_id().to_owned(),
        public_key: key.public().clone(),
        private_key_file: Some(out.to_owned()),
        public_key_file: Some(public_file),
    })
}

fn seal_params() -> SealParams {
    if std::env::var_os(INSECURE_FAST_SEALING_ENV).is_some_and(|v| v == "1") {
        SealParams::insecure_fast_for_tests()
    } else {
        SealParams::default()
    }
}

/// Reads a public key file (`FILE.pub`, as `ferry key generate` writes it).
pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let bytes = std::fs::read(path).map_err(local_file("read", path))?;
    parse_public_key(path, &bytes)
}

fn parse_public_key(path: &Path, bytes: &[u8]) -> anyhow::Result<PublicKey> {
    if sealed::is_sealed(bytes) {
        return Err(usage(format!(
            "{} is a sealed private key; give its public key, {}",
            path.display(),
            public_file_of(path).display()
        )));
    }
    let key: PublicKey = serde_json::from_slice(bytes).map_err(|e| {
        usage(format!(
            "{} is not a public key file ({e}); use the FILE.pub that `ferry key generate` wrote",
            path.display()
        ))
    })?;
    key.check().map_err(|e| usage(format!("{}: {e}", path.display())))?;
    Ok(key)
}

/// Reads public keys, refusing the same key twice.
pub fn read_public_keys(paths: &[PathBuf]) -> anyhow::Result<Vec<PublicKey>> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for path in paths {
        let key = read_public_key(path)?;
        if keys.contains(&key) {
            return Err(usage(format!("{} names key {} a second time", path.display(), key.key_id())));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Opens sealed private keys with the passphrases the flags give (each key with the first
/// that fits), or prompts for each on the terminal. Refuses the same key twice.
pub fn open_keys(paths: &[PathBuf], passphrase: &PassphraseArgs) -> anyhow::Result<Vec<SigningKey>> {
    let given = passphrase.given()?;
    let mut keys: Vec<SigningKey> = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).map_err(local_file("read", path))?;
        let key = open_key(path, &bytes, &given)?;
        if keys.iter().any(|k| k.key_id() == key.key_id()) {
            return Err(usage(format!("{} is key {} a second time", path.display(), key.key_id())));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn open_key(path: &Path, bytes: &[u8], given: &[SecretBytes]) -> anyhow::Result<SigningKey> {
    if !sealed::is_sealed(bytes) && serde_json::from_slice::<PublicKey>(bytes).is_ok() {
        return Err(usage(format!(
            "{} is a public key; signing needs the sealed private key (the file without .pub)",
            path.display()
        )));
    }
    let opened = if given.is_empty() {
        sealed::open(bytes, &prompt_for(path)?)
    } else {
        let mut result = Err(SealError::WrongPassphraseOrTampered);
        for pass in given {
            result = sealed::open(bytes, pass);
            if !matches!(result, Err(SealError::WrongPassphraseOrTampered)) {
                break;
            }
        }
        result
    };
    let opened = opened.with_context(|| format!("cannot open the sealed key {}", path.display()))?;
    SigningKey::from_pkcs8(opened.secret.as_bytes())
        .map_err(|e| anyhow::anyhow!("the sealed key {} holds no usable private key: {e}", path.display()))
}
