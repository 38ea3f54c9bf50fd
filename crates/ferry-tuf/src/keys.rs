//! Public keys as TUF metadata lists them, signature verification, and signing keys.
//!
//! Formats follow what python-tuf (securesystemslib) writes, so that metadata verifies across
//! implementations: an ed25519 public key is 64 hex digits, ECDSA P-256 and RSA public keys
//! are PEM `SubjectPublicKeyInfo`, and signatures are hex (DER for ECDSA).

use std::collections::BTreeMap;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair as _};
use serde::{Deserialize, Serialize};
use spki::der::Decode as _;

use crate::cjson::canonical;
use crate::error::{Result, TufError};

/// `keytype` and `scheme` of ed25519 keys.
pub const ED25519: &str = "ed25519";
/// `keytype` of ECDSA keys as python-tuf writes it.
pub const ECDSA: &str = "ecdsa";
/// `scheme` of ECDSA P-256 with SHA-256 (also accepted as a `keytype`).
pub const ECDSA_P256: &str = "ecdsa-sha2-nistp256";
/// `keytype` of RSA keys.
pub const RSA: &str = "rsa";
/// `scheme` of RSASSA-PSS with SHA-256.
pub const RSA_PSS_SHA256: &str = "rsassa-pss-sha256";
/// `scheme` of RSASSA-PKCS1-v1_5 with SHA-256 (securesystemslib's and the TUF conformance
/// suite's default for RSA keys).
pub const RSA_PKCS1V15_SHA256: &str = "rsa-pkcs1v15-sha256";

/// DER prefix of a P-256 `SubjectPublicKeyInfo` before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// A public key exactly as TUF metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicKey {
    /// `ed25519`, `ecdsa` (or `ecdsa-sha2-nistp256`) or `rsa`.
    pub keytype: String,
    /// `ed25519`, `ecdsa-sha2-nistp256`, `rsassa-pss-sha256` or `rsa-pkcs1v15-sha256`.
    pub scheme: String,
    /// The key material.
    pub keyval: KeyVal,
}

/// The `keyval` of a public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyVal {
    /// Hex (ed25519) or PEM (ECDSA, RSA).
    pub public: String,
}

/// A signature in a metadata file's `signatures` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Signature {
    /// The id of the signing key.
    pub keyid: String,
    /// The signature, hex.
    pub sig: String,
}

impl PublicKey {
    /// The key id: hex SHA-256 of the canonical JSON of exactly `{keytype, scheme, keyval}`.
    pub fn key_id(&self) -> String {
        // A struct of strings always canonicalises.
        let bytes = canonical(self).unwrap_or_default();
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
    }

    /// Checks `sig` (hex, as in metadata) over `message`.
    pub fn verify(&self, message: &[u8], sig_hex: &str) -> Result<()> {
        let keyid = || self.key_id();
        let sig = hex::decode(sig_hex)
            .map_err(|_| TufError::BadKey { keyid: keyid(), reason: "the signature is not hex".to_owned() })?;
        let invalid = || TufError::BadKey { keyid: keyid(), reason: "the signature does not verify".to_owned() };
        let (algorithm, public): (&dyn signature::VerificationAlgorithm, Vec<u8>) =
            match (self.keytype.as_str(), self.scheme.as_str()) {
                (ED25519, ED25519) => (&signature::ED25519, self.ed25519_bytes()?),
                (ECDSA | ECDSA_P256, ECDSA_P256) => (&signature::ECDSA_P256_SHA256_ASN1, self.spki(OID_EC_PUBLIC_KEY)?),
                (RSA, RSA_PSS_SHA256) => (&signature::RSA_PSS_2048_8192_SHA256, self.spki(OID_RSA_ENCRYPTION)?),
                (RSA, RSA_PKCS1V15_SHA256) => (&signature::RSA_PKCS1_2048_8192_SHA256, self.spki(OID_RSA_ENCRYPTION)?),
                (t, s) => {
                    return Err(TufError::BadKey {
                        keyid: keyid(),
                        reason: format!("keytype {t:?} with scheme {s:?} is not supported"),
                    })
                }
            };
        signature::UnparsedPublicKey::new(algorithm, public).verify(message, &sig).map_err(|_| invalid())
    }

