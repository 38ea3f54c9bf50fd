//! Passphrase-sealed private keys: key material encrypted at rest for the offline signing tools.
//!
//! A sealed key file is a small JSON document (version 1):
//!
//! ```text
//! {
//!   "format": "ferry-sealed-key",
//!   "version": 1,
//!   "label": "<free text, e.g. the key id>",
//!   "kdf": {
//!     "name": "argon2id",
//!     "m_cost_kib": 65536,
//!     "t_cost": 3,
//!     "p_cost": 1,
//!     "salt": "<base64, 16 random bytes>"
//!   },
//!   "cipher": {
//!     "name": "chacha20-poly1305",
//!     "nonce": "<base64, 12 random bytes>"
//!   },
//!   "ciphertext": "<base64: the encrypted secret followed by the 16-byte Poly1305 tag>"
//! }
//! ```
//!
//! Why this shape:
//!
//! - **argon2id** turns the passphrase into the 32-byte encryption key. Passphrases are low-entropy, so
//!   the KDF must be slow and memory-hard to make offline guessing expensive; argon2id is the
//!   recommended password KDF (RFC 9106). The costs travel in the file so that they can be raised
//!   later without breaking old files, and the salt is random per file so that the same passphrase
//!   never yields the same key twice.
//! - **ChaCha20-Poly1305** (an AEAD) encrypts the secret under a random nonce. A fresh salt already
//!   makes every key unique, so nonce reuse cannot happen in practice; the random nonce is
//!   belt-and-braces.
//! - **Everything except the ciphertext is authenticated**: the AEAD's associated data is the OLPC
//!   canonical JSON of the document without its `ciphertext` field. Editing the label, the KDF costs,
//!   the salt or the nonce therefore makes [`open`] fail exactly like a wrong passphrase does, so a
//!   file cannot be relabelled or downgraded without detection.
//! - **Opening is bounded**: files over [`MAX_FILE_LEN`] bytes are refused before parsing, and KDF
//!   costs outside [`MAX_M_COST_KIB`], [`MAX_T_COST`] and [`MAX_P_COST`] are refused before any memory
//!   is allocated, so a hostile file cannot make the tool allocate or spin without limit.
//!
//! Secrets handled here (the derived key, the argon2 working memory, the plaintext) live in buffers
//! that the `zeroize` crate overwrites with zeros when dropped. This is best effort: `ring` keeps its
//! own copy of the expanded key and the caller owns the passphrase.
//!
//! ```
//! use ferry_tuf::sealed::{is_sealed, open, seal, SealParams};
//!
//! // Real callers use `SealParams::default()`; tests use the cheap parameters.
//! let file = seal(b"private key bytes", b"correct horse", "key 1234", &SealParams::insecure_fast_for_tests())?;
//! assert!(is_sealed(&file));
//! let opened = open(&file, b"correct horse")?;
//! assert_eq!(opened.secret.as_bytes(), b"private key bytes");
//! assert_eq!(opened.label, "key 1234");
//! # Ok::<(), ferry_tuf::sealed::SealError>(())
//! ```

#![warn(missing_docs)]

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

/// The value of the `format` field that marks a sealed key file.
pub const FORMAT: &str = "ferry-sealed-key";

/// The only file format version this build reads and writes.
pub const VERSION: u64 = 1;

/// Largest sealed key file [`open`] accepts (64 KiB); larger inputs are refused before parsing.
pub const MAX_FILE_LEN: usize = 64 * 1024;

/// Largest argon2id memory cost accepted, in KiB (1 GiB).
pub const MAX_M_COST_KIB: u32 = 1024 * 1024;

/// Largest argon2id time cost (number of passes) accepted.
pub const MAX_T_COST: u32 = 16;

/// Largest argon2id parallelism (number of lanes) accepted.
pub const MAX_P_COST: u32 = 16;

const KDF_NAME: &str = "argon2id";
const CIPHER_NAME: &str = "chacha20-poly1305";
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// argon2id cost parameters used when sealing (and recorded in the file for opening).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealParams {
    /// Memory cost in KiB. At least `8 * p_cost`, at most [`MAX_M_COST_KIB`].
    pub m_cost_kib: u32,
    /// Time cost (number of passes over the memory), `1..=`[`MAX_T_COST`].
    pub t_cost: u32,
    /// Parallelism (number of lanes), `1..=`[`MAX_P_COST`].
    pub p_cost: u32,
}

impl Default for SealParams {
    /// The production cost: 64 MiB of memory, 3 passes, 1 lane (roughly a quarter of a second to
    /// half a second on a laptop).
    fn default() -> Self {
        SealParams { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 }
    }
}

impl SealParams {
    /// A trivially cheap cost (64 KiB, 1 pass, 1 lane) for tests. **Never use it for real keys**: it
    /// offers almost no protection against passphrase guessing.
    pub fn insecure_fast_for_tests() -> Self {
        SealParams { m_cost_kib: 64, t_cost: 1, p_cost: 1 }
    }

    /// Checks that the parameters are within the bounds [`open`] accepts.
    pub fn validate(&self) -> Result<(), SealError> {
        check_bounds(u64::from(self.m_cost_kib), u64::from(self.t_cost), u64::from(self.p_cost)).map(|_| ())
    }
}

/// Secret bytes that are overwritten with zeros when dropped.
///
/// Dereferences to `[u8]`. `Debug` prints only the length, never the contents.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`; they are wiped when the returned value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        SecretBytes(bytes)
    }
}

