//! Status events: what agents report about each release's progress on their device.

use serde::{Deserialize, Serialize};

use crate::catalogue::ReleaseId;
use crate::device::DeviceState;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A status event as the agent sends it. Unknown fields are refused, as in every request body:
/// a misspelt field must not be dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Per-device sequence number chosen by the agent, strictly increasing; the idempotency key.
    pub seq: i64,
    /// The release it concerns.
    pub release: ReleaseId,
    /// The new state.
    pub state: DeviceState,
    /// Bytes downloaded, or percent, depending on the state.
    pub progress: Option<i64>,
    /// Machine-readable error code for failures.
    pub error_code: Option<String>,
    /// Human message or log excerpt.
    pub message: Option<String>,
    /// Unix seconds on the device's clock.
    pub at: i64,
}

/// A stored status event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Event {
    /// What the agent sent.
    #[serde(flatten)]
    pub event: NewEvent,
    /// Unix seconds on the server's clock.
    pub received_at: i64,
}

/// How many events of a batch were new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AppendOutcome {
    /// Newly stored.
    pub stored: u32,
    /// Already stored earlier (retries).
    pub duplicates: u32,
}

/// The latest known state of one release on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReleaseState {
    /// The release.
    pub release: ReleaseId,
    /// Its state.
    pub state: DeviceState,
    /// Progress of the latest event.
    pub progress: Option<i64>,
    /// Error code of the latest event.
    pub error_code: Option<String>,
    /// Message of the latest event.
    pub message: Option<String>,
    /// Unix seconds (server clock) of the latest event.
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_refuse_unknown_fields_and_stored_events_still_parse() {
        let sent =
            r#"{"seq":1,"release":2,"state":"downloading","progress":null,"error_code":null,"message":null,"at":3}"#;
        let event: NewEvent = serde_json::from_str(sent).unwrap();
        let stored = serde_json::to_string(&Event { event, received_at: 4 }).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&stored).unwrap().received_at, 4);
        let typo = sent.replace("\"at\":3", "\"at\":3,\"mesage\":\"x\"");
        let e = serde_json::from_str::<NewEvent>(&typo).unwrap_err();
        assert!(e.to_string().contains("mesage"), "{e}");
    }
}