    /// Checks that the key material parses, so a bad key is refused when metadata is loaded
    /// rather than when it is first used.
    pub fn check(&self) -> Result<()> {
        match (self.keytype.as_str(), self.scheme.as_str()) {
            (ED25519, ED25519) => self.ed25519_bytes().map(drop),
            (ECDSA | ECDSA_P256, ECDSA_P256) => self.spki(OID_EC_PUBLIC_KEY).map(drop),
            (RSA, RSA_PSS_SHA256 | RSA_PKCS1V15_SHA256) => self.spki(OID_RSA_ENCRYPTION).map(drop),
            (t, s) => Err(TufError::BadKey {
                keyid: self.key_id(),
                reason: format!("keytype {t:?} with scheme {s:?} is not supported"),
            }),
        }
    }

    fn ed25519_bytes(&self) -> Result<Vec<u8>> {
        match hex::decode(&self.keyval.public) {
            Ok(b) if b.len() == 32 => Ok(b),
            _ => Err(TufError::BadKey {
                keyid: self.key_id(),
                reason: "an ed25519 public key must be 64 hex digits".to_owned(),
            }),
        }
    }

    /// The subject public key bits of a PEM `SubjectPublicKeyInfo` with the given algorithm.
    fn spki(&self, oid: &str) -> Result<Vec<u8>> {
        let bad = |reason: String| TufError::BadKey { keyid: self.key_id(), reason };
        let der = pem_decode(&self.keyval.public, "PUBLIC KEY").ok_or_else(|| bad("not a PEM public key".into()))?;
        let info = spki::SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| bad(format!("bad public key: {e}")))?;
        if info.algorithm.oid.to_string() != oid {
            return Err(bad(format!(
                "public key algorithm {} does not match keytype {}",
                info.algorithm.oid, self.keytype
            )));
        }
        info.subject_public_key.as_bytes().map(<[u8]>::to_vec).ok_or_else(|| bad("bad public key bit string".into()))
    }
}

/// The DER inside a PEM block with the given label.
fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Counts distinct keys among `authorised` that signed `message` validly, and checks the
/// count against `threshold`. Signatures by unknown or unauthorised keys, repeated key ids
/// and invalid signatures are ignored, as the specification asks.
pub fn verify_threshold(
    role: &str,
    signer: &str,
    message: &[u8],
    signatures: &[Signature],
    keys: &BTreeMap<String, PublicKey>,
    authorised: &[String],
    threshold: u32,
) -> Result<()> {
    if threshold == 0 {
        return Err(TufError::malformed(role, "a role's threshold must be at least 1"));
    }
    let mut valid: Vec<&str> = Vec::new();
    for sig in signatures {
        if valid.contains(&sig.keyid.as_str()) || !authorised.contains(&sig.keyid) {
            continue;
        }
        if let Some(key) = keys.get(&sig.keyid) {
            if key.verify(message, &sig.sig).is_ok() {
                valid.push(&sig.keyid);
            }
        }
    }
    if valid.len() < threshold as usize {
        return Err(TufError::Threshold {
            role: role.to_owned(),
            valid: valid.len(),
            threshold,
            signer: signer.to_owned(),
        });
    }
    Ok(())
}

/// The kinds of signing key this implementation creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Ed25519 (the default).
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256.
    EcdsaP256,
}

impl KeyKind {
    /// Parses `ed25519` or `ecdsa-p256` (also `ecdsa`, `ecdsa-sha2-nistp256`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ed25519" => Some(Self::Ed25519),
            "ecdsa-p256" | "ecdsa" | "ecdsa-sha2-nistp256" => Some(Self::EcdsaP256),
            _ => None,
        }
    }
}

enum Pair {
    Ed25519(signature::Ed25519KeyPair),
    Ecdsa(signature::EcdsaKeyPair),
}