impl Deref for SecretBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        // The whole allocation, spare capacity included.
        self.0.zeroize();
    }
}

/// The result of [`open`]: the secret and the (authenticated) label it was sealed with.
#[derive(Debug)]
pub struct Opened {
    /// The decrypted key material, wiped on drop.
    pub secret: SecretBytes,
    /// The label stored in the file; authenticated, so it is exactly what [`seal`] was given.
    pub label: String,
    /// The argon2id costs the file was sealed with (e.g. to suggest re-sealing weak files).
    pub params: SealParams,
}

/// What went wrong sealing or opening a key, or reading a passphrase.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The input is not a sealed key file at all (not JSON, or no `"format": "ferry-sealed-key"`).
    #[error(
        "not a Ferry sealed key file (expected a JSON document with \"format\": \"{FORMAT}\"); check that \
         the path points at a sealed key, or seal the key first"
    )]
    NotSealedKey,

    /// The file is a sealed key file of a version this build does not understand.
    #[error(
        "sealed key file version {version} is not supported (this build reads version {VERSION}); \
         use a newer Ferry release to open it"
    )]
    UnsupportedVersion {
        /// The version the file declares.
        version: u64,
    },

    /// A field of the file is missing, has the wrong type, or has an invalid value.
    #[error(
        "sealed key file field `{field}` is malformed: {reason}; the file is damaged or was edited, \
         restore it from a backup"
    )]
    Malformed {
        /// The field's path, e.g. `kdf.salt`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An argon2id cost is outside the accepted bounds (refused before any memory is allocated).
    #[error(
        "argon2id parameter {param} = {value} is outside the accepted range {min}..={max}; refusing to \
         derive a key (a file with such costs is damaged or hostile; when sealing, pick costs in range)"
    )]
    ParamsOutOfBounds {
        /// The parameter: `m_cost_kib`, `t_cost` or `p_cost`.
        param: &'static str,
        /// The value given.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },

    /// Decryption failed: the passphrase is wrong or the file was modified. The two cannot be told
    /// apart, by design.
    #[error(
        "wrong passphrase, or the sealed key file has been modified (the two cannot be told apart); \
         check the passphrase and try again, and if it is right restore the file from a backup"
    )]
    WrongPassphraseOrTampered,

    /// An empty passphrase was given.
    #[error("the passphrase is empty; sealed keys need a non-empty passphrase")]
    EmptyPassphrase,

    /// The input given to [`open`] is larger than [`MAX_FILE_LEN`].
    #[error(
        "input is {len} bytes, more than the {max} bytes a sealed key file can be; check that the path \
         points at a sealed key"
    )]
    FileTooLarge {
        /// Size of the input.
        len: usize,
        /// The limit, [`MAX_FILE_LEN`].
        max: usize,
    },

    /// [`seal`] would produce a file larger than [`open`] accepts.
    #[error(
        "the sealed file would be {len} bytes, more than the {max} bytes that can be opened again; the \
         secret or the label is too large"
    )]
    SecretTooLarge {
        /// Size the sealed file would have.
        len: usize,
        /// The limit, [`MAX_FILE_LEN`].
        max: usize,
    },

    /// The memory for argon2id could not be allocated.
    #[error(
        "could not allocate {m_cost_kib} KiB for argon2id key derivation; free some memory (or, when \
         sealing, choose a smaller m_cost_kib) and try again"
    )]
    OutOfMemory {
        /// The memory cost that was requested.
        m_cost_kib: u32,
    },

    /// An unexpected failure inside the cryptographic libraries (e.g. the system RNG failed).
    #[error("internal cryptography failure: {0}")]
    Crypto(String),

    /// The passphrase environment variable is unset, empty or not valid UTF-8.
    #[error(
        "passphrase environment variable {var} is {problem}; set it to the passphrase or use another \
         passphrase source"
    )]
    PassphraseEnv {
        /// The variable's name.
        var: String,
        /// `not set`, `empty` or `not valid UTF-8`.
        problem: &'static str,
    },

    /// The passphrase file could not be read.
    #[error("cannot read passphrase file {}: {source}; check the path and its permissions", path.display())]
    PassphraseFileUnreadable {
        /// The file's path.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },

    /// The passphrase file is empty (or holds only a line ending).
    #[error("passphrase file {} is empty; write the passphrase into it", path.display())]
    PassphraseFileEmpty {
        /// The file's path.
        path: PathBuf,
    },
}

/// Where the CLI takes a passphrase from when it is not prompting on a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// The named environment variable; it must be set, non-empty and valid UTF-8.
    Env(String),
    /// A file holding the passphrase; one trailing `"\n"` or `"\r\n"` is stripped, and the rest must
    /// not be empty.
    File(PathBuf),
}

impl PassphraseSource {
    /// Reads the passphrase. The result is never empty.
    pub fn read(&self) -> Result<Vec<u8>, SealError> {
        match self {
            PassphraseSource::Env(var) => {
                let problem = |problem| SealError::PassphraseEnv { var: var.clone(), problem };
                let value = std::env::var_os(var).ok_or_else(|| problem("not set"))?;
                let value = value.into_string().map_err(|_| problem("not valid UTF-8"))?;
                if value.is_empty() {
                    return Err(problem("empty"));
                }
                Ok(value.into_bytes())
            }
            PassphraseSource::File(path) => {
                let mut bytes = std::fs::read(path)
                    .map_err(|source| SealError::PassphraseFileUnreadable { path: path.clone(), source })?;
                if bytes.ends_with(b"\r\n") {
                    bytes.truncate(bytes.len() - 2);
                } else if bytes.ends_with(b"\n") {
                    bytes.truncate(bytes.len() - 1);
                }
                if bytes.is_empty() {
                    return Err(SealError::PassphraseFileEmpty { path: path.clone() });
                }
                Ok(bytes)
            }
        }
    }
}

