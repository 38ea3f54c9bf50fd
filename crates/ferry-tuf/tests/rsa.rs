//! RSA keys as other TUF implementations publish them (PEM SubjectPublicKeyInfo): signatures
//! made with a real 2048-bit key (a test fixture, made with `openssl genpkey`) in both
//! schemes verify, and a signature in one scheme does not pass as the other.

use ferry_tuf::keys::{KeyVal, PublicKey, RSA, RSA_PKCS1V15_SHA256, RSA_PSS_SHA256};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256 as PSS};

const PRIVATE: &str = include_str!("fixtures/rsa-test-key.pk8.pem");
const PUBLIC: &str = include_str!("fixtures/rsa-test-key.pub.pem");

fn pkcs8() -> Vec<u8> {
    use base64::Engine as _;
    let body: String = PRIVATE.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

fn sign(padding: &'static dyn ring::signature::RsaEncoding, message: &[u8]) -> String {
    let key = RsaKeyPair::from_pkcs8(&pkcs8()).unwrap();
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(padding, &ring::rand::SystemRandom::new(), message, &mut sig).unwrap();
    hex::encode(sig)
}

fn public(scheme: &str) -> PublicKey {
    PublicKey { keytype: RSA.into(), scheme: scheme.into(), keyval: KeyVal { public: PUBLIC.into() } }
}

#[test]
fn rsa_signatures_verify_in_their_own_scheme_only() {
    let message = br#"{"_type":"timestamp"}"#;
    let pkcs1 = sign(&RSA_PKCS1_SHA256, message);
    let pss = sign(&PSS, message);
    for scheme in [RSA_PKCS1V15_SHA256, RSA_PSS_SHA256] {
        public(scheme).check().unwrap();
    }
    public(RSA_PKCS1V15_SHA256).verify(message, &pkcs1).unwrap();
    public(RSA_PSS_SHA256).verify(message, &pss).unwrap();
    assert!(public(RSA_PSS_SHA256).verify(message, &pkcs1).is_err(), "PKCS#1 v1.5 is not PSS");
    assert!(public(RSA_PKCS1V15_SHA256).verify(message, &pss).is_err(), "PSS is not PKCS#1 v1.5");
    assert!(public(RSA_PKCS1V15_SHA256).verify(b"another message", &pkcs1).is_err());
}
