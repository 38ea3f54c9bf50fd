//! The device API's request bodies (enroll, check-in, events) as the server decodes them:
//! any body is decoded or refused, and what is accepted survives a round trip unchanged.
#![no_main]

use ferry_api::{CheckinRequest, EnrollRequest, EventBatch};
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};

fn round_trip<T: Serialize + DeserializeOwned>(body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(body) else { return };
    let once = serde_json::to_vec(&value).expect("an accepted body serializes");
    let again: T = serde_json::from_slice(&once).expect("a re-serialized body is accepted again");
    assert_eq!(serde_json::to_vec(&again).unwrap(), once);
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 3 {
        0 => round_trip::<EnrollRequest>(body),
        1 => round_trip::<CheckinRequest>(body),
        _ => round_trip::<EventBatch>(body),
    }
});