/// Whether a document is a sealed key file at all.
#[derive(Deserialize)]
struct Envelope {
    format: String,
}

/// The version, read before the rest: a newer version may have other fields.
#[derive(Deserialize)]
struct Versioned {
    version: u64,
}

/// A sealed key file of [`VERSION`], as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedFile {
    #[allow(dead_code, reason = "checked by Envelope; listed so that it is not an unknown field")]
    format: String,
    #[allow(dead_code, reason = "checked by Versioned; listed so that it is not an unknown field")]
    version: u64,
    label: String,
    kdf: KdfIn,
    cipher: CipherIn,
    ciphertext: String,
}

/// The `kdf` object, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfIn {
    name: String,
    m_cost_kib: u64,
    t_cost: u64,
    p_cost: u64,
    salt: String,
}

/// The `cipher` object, as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherIn {
    name: String,
    nonce: String,
}

/// The `kdf` object.
#[derive(Serialize)]
struct KdfFields<'a> {
    name: &'a str,
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
    salt: &'a str,
}

/// The `cipher` object.
#[derive(Serialize)]
struct CipherFields<'a> {
    name: &'a str,
    nonce: &'a str,
}

/// Everything but the ciphertext: what the AEAD authenticates.
#[derive(Serialize)]
struct Header<'a> {
    format: &'a str,
    version: u64,
    label: &'a str,
    kdf: KdfFields<'a>,
    cipher: CipherFields<'a>,
}

/// The whole file, in the order it is written.
#[derive(Serialize)]
struct Document<'a> {
    format: &'a str,
    version: u64,
    label: &'a str,
    kdf: &'a KdfFields<'a>,
    cipher: &'a CipherFields<'a>,
    ciphertext: &'a str,
}

impl Header<'_> {
    /// The AEAD associated data: the OLPC canonical JSON of the header.
    fn associated_data(&self) -> Result<Vec<u8>, SealError> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
        self.serialize(&mut ser).map_err(|e| SealError::Crypto(format!("canonical JSON of the header: {e}")))?;
        Ok(out)
    }
}

/// Encrypts `secret` under `passphrase` and returns the sealed key file (pretty JSON with a trailing
/// newline).
///
/// `label` is stored in clear but authenticated; use it to say which key this is (e.g. the key id).
/// Fails with [`SealError::EmptyPassphrase`] for an empty passphrase, with
/// [`SealError::ParamsOutOfBounds`] for costs that [`open`] would refuse, and with
/// [`SealError::SecretTooLarge`] if the file would exceed [`MAX_FILE_LEN`].
pub fn seal(secret: &[u8], passphrase: &[u8], label: &str, params: &SealParams) -> Result<Vec<u8>, SealError> {
    let rng = SystemRandom::new();
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut salt).map_err(|_| SealError::Crypto("the system random number generator failed".into()))?;
    rng.fill(&mut nonce).map_err(|_| SealError::Crypto("the system random number generator failed".into()))?;
    seal_with(secret, passphrase, label, params, &salt, &nonce)
}

/// [`seal`] with a caller-chosen salt and nonce (deterministic; for known-answer tests).
fn seal_with(
    secret: &[u8],
    passphrase: &[u8],
    label: &str,
    params: &SealParams,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>, SealError> {
    if passphrase.is_empty() {
        return Err(SealError::EmptyPassphrase);
    }
    params.validate()?;

    let salt_b64 = BASE64.encode(salt);
    let nonce_b64 = BASE64.encode(nonce);
    let header = Header {
        format: FORMAT,
        version: VERSION,
        label,
        kdf: KdfFields {
            name: KDF_NAME,
            m_cost_kib: params.m_cost_kib,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
            salt: &salt_b64,
        },
        cipher: CipherFields { name: CIPHER_NAME, nonce: &nonce_b64 },
    };
    let aad = header.associated_data()?;

    let key = aead_key(passphrase, salt, params)?;
    // Sized up front so that appending the tag never reallocates (which would leave a copy behind).
    let mut in_out = SecretBytes(Vec::with_capacity(secret.len() + CHACHA20_POLY1305.tag_len()));
    in_out.0.extend_from_slice(secret);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(&aad[..]), &mut in_out.0)
        .map_err(|_| SealError::Crypto("ChaCha20-Poly1305 encryption failed".into()))?;
    let ciphertext = BASE64.encode(&in_out.0);

    let doc = Document {
        format: header.format,
        version: header.version,
        label: header.label,
        kdf: &header.kdf,
        cipher: &header.cipher,
        ciphertext: &ciphertext,
    };
    let mut file = serde_json::to_vec_pretty(&doc)
        .map_err(|e| SealError::Crypto(format!("serialising the sealed key file: {e}")))?;
    file.push(b'\n');
    if file.len() > MAX_FILE_LEN {
        return Err(SealError::SecretTooLarge { len: file.len(), max: MAX_FILE_LEN });
    }
    Ok(file)
}

