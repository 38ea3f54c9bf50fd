//! OLPC canonical JSON, the byte form TUF signs.

use serde::Serialize;

use crate::error::{Result, TufError};

/// The canonical JSON bytes of `value`: keys sorted, no insignificant whitespace, only `"` and
/// `\` escaped. TUF metadata holds no floating-point numbers; one makes this fail.
pub fn canonical<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).map_err(|e| TufError::malformed("metadata", format!("cannot canonicalise: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, 2, {"z": true, "a": null}], "a": "x\"y\\z", "é": "ü"});
        assert_eq!(
            String::from_utf8(canonical(&v).unwrap()).unwrap(),
            r#"{"a":"x\"y\\z","b":[1,2,{"a":null,"z":true}],"é":"ü"}"#
        );
    }

    #[test]
    fn refuses_floats() {
        assert!(canonical(&json!({"a": 1.5})).is_err());
    }
}
