//! The four top-level roles and delegated targets, their signed envelopes, and parsing that
//! verifies over the bytes as received.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cjson::canonical;
use crate::error::{Result, TufError};
use crate::keys::{verify_threshold, PublicKey, Signature, SigningKey};
use crate::time::parse_expires;

/// The specification version Ferry writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// Fields a role type has in common, so generic code can reach them.
pub trait Role: Serialize + DeserializeOwned {
    /// The `_type` value.
    const TYPE: &'static str;
    /// The version number.
    fn version(&self) -> u64;
    /// The `expires` string.
    fn expires(&self) -> &str;
}

macro_rules! role {
    ($ty:ident, $name:literal) => {
        impl Role for $ty {
            const TYPE: &'static str = $name;
            fn version(&self) -> u64 {
                self.version
            }
            fn expires(&self) -> &str {
                &self.expires
            }
        }
    };
}

/// `signed` of root metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Root {
    /// Always `root`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// `1.0.x`.
    pub spec_version: String,
    /// Whether the repository publishes consistent snapshots (Ferry's always do).
    pub consistent_snapshot: bool,
    /// Version, from 1, rising by exactly one per new root.
    pub version: u64,
    /// When this root stops being trusted.
    pub expires: String,
    /// Every key any top-level role uses, by key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// `root`, `targets`, `snapshot` and `timestamp`: their keys and thresholds.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Fields this implementation does not know, kept so they survive a re-sign.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role!(Root, "root");

/// The keys of a role and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Key ids.
    pub keyids: Vec<String>,
    /// Signatures needed.
    pub threshold: u32,
}

/// `signed` of targets metadata, top-level or delegated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// Always `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// `1.0.x`.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// Target files by target path.
    pub targets: BTreeMap<String, TargetFile>,
    /// Roles this one delegates to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Fields this implementation does not know.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role!(Targets, "targets");

/// What a target path refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Exact length in bytes.
    pub length: u64,
    /// Digests by algorithm name; Ferry always gives `sha256`.
    pub hashes: BTreeMap<String, String>,
    /// Application data (Ferry: product, version, platforms, release counter…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Fields this implementation does not know.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// Delegations from a targets role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    /// Keys of the delegated roles.
    pub keys: BTreeMap<String, PublicKey>,
    /// The delegated roles, in priority order.
    pub roles: Vec<DelegatedRole>,
    /// Fields this implementation does not know (`succinct_roles` is refused when used).
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}

/// One delegated role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name; its metadata is `VERSION.NAME.json`.
    pub name: String,
    /// Key ids.
    pub keyids: Vec<String>,
    /// Signatures needed.
    pub threshold: u32,
    /// Whether the search stops here when this role matches a path.
    pub terminating: bool,
    /// Path patterns the role may sign for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of SHA-256(target path) the role may sign for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
}

impl DelegatedRole {
    /// Whether this role is trusted for `target_path`.
    pub fn is_delegated_path(&self, target_path: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(p, target_path));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, target_path.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }
}

/// TUF's path pattern match: the same number of `/`-separated parts, each matched as a shell
/// glob (`*` any run of characters, `?` one character; neither crosses a `/`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = path.split('/').collect();
    p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// `signed` of snapshot metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `snapshot`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// `1.0.x`.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// `targets.json` and every delegated `ROLE.json`, with their versions.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this implementation does not know.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role!(Snapshot, "snapshot");

/// `signed` of timestamp metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Always `timestamp`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// `1.0.x`.
    pub spec_version: String,
    /// Version.
    pub version: u64,
    /// Expiry.
    pub expires: String,
    /// Exactly `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Fields this implementation does not know.
    #[serde(flatten)]
    pub unrecognized: Map<String, Value>,
}
role!(Timestamp, "timestamp");

impl Timestamp {
    /// The snapshot this timestamp names.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        self.meta.get("snapshot.json").ok_or_else(|| TufError::malformed("timestamp", "meta has no snapshot.json"))
    }
}

/// A reference to a metadata file from snapshot or timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// The file's version.
    pub version: u64,
    /// Its length, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Its digests, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<BTreeMap<String, String>>,
}

impl MetaFile {
    /// A reference carrying only the version.
    pub fn version_only(version: u64) -> Self {
        Self { version, length: None, hashes: None }
    }

    /// A reference with the file's version, length and SHA-256.
    pub fn of_bytes(version: u64, bytes: &[u8]) -> Self {
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes));
        Self { version, length: Some(bytes.len() as u64), hashes: Some([("sha256".to_owned(), digest)].into()) }
    }

    /// Checks `bytes` against the length and digests this reference gives.
    pub fn check(&self, what: &str, bytes: &[u8]) -> Result<()> {
        if let Some(length) = self.length {
            if bytes.len() as u64 != length {
                return Err(TufError::mismatch(what, format!("{} bytes, expected {length}", bytes.len())));
            }
        }
        if let Some(hashes) = &self.hashes {
            check_hashes(what, hashes, bytes)?;
        }
        Ok(())
    }
}

