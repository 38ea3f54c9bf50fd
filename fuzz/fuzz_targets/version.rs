//! Version strings: parsing never panics, a valid version prints as it was written, and the
//! order is total: antisymmetric, transitive, and equal only for identical strings.
#![no_main]

use std::cmp::Ordering;

use ferry_core::Version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let versions: Vec<Version> = text.split('\n').filter_map(|s| Version::new(s).ok()).collect();
    for (s, v) in text.split('\n').zip(text.split('\n').map(Version::new)) {
        if let Ok(v) = v {
            assert_eq!(v.as_str(), s);
        }
    }
    for a in &versions {
        for b in &versions {
            let ab = a.cmp(b);
            assert_eq!(ab, b.cmp(a).reverse(), "{a} vs {b}");
            assert_eq!(ab == Ordering::Equal, a.as_str() == b.as_str(), "{a} vs {b}");
            for c in &versions {
                if ab != Ordering::Greater && b.cmp(c) != Ordering::Greater {
                    assert_ne!(a.cmp(c), Ordering::Greater, "{a} <= {b} <= {c}");
                }
            }
        }
    }
});