/// A private key that signs metadata. Its PKCS#8 form is what gets sealed to disk.
pub struct SigningKey {
    pair: Pair,
    pkcs8: Vec<u8>,
    public: PublicKey,
    keyid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("keyid", &self.keyid).field("scheme", &self.public.scheme).finish()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.pkcs8.iter_mut().for_each(|b| *b = 0);
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate(kind: KeyKind) -> Result<Self> {
        let rng = SystemRandom::new();
        let failed = || TufError::BadKey { keyid: "(new key)".to_owned(), reason: "key generation failed".to_owned() };
        let pkcs8 = match kind {
            KeyKind::Ed25519 => signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| failed())?,
            KeyKind::EcdsaP256 => {
                signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(|_| failed())?
            }
        };
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key from its PKCS#8 DER form (ed25519 or ECDSA P-256).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self> {
        let (pair, public) = if let Ok(pair) = signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8) {
            let public = PublicKey {
                keytype: ED25519.to_owned(),
                scheme: ED25519.to_owned(),
                keyval: KeyVal { public: hex::encode(pair.public_key().as_ref()) },
            };
            (Pair::Ed25519(pair), public)
        } else if let Ok(pair) =
            signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &SystemRandom::new())
        {
            let mut der = P256_SPKI_PREFIX.to_vec();
            der.extend_from_slice(pair.public_key().as_ref());
            let public = PublicKey {
                keytype: ECDSA.to_owned(),
                scheme: ECDSA_P256.to_owned(),
                keyval: KeyVal { public: pem_encode(&der, "PUBLIC KEY") },
            };
            (Pair::Ecdsa(pair), public)
        } else {
            return Err(TufError::BadKey {
                keyid: "(private key)".to_owned(),
                reason: "not an ed25519 or ECDSA P-256 private key in PKCS#8 form".to_owned(),
            });
        };
        let keyid = public.key_id();
        Ok(Self { pair, pkcs8: pkcs8.to_vec(), public, keyid })
    }

    /// The PKCS#8 DER form, to be sealed before it touches a disk.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half, as metadata lists it.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.keyid
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Signature> {
        let sig = match &self.pair {
            Pair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Pair::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map_err(|_| TufError::BadKey { keyid: self.keyid.clone(), reason: "signing failed".to_owned() })?
                .as_ref()
                .to_vec(),
        };
        Ok(Signature { keyid: self.keyid.clone(), sig: hex::encode(sig) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_sign_and_verify() {
        for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256] {
            let key = SigningKey::generate(kind).unwrap();
            key.public().check().unwrap();
            let sig = key.sign(b"hello").unwrap();
            assert_eq!(sig.keyid, key.public().key_id());
            key.public().verify(b"hello", &sig.sig).unwrap();
            assert!(key.public().verify(b"hellO", &sig.sig).is_err(), "{kind:?}: other message");
            let again = SigningKey::from_pkcs8(key.pkcs8()).unwrap();
            assert_eq!(again.key_id(), key.key_id());
        }
    }

    #[test]
    fn key_id_is_sha256_of_canonical_key() {
        let key = PublicKey {
            keytype: "ed25519".into(),
            scheme: "ed25519".into(),
            keyval: KeyVal { public: "ab".repeat(32) },
        };
        let canonical =
            format!(r#"{{"keytype":"ed25519","keyval":{{"public":"{}"}},"scheme":"ed25519"}}"#, "ab".repeat(32));
        assert_eq!(key.key_id(), hex::encode(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes())));
    }

    #[test]
    fn threshold_counts_distinct_authorised_valid_keys() {
        let a = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let b = SigningKey::generate(KeyKind::EcdsaP256).unwrap();
        let stranger = SigningKey::generate(KeyKind::Ed25519).unwrap();
        let keys: BTreeMap<String, PublicKey> =
            [&a, &b, &stranger].iter().map(|k| (k.key_id().to_owned(), k.public().clone())).collect();
        let authorised = vec![a.key_id().to_owned(), b.key_id().to_owned()];
        let msg = b"signed part";
        let check =
            |sigs: &[Signature], threshold| verify_threshold("root", "root", msg, sigs, &keys, &authorised, threshold);
        let sa = a.sign(msg).unwrap();
        let sb = b.sign(msg).unwrap();
        check(&[sa.clone(), sb.clone()], 2).unwrap();
        // The same key twice counts once.
        assert!(matches!(check(&[sa.clone(), sa.clone()], 2), Err(TufError::Threshold { valid: 1, .. })));
        // A key the role does not authorise counts for nothing.
        assert!(check(&[sa.clone(), stranger.sign(msg).unwrap()], 2).is_err());
        // An invalid signature counts for nothing.
        let forged = Signature { keyid: b.key_id().to_owned(), sig: sa.sig.clone() };
        assert!(check(&[sa.clone(), forged], 2).is_err());
        assert!(check(&[sa], 0).is_err(), "a zero threshold is refused");
    }

    #[test]
    fn unsupported_and_broken_keys_are_refused() {
        let mut key = SigningKey::generate(KeyKind::Ed25519).unwrap().public().clone();
        key.keyval.public.pop();
        assert!(key.check().is_err());
        key.scheme = "dsa".into();
        assert!(key.check().unwrap_err().to_string().contains("not supported"));
    }
}