/// Checks every digest this implementation knows (SHA-256, SHA-512); at least one must be known.
pub fn check_hashes(what: &str, hashes: &BTreeMap<String, String>, bytes: &[u8]) -> Result<()> {
    let mut checked = false;
    for (algorithm, expected) in hashes {
        let alg = match algorithm.as_str() {
            "sha256" => &ring::digest::SHA256,
            "sha512" => &ring::digest::SHA512,
            _ => continue,
        };
        if hex::encode(ring::digest::digest(alg, bytes)) != expected.to_ascii_lowercase() {
            return Err(TufError::mismatch(what, format!("{algorithm} digest differs")));
        }
        checked = true;
    }
    if !checked {
        return Err(TufError::mismatch(what, "no sha256 or sha512 digest to check"));
    }
    Ok(())
}

/// The specification refuses a file whose `signatures` name one key id twice: a key signs a
/// file once, and a repeat is either a mistake or an attempt to make one key count twice
/// against a threshold, so it is refused outright (as python-tuf does), not quietly counted once.
fn refuse_repeated_key_ids(what: &str, signatures: &[Signature]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for sig in signatures {
        if !seen.insert(sig.keyid.as_str()) {
            return Err(TufError::malformed(
                what,
                format!(
                    "its signatures list key id {} more than once; a key signs a file once, so \
                     remove the repeated signature",
                    sig.keyid
                ),
            ));
        }
    }
    Ok(())
}

/// A metadata file as parsed: the typed `signed` part, its canonical bytes (what signatures
/// cover, computed from the JSON as received, so unknown fields stay signed) and signatures.
#[derive(Debug, Clone)]
pub struct Verifiable<T> {
    /// The typed content.
    pub signed: T,
    /// Canonical JSON of `signed` as received.
    pub canonical: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<Signature>,
}

#[derive(Deserialize)]
struct Envelope {
    signed: Value,
    signatures: Vec<Signature>,
}

impl<T: Role> Verifiable<T> {
    /// Parses a metadata file of role type `T`. Signatures are not checked yet.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Self> {
        let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| TufError::malformed(what, e))?;
        let found = envelope.signed.get("_type").and_then(Value::as_str).unwrap_or("(none)").to_owned();
        if found != T::TYPE {
            return Err(TufError::WrongType { expected: T::TYPE.to_owned(), found });
        }
        let canonical = canonical(&envelope.signed)?;
        let signed: T = serde_json::from_value(envelope.signed.clone()).map_err(|e| TufError::malformed(what, e))?;
        parse_expires(signed.expires())?;
        // Read from the JSON as received: canonical bytes are not always JSON (OLPC canonical
        // form leaves control characters such as a PEM key's newlines unescaped).
        let spec = envelope.signed.get("spec_version").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !spec.starts_with("1.") {
            return Err(TufError::malformed(what, format!("spec_version {spec:?} is not 1.x")));
        }
        refuse_repeated_key_ids(what, &envelope.signatures)?;
        Ok(Self { signed, canonical, signatures: envelope.signatures })
    }

    /// Checks the signatures against `keys`/`role`'s key ids and threshold. `signer` names the
    /// metadata that lists the keys, for the error message.
    pub fn verify(
        &self,
        role: &str,
        signer: &str,
        keys: &BTreeMap<String, PublicKey>,
        authorised: &[String],
        threshold: u32,
    ) -> Result<()> {
        verify_threshold(role, signer, &self.canonical, &self.signatures, keys, authorised, threshold)
    }

    /// Checks the signatures with the keys and threshold `root` gives `role`.
    pub fn verify_with_root(&self, role: &str, root: &Root) -> Result<()> {
        let keys = root.roles.get(role).ok_or_else(|| TufError::malformed("root", format!("no {role} role")))?;
        self.verify(role, "root", &root.keys, &keys.keyids, keys.threshold)
    }
}

/// Signs `signed` with each key, returning the metadata file's bytes (pretty JSON, as
/// python-tuf writes it; signatures cover the canonical form regardless).
pub fn sign<T: Role>(signed: &T, keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let canonical = canonical(signed)?;
    let mut signatures = Vec::with_capacity(keys.len());
    for key in keys {
        signatures.push(key.sign(&canonical)?);
    }
    to_file(signed, &signatures)
}

