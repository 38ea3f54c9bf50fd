//! TUF metadata as a device receives it: each role's envelope and `signed` part, and the
//! trusted set's updates on top of a valid root (a forged file must be refused, never panic).
#![no_main]

use std::sync::OnceLock;

use ferry_tuf::metadata::sign;
use ferry_tuf::{KeyKind, Root, SigningKey, Snapshot, Targets, Timestamp, TrustedSet, Verifiable};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000;

/// One valid root signed by one ed25519 key for every role, built once.
fn root() -> &'static [u8] {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let key = SigningKey::generate(KeyKind::Ed25519).expect("ed25519 key");
        let roles: Vec<(&str, Vec<ferry_tuf::PublicKey>, u32)> = ["root", "targets", "snapshot", "timestamp"]
            .into_iter()
            .map(|r| (r, vec![key.public().clone()], 1))
            .collect();
        let root = Root::new(1, "2100-01-01T00:00:00Z".to_owned(), &roles);
        sign(&root, &[&key]).expect("signing the root")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 7 {
        0 => {
            if let Ok(v) = Verifiable::<Root>::parse("root", rest) {
                let _ = v.signed.check();
            }
        }
        1 => drop(Verifiable::<Targets>::parse("targets", rest)),
        2 => drop(Verifiable::<Snapshot>::parse("snapshot", rest)),
        3 => {
            if let Ok(v) = Verifiable::<Timestamp>::parse("timestamp", rest) {
                let _ = v.signed.snapshot_meta();
            }
        }
        4 => drop(TrustedSet::new(rest, NOW)),
        5 => {
            let mut set = TrustedSet::new(root(), NOW).expect("the fixed root is valid");
            let _ = set.update_root(rest);
        }
        _ => {
            let mut set = TrustedSet::new(root(), NOW).expect("the fixed root is valid");
            let _ = set.update_timestamp(rest);
            let _ = set.find_target("product/1.0/artifact");
        }
    }
});