/// Decrypts a sealed key file produced by [`seal`].
///
/// Checks, in order: the size ([`SealError::FileTooLarge`]), that it is a sealed key file at all
/// ([`SealError::NotSealedKey`]), the version ([`SealError::UnsupportedVersion`]), the passphrase
/// ([`SealError::EmptyPassphrase`]), every field ([`SealError::Malformed`]; unknown fields are refused
/// too, since they would not be authenticated), the KDF costs ([`SealError::ParamsOutOfBounds`],
/// before anything is allocated), and finally decrypts ([`SealError::WrongPassphraseOrTampered`]).
pub fn open(file: &[u8], passphrase: &[u8]) -> Result<Opened, SealError> {
    if file.len() > MAX_FILE_LEN {
        return Err(SealError::FileTooLarge { len: file.len(), max: MAX_FILE_LEN });
    }
    // An object: a JSON array would otherwise fill the structs below field by field.
    let doc = Value::Object(serde_json::from_slice::<Map<String, Value>>(file).map_err(|_| SealError::NotSealedKey)?);
    if Envelope::deserialize(&doc).map_or(true, |e| e.format != FORMAT) {
        return Err(SealError::NotSealedKey);
    }
    let Versioned { version } = fields(&doc)?;
    if version != VERSION {
        return Err(SealError::UnsupportedVersion { version });
    }
    if passphrase.is_empty() {
        return Err(SealError::EmptyPassphrase);
    }

    // Unknown fields are refused: they would not be authenticated.
    let sealed: SealedFile = fields(&doc)?;
    let (kdf, cipher) = (&sealed.kdf, &sealed.cipher);
    if kdf.name != KDF_NAME {
        return Err(malformed("kdf.name", format!("unsupported KDF {:?}; only \"{KDF_NAME}\" is supported", kdf.name)));
    }
    if cipher.name != CIPHER_NAME {
        return Err(malformed(
            "cipher.name",
            format!("unsupported cipher {:?}; only \"{CIPHER_NAME}\" is supported", cipher.name),
        ));
    }
    let (m_cost_kib, t_cost, p_cost) = (kdf.m_cost_kib, kdf.t_cost, kdf.p_cost);
    let (label, salt_b64, nonce_b64, ciphertext_b64) =
        (sealed.label.as_str(), kdf.salt.as_str(), cipher.nonce.as_str(), sealed.ciphertext.as_str());

    // Bounds before anything else is done with the costs: a hostile file must not make us allocate.
    let params = check_bounds(m_cost_kib, t_cost, p_cost)?;

    let salt: [u8; SALT_LEN] = decode_fixed(salt_b64, "kdf.salt")?;
    let nonce: [u8; NONCE_LEN] = decode_fixed(nonce_b64, "cipher.nonce")?;
    // Wrapped at once: after decryption in place this buffer holds the plaintext.
    let mut in_out = SecretBytes(decode(ciphertext_b64, "ciphertext")?);
    if in_out.0.len() < CHACHA20_POLY1305.tag_len() {
        return Err(malformed(
            "ciphertext",
            format!("{} bytes is shorter than the {}-byte tag", in_out.0.len(), CHACHA20_POLY1305.tag_len()),
        ));
    }

    let header = Header {
        format: FORMAT,
        version,
        label,
        kdf: KdfFields {
            name: &kdf.name,
            m_cost_kib: params.m_cost_kib,
            t_cost: params.t_cost,
            p_cost: params.p_cost,
            salt: salt_b64,
        },
        cipher: CipherFields { name: &cipher.name, nonce: nonce_b64 },
    };
    let aad = header.associated_data()?;

    let key = aead_key(passphrase, &salt, &params)?;
    let plaintext_len = key
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), &mut in_out.0)
        .map_err(|_| SealError::WrongPassphraseOrTampered)?
        .len();
    in_out.0.truncate(plaintext_len);

    Ok(Opened { secret: in_out, label: label.to_owned(), params })
}

/// Cheap sniff: is `file` a JSON object (of at most [`MAX_FILE_LEN`] bytes) whose `format` is
/// `"ferry-sealed-key"`? Says nothing about the version or whether it will open.
pub fn is_sealed(file: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Sniff {
        format: String,
    }
    file.len() <= MAX_FILE_LEN && serde_json::from_slice::<Sniff>(file).is_ok_and(|s| s.format == FORMAT)
}

/// Derives the AEAD key from the passphrase with argon2id.
fn aead_key(passphrase: &[u8], salt: &[u8; SALT_LEN], params: &SealParams) -> Result<LessSafeKey, SealError> {
    let argon_params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(KEY_LEN))
        .map_err(|e| SealError::Crypto(format!("argon2id parameters: {e}")))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);

    let blocks = argon2.params().block_count();
    // The argon2 working memory is derived from the passphrase: wiped when dropped.
    let mut memory: Zeroizing<Vec<Block>> = Zeroizing::new(Vec::new());
    memory.try_reserve_exact(blocks).map_err(|_| SealError::OutOfMemory { m_cost_kib: params.m_cost_kib })?;
    memory.resize(blocks, Block::default());

    let mut key = SecretBytes(vec![0u8; KEY_LEN]);
    argon2
        .hash_password_into_with_memory(passphrase, salt, &mut key.0, &mut memory[..])
        .map_err(|e| SealError::Crypto(format!("argon2id: {e}")))?;
    drop(memory);

    let unbound = UnboundKey::new(&CHACHA20_POLY1305, &key.0)
        .map_err(|_| SealError::Crypto("ChaCha20-Poly1305 key setup failed".into()))?;
    Ok(LessSafeKey::new(unbound))
}

