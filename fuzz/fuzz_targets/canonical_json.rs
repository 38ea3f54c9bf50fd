//! Canonical JSON (what TUF signatures cover): any JSON value either has a canonical form or a
//! clear error, and the form depends only on the value, not on how the JSON was written.
#![no_main]

use ferry_tuf::cjson::canonical;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(first) = canonical(&value) else { return };
    // The same value written differently (compact serde_json output) has the same form.
    let rewritten: serde_json::Value = serde_json::from_slice(&serde_json::to_vec(&value).unwrap()).unwrap();
    assert_eq!(canonical(&rewritten).expect("canonical form of the same value"), first);
});
