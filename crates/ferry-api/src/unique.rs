//! JSON objects whose keys must be unique. serde_json keeps the last of repeated keys without
//! a word, so `{"site":"a","site":"b"}` would report one value and silently drop the other;
//! the maps devices report are read with [`unique_keys`] instead, which refuses the repeat.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// Deserializes a map, refusing a key that appears twice (use with `deserialize_with`).
pub fn unique_keys<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord + fmt::Display,
    V: Deserialize<'de>,
{
    struct Unique<K, V>(PhantomData<(K, V)>);

    impl<'de, K, V> Visitor<'de> for Unique<K, V>
    where
        K: Deserialize<'de> + Ord + fmt::Display,
        V: Deserialize<'de>,
    {
        type Value = BTreeMap<K, V>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object with unique keys")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<K, V>()? {
                if out.contains_key(&key) {
                    return Err(A::Error::custom(format!("key \"{key}\" appears more than once; send each key once")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_map(Unique(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Report {
        #[serde(deserialize_with = "unique_keys")]
        attributes: BTreeMap<String, String>,
    }

    #[test]
    fn repeated_keys_are_refused() {
        let ok: Report = serde_json::from_str(r#"{"attributes":{"a":"1","b":"2"}}"#).unwrap();
        assert_eq!(ok.attributes.len(), 2);
        let e = serde_json::from_str::<Report>(r#"{"attributes":{"site":"a","site":"b"}}"#).unwrap_err();
        assert!(e.to_string().contains("\"site\" appears more than once"), "{e}");
    }
}