/// Adds signatures by `keys` to an existing metadata file, keeping the ones it has (a key that
/// already signed is signed again, replacing its old signature).
pub fn add_signatures<T: Role>(file: &[u8], keys: &[&SigningKey]) -> Result<Vec<u8>> {
    let parsed = Verifiable::<T>::parse(T::TYPE, file)?;
    let envelope: Envelope = serde_json::from_slice(file).map_err(|e| TufError::malformed(T::TYPE, e))?;
    let mut signatures: Vec<Signature> =
        parsed.signatures.into_iter().filter(|s| !keys.iter().any(|k| k.key_id() == s.keyid)).collect();
    for key in keys {
        signatures.push(key.sign(&parsed.canonical)?);
    }
    to_file(&envelope.signed, &signatures)
}

fn to_file<T: Serialize>(signed: &T, signatures: &[Signature]) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(&serde_json::json!({ "signed": signed, "signatures": signatures }))
        .map_err(|e| TufError::malformed("metadata", e))?;
    out.push(b'\n');
    Ok(out)
}

impl Root {
    /// A root with the given keys per role (`root`, `targets`, `snapshot`, `timestamp`).
    pub fn new(version: u64, expires: String, roles: &[(&str, Vec<PublicKey>, u32)]) -> Self {
        let mut root = Self {
            type_: "root".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            consistent_snapshot: true,
            version,
            expires,
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            unrecognized: Map::new(),
        };
        for (role, keys, threshold) in roles {
            root.set_role(role, keys, *threshold);
        }
        root
    }

    /// Replaces a role's keys and threshold, dropping keys no role uses any more.
    pub fn set_role(&mut self, role: &str, keys: &[PublicKey], threshold: u32) {
        let keyids = keys.iter().map(PublicKey::key_id).collect();
        for key in keys {
            self.keys.insert(key.key_id(), key.clone());
        }
        self.roles.insert(role.to_owned(), RoleKeys { keyids, threshold });
        let used: Vec<String> = self.roles.values().flat_map(|r| r.keyids.clone()).collect();
        self.keys.retain(|id, _| used.contains(id));
    }

    /// Checks the shape the specification requires: the four roles, each with keys it lists,
    /// thresholds it can reach, and keys that parse.
    pub fn check(&self) -> Result<()> {
        for role in ["root", "targets", "snapshot", "timestamp"] {
            let r = self.roles.get(role).ok_or_else(|| TufError::malformed("root", format!("no {role} role")))?;
            if r.threshold == 0 || r.threshold as usize > r.keyids.len() {
                return Err(TufError::malformed(
                    "root",
                    format!("{role} has threshold {} with {} key(s)", r.threshold, r.keyids.len()),
                ));
            }
            for id in &r.keyids {
                self.keys
                    .get(id)
                    .ok_or_else(|| TufError::malformed("root", format!("{role} names unknown key {id}")))?;
            }
        }
        for key in self.keys.values() {
            key.check()?;
        }
        Ok(())
    }
}

impl Targets {
    /// Empty targets metadata.
    pub fn new(version: u64, expires: String) -> Self {
        Self {
            type_: "targets".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: Map::new(),
        }
    }
}

impl Snapshot {
    /// Snapshot metadata listing `meta`.
    pub fn new(version: u64, expires: String, meta: BTreeMap<String, MetaFile>) -> Self {
        Self {
            type_: "snapshot".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version,
            expires,
            meta,
            unrecognized: Map::new(),
        }
    }
}

impl Timestamp {
    /// Timestamp metadata naming one snapshot.
    pub fn new(version: u64, expires: String, snapshot: MetaFile) -> Self {
        Self {
            type_: "timestamp".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version,
            expires,
            meta: [("snapshot.json".to_owned(), snapshot)].into(),
            unrecognized: Map::new(),
        }
    }
}

impl TargetFile {
    /// A target of `length` bytes with the given SHA-256 (hex).
    pub fn new(length: u64, sha256: &str, custom: Option<Value>) -> Self {
        Self { length, hashes: [("sha256".to_owned(), sha256.to_owned())].into(), custom, unrecognized: Map::new() }
    }