/// Checks the argon2id costs against our bounds (and argon2's own minimums).
fn check_bounds(m_cost_kib: u64, t_cost: u64, p_cost: u64) -> Result<SealParams, SealError> {
    fn within(param: &'static str, value: u64, min: u64, max: u32) -> Result<u32, SealError> {
        let max = u64::from(max);
        if value < min || value > max {
            return Err(SealError::ParamsOutOfBounds { param, value, min, max });
        }
        // In range, so it fits.
        Ok(value as u32)
    }
    let p_cost = within("p_cost", p_cost, 1, MAX_P_COST)?;
    let t_cost = within("t_cost", t_cost, 1, MAX_T_COST)?;
    // argon2 needs at least 8 KiB per lane.
    let m_cost_kib = within("m_cost_kib", m_cost_kib, 8 * u64::from(p_cost), MAX_M_COST_KIB)?;
    Ok(SealParams { m_cost_kib, t_cost, p_cost })
}

fn malformed(field: &str, reason: impl Into<String>) -> SealError {
    SealError::Malformed { field: field.to_owned(), reason: reason.into() }
}

/// Reads `T` from the document; a field that is missing, unknown or of the wrong type is
/// [`SealError::Malformed`] under its path (`kdf.salt`).
fn fields<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<T, SealError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let reason = e.inner().to_string();
        let mut field = match e.path().to_string() {
            root if root == "." => String::new(),
            path => path,
        };
        // serde names a missing or unknown field in its message only, as `name`.
        if reason.starts_with("missing field") || reason.starts_with("unknown field") {
            if let Some(name) = reason.split('`').nth(1).filter(|name| !field.ends_with(name)) {
                field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
            }
        }
        malformed(&field, reason)
    })
}

fn decode(b64: &str, field: &str) -> Result<Vec<u8>, SealError> {
    BASE64.decode(b64).map_err(|e| malformed(field, format!("invalid base64: {e}")))
}

fn decode_fixed<const N: usize>(b64: &str, field: &str) -> Result<[u8; N], SealError> {
    let bytes = decode(b64, field)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| malformed(field, format!("must be {N} bytes, found {len}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &[u8] = b"\x00\x01 pkcs8 private key material \xff";
    const PASS: &[u8] = b"correct horse battery staple";
    const LABEL: &str = "4e3a0c9f root key";

    fn fast() -> SealParams {
        SealParams::insecure_fast_for_tests()
    }

    fn sealed() -> Vec<u8> {
        seal(SECRET, PASS, LABEL, &fast()).unwrap()
    }

    fn parse(file: &[u8]) -> Value {
        serde_json::from_slice(file).unwrap()
    }

    fn reserialise(doc: &Value) -> Vec<u8> {
        serde_json::to_vec_pretty(doc).unwrap()
    }

    /// Seals, applies `edit` to the parsed document, and returns what `open` says.
    fn open_edited(edit: impl FnOnce(&mut Value)) -> Result<Opened, SealError> {
        let mut doc = parse(&sealed());
        edit(&mut doc);
        open(&reserialise(&doc), PASS)
    }

    /// Flips the low bit of the first byte of a base64 field.
    fn flip_base64(value: &mut Value) {
        let mut bytes = BASE64.decode(value.as_str().unwrap()).unwrap();
        bytes[0] ^= 0x01;
        *value = Value::String(BASE64.encode(bytes));
    }

    fn assert_tampered(result: Result<Opened, SealError>, what: &str) {
        match result {
            Err(SealError::WrongPassphraseOrTampered) => {}
            other => panic!("{what}: expected WrongPassphraseOrTampered, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let file = sealed();
        assert!(file.ends_with(b"}\n"), "pretty JSON with a trailing newline");
        assert!(is_sealed(&file));
        let opened = open(&file, PASS).unwrap();
        assert_eq!(opened.secret.as_bytes(), SECRET);
        assert_eq!(opened.label, LABEL);
        assert_eq!(opened.params, fast());
    }

    #[test]
    fn round_trip_empty_secret_and_unicode_label() {
        let file = seal(b"", "pässwörd ✓".as_bytes(), "clé \"quoted\" \\ ✓\n", &fast()).unwrap();
        let opened = open(&file, "pässwörd ✓".as_bytes()).unwrap();
        assert!(opened.secret.is_empty());
        assert_eq!(opened.label, "clé \"quoted\" \\ ✓\n");
    }

    #[test]
    fn file_has_the_documented_shape() {
        let doc = parse(&sealed());
        assert_eq!(doc["format"], "ferry-sealed-key");
        assert_eq!(doc["version"], 1);
        assert_eq!(doc["label"], LABEL);
        assert_eq!(doc["kdf"]["name"], "argon2id");
        assert_eq!(doc["kdf"]["m_cost_kib"], 64);
        assert_eq!(doc["kdf"]["t_cost"], 1);
        assert_eq!(doc["kdf"]["p_cost"], 1);
        assert_eq!(BASE64.decode(doc["kdf"]["salt"].as_str().unwrap()).unwrap().len(), 16);
        assert_eq!(doc["cipher"]["name"], "chacha20-poly1305");
        assert_eq!(BASE64.decode(doc["cipher"]["nonce"].as_str().unwrap()).unwrap().len(), 12);
        let ciphertext = BASE64.decode(doc["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(ciphertext.len(), SECRET.len() + 16);
        assert!(!ciphertext.windows(SECRET.len()).any(|w| w == SECRET));
        assert_eq!(doc.as_object().unwrap().len(), 6);
    }

    #[test]
    fn default_params_are_the_production_cost() {
        assert_eq!(SealParams::default(), SealParams { m_cost_kib: 65536, t_cost: 3, p_cost: 1 });
        SealParams::default().validate().unwrap();
    }

    /// Pins the format: a file sealed by this version must keep opening in later ones.
    #[test]
    fn known_answer() {
        let salt = [7u8; SALT_LEN];
        let nonce = [9u8; NONCE_LEN];
        let file = seal_with(b"secret", b"pass", "kat", &fast(), &salt, &nonce).unwrap();
        let expected = concat!(
            "{\n",
            "  \"format\": \"ferry-sealed-key\",\n",
            "  \"version\": 1,\n",
            "  \"label\": \"kat\",\n",
            "  \"kdf\": {\n",
            "    \"name\": \"argon2id\",\n",
            "    \"m_cost_kib\": 64,\n",
            "    \"t_cost\": 1,\n",
            "    \"p_cost\": 1,\n",
            "    \"salt\": \"BwcHBwcHBwcHBwcHBwcHBw==\"\n",
            "  },\n",
            "  \"cipher\": {\n",
            "    \"name\": \"chacha20-poly1305\",\n",
            "    \"nonce\": \"CQkJCQkJCQkJCQkJ\"\n",
            "  },\n",
            "  \"ciphertext\": \"BJ8F4iYdcoWtwdVQ9mVM+OtyNJgnEQ==\"\n",
            "}\n",
        );
        assert_eq!(String::from_utf8(file.clone()).unwrap(), expected);
        assert_eq!(open(expected.as_bytes(), b"pass").unwrap().secret.as_bytes(), b"secret");
    }

    #[test]
    fn associated_data_is_canonical_json_of_the_header() {
        let header = Header {
            format: FORMAT,
            version: 1,
            label: "l",
            kdf: KdfFields { name: KDF_NAME, m_cost_kib: 64, t_cost: 1, p_cost: 1, salt: "S" },
            cipher: CipherFields { name: CIPHER_NAME, nonce: "N" },
        };
        assert_eq!(
            String::from_utf8(header.associated_data().unwrap()).unwrap(),
            concat!(
                r#"{"cipher":{"name":"chacha20-poly1305","nonce":"N"},"format":"ferry-sealed-key","#,
                r#""kdf":{"m_cost_kib":64,"name":"argon2id","p_cost":1,"salt":"S","t_cost":1},"#,
                r#""label":"l","version":1}"#
            )
        );
    }

    #[test]
    fn wrong_passphrase_fails() {
        assert_tampered(open(&sealed(), b"Correct horse battery staple"), "wrong passphrase");
    }

    #[test]
    fn empty_passphrase_is_refused() {
        assert!(matches!(seal(SECRET, b"", LABEL, &fast()), Err(SealError::EmptyPassphrase)));
        assert!(matches!(open(&sealed(), b""), Err(SealError::EmptyPassphrase)));
    }

    #[test]
    fn tampered_ciphertext_fails() {
        assert_tampered(open_edited(|d| flip_base64(&mut d["ciphertext"])), "ciphertext");
        // The tag is the last 16 bytes.
        assert_tampered(
            open_edited(|d| {
                let mut bytes = BASE64.decode(d["ciphertext"].as_str().unwrap()).unwrap();
                *bytes.last_mut().unwrap() ^= 0x80;
                d["ciphertext"] = Value::String(BASE64.encode(bytes));
            }),
            "tag",
        );
    }

    #[test]
    fn tampered_nonce_fails() {
        assert_tampered(open_edited(|d| flip_base64(&mut d["cipher"]["nonce"])), "nonce");
    }

    #[test]
    fn tampered_salt_fails() {
        assert_tampered(open_edited(|d| flip_base64(&mut d["kdf"]["salt"])), "salt");
    }

    #[test]
    fn tampered_label_fails() {
        assert_tampered(open_edited(|d| d["label"] = Value::from("4e3a0c9f root kez")), "label");
        assert_tampered(open_edited(|d| d["label"] = Value::from("")), "empty label");
    }

    #[test]
    fn tampered_cost_parameters_fail() {
        assert_tampered(open_edited(|d| d["kdf"]["m_cost_kib"] = Value::from(65)), "m_cost_kib");
        assert_tampered(open_edited(|d| d["kdf"]["t_cost"] = Value::from(2)), "t_cost");
        assert_tampered(open_edited(|d| d["kdf"]["p_cost"] = Value::from(2)), "p_cost");
    }

    #[test]
    fn tampered_algorithm_names_are_refused() {
        let err = open_edited(|d| d["kdf"]["name"] = Value::from("argon2i")).unwrap_err();
        assert!(matches!(&err, SealError::Malformed { field, .. } if field == "kdf.name"), "{err:?}");
        let err = open_edited(|d| d["cipher"]["name"] = Value::from("aes-256-gcm")).unwrap_err();
        assert!(matches!(&err, SealError::Malformed { field, .. } if field == "cipher.name"), "{err:?}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = open_edited(|d| d["comment"] = Value::from("hi")).unwrap_err();
        assert!(matches!(&err, SealError::Malformed { field, .. } if field == "comment"), "{err:?}");
        let err = open_edited(|d| d["kdf"]["secret"] = Value::from(1)).unwrap_err();
        assert!(matches!(&err, SealError::Malformed { field, .. } if field == "kdf.secret"), "{err:?}");
    }

    #[test]
    fn an_unknown_field_in_the_cipher_is_refused_by_name() {
        // Not authenticated, so even with the right passphrase it must not be accepted silently.
        let err = open_edited(|d| d["cipher"]["tag"] = Value::from("AAAA")).unwrap_err();
        assert!(matches!(&err, SealError::Malformed { field, .. } if field == "cipher.tag"), "{err:?}");
        // A sealed file's fields in a JSON array are not a sealed key file.
        let fields: Vec<Value> = parse(&sealed()).as_object().unwrap().values().cloned().collect();
        assert!(matches!(open(&serde_json::to_vec(&fields).unwrap(), PASS), Err(SealError::NotSealedKey)));
    }

    type Edit = Box<dyn FnOnce(&mut Value)>;

    #[test]
    fn malformed_fields_are_named() {
        let cases: Vec<(&str, Edit)> = vec![
            ("kdf.salt", Box::new(|d| d["kdf"]["salt"] = Value::from("not base64!"))),
            ("kdf.salt", Box::new(|d| d["kdf"]["salt"] = Value::from(BASE64.encode([1u8; 8])))),
            ("cipher.nonce", Box::new(|d| d["cipher"]["nonce"] = Value::from(BASE64.encode([1u8; 24])))),
            ("ciphertext", Box::new(|d| d["ciphertext"] = Value::from(BASE64.encode([1u8; 15])))),
            ("ciphertext", Box::new(|d| d["ciphertext"] = Value::from(3))),
            ("label", Box::new(|d| drop(d.as_object_mut().unwrap().remove("label")))),
            ("kdf", Box::new(|d| d["kdf"] = Value::from("argon2id"))),
            ("kdf.t_cost", Box::new(|d| d["kdf"]["t_cost"] = Value::from(-1))),
            ("kdf.m_cost_kib", Box::new(|d| d["kdf"]["m_cost_kib"] = Value::from(64.5))),
            ("version", Box::new(|d| d["version"] = Value::from("1"))),
        ];
        for (expected, edit) in cases {
            match open_edited(edit) {
                Err(SealError::Malformed { field, .. }) => assert_eq!(field, expected),
                other => panic!("expected Malformed({expected}), got {other:?}"),
            }
        }
    }

    #[test]
    fn two_seals_of_the_same_secret_differ() {
        let a = parse(&sealed());
        let b = parse(&sealed());
        assert_ne!(a["kdf"]["salt"], b["kdf"]["salt"]);
        assert_ne!(a["cipher"]["nonce"], b["cipher"]["nonce"]);
        assert_ne!(a["ciphertext"], b["ciphertext"]);
    }

    #[test]
    fn hostile_memory_cost_is_refused_before_allocating() {
        // 4 GiB; the file is otherwise valid, so only the bounds check can stop it.
        let err = open_edited(|d| d["kdf"]["m_cost_kib"] = Value::from(4u64 * 1024 * 1024)).unwrap_err();
        assert!(
            matches!(err, SealError::ParamsOutOfBounds { param: "m_cost_kib", value: 4194304, max: 1048576, .. }),
            "{err:?}"
        );
        // Beyond u32 too.
        let err = open_edited(|d| d["kdf"]["m_cost_kib"] = Value::from(u64::MAX)).unwrap_err();
        assert!(matches!(err, SealError::ParamsOutOfBounds { param: "m_cost_kib", .. }), "{err:?}");
    }

    #[test]
    fn other_out_of_bounds_costs_are_refused() {
        let cases: [(&'static str, &str, u64); 5] = [
            ("t_cost", "t_cost", 17),
            ("t_cost", "t_cost", 0),
            ("p_cost", "p_cost", 0),
            ("p_cost", "p_cost", 17),
            ("m_cost_kib", "m_cost_kib", 7),
        ];
        for (param, key, value) in cases {
            match open_edited(|d| d["kdf"][key] = Value::from(value)) {
                Err(SealError::ParamsOutOfBounds { param: p, value: v, .. }) => assert_eq!((p, v), (param, value)),
                other => panic!("{key}={value}: expected ParamsOutOfBounds, got {other:?}"),
            }
        }
        // 8 KiB per lane.
        let err = open_edited(|d| {
            d["kdf"]["p_cost"] = Value::from(4);
            d["kdf"]["m_cost_kib"] = Value::from(31);
        })
        .unwrap_err();
        assert!(matches!(err, SealError::ParamsOutOfBounds { param: "m_cost_kib", min: 32, .. }), "{err:?}");
    }

    #[test]
    fn seal_refuses_out_of_bounds_params() {
        let too_big = SealParams { m_cost_kib: MAX_M_COST_KIB + 1, ..fast() };
        assert!(matches!(seal(SECRET, PASS, LABEL, &too_big), Err(SealError::ParamsOutOfBounds { .. })));
        let zero_time = SealParams { t_cost: 0, ..fast() };
        assert!(matches!(seal(SECRET, PASS, LABEL, &zero_time), Err(SealError::ParamsOutOfBounds { .. })));
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut file = sealed();
        let padding = MAX_FILE_LEN + 1 - file.len();
        file.extend(std::iter::repeat_n(b' ', padding));
        assert!(matches!(
            open(&file, PASS),
            Err(SealError::FileTooLarge { len, max: MAX_FILE_LEN }) if len == MAX_FILE_LEN + 1
        ));
        assert!(!is_sealed(&file));
        // One byte less still opens (trailing whitespace is valid JSON).
        file.pop();
        assert!(open(&file, PASS).is_ok());
    }

    #[test]
    fn seal_refuses_a_secret_too_large_to_open() {
        let secret = vec![0x5a; MAX_FILE_LEN];
        assert!(matches!(seal(&secret, PASS, LABEL, &fast()), Err(SealError::SecretTooLarge { .. })));
    }

    #[test]
    fn garbage_is_not_a_sealed_key() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"\xff\xfe garbage",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
            b"[1, 2, 3]",
            b"\"ferry-sealed-key\"",
            b"{}",
            br#"{"format": "something-else", "version": 1}"#,
            br#"{"format": 1}"#,
        ];
        for input in inputs {
            assert!(matches!(open(input, PASS), Err(SealError::NotSealedKey)), "{input:?}");
            assert!(!is_sealed(input), "{input:?}");
        }
    }

    #[test]
    fn future_version_is_unsupported_not_garbage() {
        let file = br#"{"format": "ferry-sealed-key", "version": 2, "whatever": true}"#;
        assert!(is_sealed(file));
        assert!(matches!(open(file, PASS), Err(SealError::UnsupportedVersion { version: 2 })));
    }

    #[test]
    fn errors_say_what_to_do() {
        let message = SealError::WrongPassphraseOrTampered.to_string();
        assert!(message.contains("wrong passphrase") && message.contains("backup"), "{message}");
        let message = SealError::NotSealedKey.to_string();
        assert!(message.contains("ferry-sealed-key"), "{message}");
    }

    #[test]
    fn secret_bytes_redact_debug_and_wipe() {
        let secret = SecretBytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{secret:?}"), "SecretBytes([REDACTED; 7])");
        assert!(!format!("{:?}", open(&sealed(), PASS).unwrap()).contains("pkcs8"));

        // SecretBytes wipes with zeroize, which zeroes the elements and the spare capacity in
        // place: the allocation is kept (nothing is copied elsewhere) and holds no secret.
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(b"hunter2");
        let (capacity, at) = (buf.capacity(), buf.as_ptr());
        buf.zeroize();
        assert!(buf.is_empty());
        assert_eq!((buf.capacity(), buf.as_ptr()), (capacity, at), "wiped in place");
    }

    static UNIQUE: AtomicUsize = AtomicUsize::new(0);

    fn unique_name(what: &str) -> String {
        format!("ferry_sealed_test_{}_{}_{}", std::process::id(), what, UNIQUE.fetch_add(1, Ordering::Relaxed))
    }

    #[test]
    fn passphrase_from_env() {
        let var = unique_name("ENV").to_uppercase();
        let source = PassphraseSource::Env(var.clone());
        assert!(matches!(source.read(), Err(SealError::PassphraseEnv { problem: "not set", .. })));
        std::env::set_var(&var, "");
        assert!(matches!(source.read(), Err(SealError::PassphraseEnv { problem: "empty", .. })));
        std::env::set_var(&var, "s3cret passphrase\n");
        assert_eq!(source.read().unwrap(), b"s3cret passphrase\n", "env values are taken verbatim");
        std::env::remove_var(&var);
        let message = source.read().unwrap_err().to_string();
        assert!(message.contains(&var) && message.contains("not set"), "{message}");
    }

    /// A file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(contents: &[u8]) -> Self {
            let path = std::env::temp_dir().join(unique_name("passphrase"));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn passphrase_from_file() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"s3cret", b"s3cret"),
            (b"s3cret\n", b"s3cret"),
            (b"s3cret\r\n", b"s3cret"),
            (b"s3cret\n\n", b"s3cret\n"),
            (b" s3cret \r", b" s3cret \r"),
            (b"\n\n", b"\n"),
        ];
        for (contents, expected) in cases {
            let file = TempFile::with(contents);
            assert_eq!(PassphraseSource::File(file.0.clone()).read().unwrap(), expected, "{contents:?}");
        }
        for contents in [&b""[..], b"\n", b"\r\n"] {
            let file = TempFile::with(contents);
            assert!(
                matches!(PassphraseSource::File(file.0.clone()).read(), Err(SealError::PassphraseFileEmpty { .. })),
                "{contents:?}"
            );
        }
        let missing = std::env::temp_dir().join(unique_name("missing"));
        let err = PassphraseSource::File(missing.clone()).read().unwrap_err();
        assert!(matches!(err, SealError::PassphraseFileUnreadable { .. }), "{err:?}");
        assert!(err.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn passphrase_file_round_trip_with_seal() {
        let file = TempFile::with(b"from a file\n");
        let pass = PassphraseSource::File(file.0.clone()).read().unwrap();
        let sealed = seal(SECRET, &pass, LABEL, &fast()).unwrap();
        assert_eq!(open(&sealed, b"from a file").unwrap().secret.as_bytes(), SECRET);
    }
}