    /// The SHA-256 digest, if listed.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    fn key() -> SigningKey {
        SigningKey::generate(KeyKind::Ed25519).unwrap()
    }

    #[test]
    fn signed_root_parses_and_verifies_and_unknown_fields_stay_signed() {
        let k = key();
        let mut root = Root::new(
            1,
            "2030-01-01T00:00:00Z".into(),
            &[
                ("root", vec![k.public().clone()], 1),
                ("targets", vec![k.public().clone()], 1),
                ("snapshot", vec![k.public().clone()], 1),
                ("timestamp", vec![k.public().clone()], 1),
            ],
        );
        root.unrecognized.insert("x-ferry-note".into(), Value::String("kept".into()));
        root.check().unwrap();
        let file = sign(&root, &[&k]).unwrap();
        let parsed = Verifiable::<Root>::parse("root", &file).unwrap();
        parsed.verify_with_root("root", &parsed.signed).unwrap();
        assert_eq!(parsed.signed, root);
        // Changing the unknown field breaks the signature: it is part of what was signed.
        let tampered = String::from_utf8(file).unwrap().replace("kept", "kEpt");
        let parsed = Verifiable::<Root>::parse("root", tampered.as_bytes()).unwrap();
        assert!(matches!(parsed.verify_with_root("root", &parsed.signed), Err(TufError::Threshold { .. })));
    }

    #[test]
    fn roots_with_pem_keys_parse() {
        // A PEM key's newlines stay raw in canonical JSON, which is then not valid JSON.
        let k = SigningKey::generate(KeyKind::EcdsaP256).unwrap();
        let root = Root::new(
            1,
            "2030-01-01T00:00:00Z".into(),
            &[
                ("root", vec![k.public().clone()], 1),
                ("targets", vec![k.public().clone()], 1),
                ("snapshot", vec![k.public().clone()], 1),
                ("timestamp", vec![k.public().clone()], 1),
            ],
        );
        let parsed = Verifiable::<Root>::parse("root", &sign(&root, &[&k]).unwrap()).unwrap();
        parsed.verify_with_root("root", &root).unwrap();
    }

    #[test]
    fn wrong_type_and_bad_expiry_are_refused() {
        let k = key();
        let targets = Targets::new(1, "2030-01-01T00:00:00Z".into());
        let file = sign(&targets, &[&k]).unwrap();
        assert!(matches!(Verifiable::<Root>::parse("root", &file), Err(TufError::WrongType { .. })));
        let mut bad = targets.clone();
        bad.expires = "tomorrow".into();
        assert!(Verifiable::<Targets>::parse("targets", &sign(&bad, &[&k]).unwrap()).is_err());
    }

    #[test]
    fn add_signatures_keeps_existing_ones() {
        let (a, b) = (key(), key());
        let targets = Targets::new(3, "2030-01-01T00:00:00Z".into());
        let once = sign(&targets, &[&a]).unwrap();
        let twice = add_signatures::<Targets>(&once, &[&b, &a]).unwrap();
        let parsed = Verifiable::<Targets>::parse("targets", &twice).unwrap();
        assert_eq!(parsed.signatures.len(), 2);
        let keys = [a.public(), b.public()].iter().map(|k| (k.key_id(), (*k).clone())).collect();
        parsed.verify("targets", "root", &keys, &[a.key_id().into(), b.key_id().into()], 2).unwrap();
    }

    #[test]
    fn a_key_id_signing_twice_is_refused() {
        let k = key();
        let targets = Targets::new(3, "2030-01-01T00:00:00Z".into());
        let mut file: Value = serde_json::from_slice(&sign(&targets, &[&k]).unwrap()).unwrap();
        let first = file["signatures"][0].clone();
        file["signatures"].as_array_mut().unwrap().push(first);
        let err = Verifiable::<Targets>::parse("targets", &serde_json::to_vec(&file).unwrap()).unwrap_err();
        assert!(matches!(err, TufError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains(&format!("key id {} more than once", k.key_id())), "{err}");
    }

    #[test]
    fn path_patterns_follow_the_specification() {
        assert!(path_matches("firmware/*", "firmware/a.bin"));
        assert!(!path_matches("firmware/*", "firmware/x/a.bin"), "* does not cross /");
        assert!(path_matches("*/*/*.bin", "gw/1.0/a.bin"));
        assert!(path_matches("file?.txt", "file1.txt"));
        assert!(!path_matches("file?.txt", "file10.txt"));
        assert!(path_matches("a*b*c", "aXXbYYc"));
        assert!(!path_matches("a*b*c", "aXXbYY"));
        let role = DelegatedRole {
            name: "r".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(
                vec![hex::encode(ring::digest::digest(&ring::digest::SHA256, b"x/y"))[..4].into()],
            ),
        };
        assert!(role.is_delegated_path("x/y"));
        assert!(!role.is_delegated_path("x/z"));
    }

    #[test]
    fn meta_file_checks_length_and_digest() {
        let m = MetaFile::of_bytes(2, b"abc");
        m.check("snapshot", b"abc").unwrap();
        assert!(m.check("snapshot", b"abd").is_err());
        assert!(m.check("snapshot", b"abcd").is_err());
        MetaFile::version_only(2).check("snapshot", b"anything").unwrap();
    }
}
