//! Version strings and their total order.
//!
//! A version is `[v]CORE[-PRERELEASE][+BUILD][ LABEL]`:
//! - `CORE` is dot-separated components; each component is a run of digits and letters
//!   (`5`, `04`, `2a`). Runs of digits compare as numbers of any length (`04` = `4`, so
//!   `5.0.04.0300` > `4.6.1.1`), runs of letters compare as ASCII case-insensitively, and a
//!   letter run sorts before a digit run (`1.beta` < `1.0`). Missing trailing components count
//!   as zero (`1.0` and `1.0.0` rank together).
//! - `PRERELEASE` follows semver: a version with one ranks below the same core without one;
//!   identifiers compare numerically when both are numeric, numeric below alphanumeric, and a
//!   shorter list below a longer one with the same prefix (`1.0.0-alpha` < `1.0.0-alpha.1` <
//!   `1.0.0-beta` < `1.0.0-rc.1` < `1.0.0`).
//! - `BUILD` metadata and a trailing `LABEL` after a space (as in `4.0 (Rel)`) do not change
//!   rank.
//!
//! Versions that rank together are still ordered by their exact text, so the order is total
//! and agrees with equality: two versions are equal only when their strings are identical.

use std::cmp::Ordering;
use std::fmt;

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Empty string.
    #[error("version must not be empty")]
    Empty,
    /// Longer than [`Version::MAX_LEN`].
    #[error("version is {0} characters long; the limit is 64")]
    TooLong(usize),
    /// Contains a character outside the allowed set.
    #[error("version {0:?} contains {1:?}; use letters, digits and . - + _ ~, with an optional label after a space such as \"4.0 (Rel)\"")]
    BadChar(String, char),
    /// Does not start with a digit (after an optional `v`).
    #[error("version {0:?} must start with a digit (an optional leading 'v' is allowed)")]
    BadStart(String),
    /// An empty dot-separated component.
    #[error("version {0:?} has an empty component; remove the doubled or trailing '.'")]
    EmptyComponent(String),
}

/// A validated version string. Ordered as described in the module documentation.
#[derive(Clone, serde::Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version(String);

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token<'a> {
    // Declaration order is rank order: letters sort before digits.
    Alpha(&'a str),
    Num(&'a str),
}

struct Parts<'a> {
    core: &'a str,
    pre: Option<&'a str>,
}

impl Version {
    /// The longest version string accepted.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps a version string.
    pub fn new(value: impl Into<String>) -> Result<Self, VersionError> {
        let value = value.into();
        validate(&value)?;
        Ok(Self(value))
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> Parts<'_> {
        let s = self.0.strip_prefix(['v', 'V']).unwrap_or(&self.0);
        let s = s.split(' ').next().unwrap_or(s);
        let s = s.split('+').next().unwrap_or(s);
        match s.split_once('-') {
            Some((core, pre)) => Parts { core, pre: Some(pre) },
            None => Parts { core: s, pre: None },
        }
    }

    /// Compares by rank only, ignoring build metadata, labels and spelling differences such as
    /// leading zeros. [`Ord`] breaks ties of this comparison by the exact text.
    pub fn cmp_rank(&self, other: &Self) -> Ordering {
        let (a, b) = (self.parts(), other.parts());
        cmp_core(a.core, b.core).then_with(|| match (a.pre, b.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => cmp_pre(x, y),
        })
    }

    /// A canonical spelling of the version's rank: two versions have the same key exactly
    /// when [`Version::cmp_rank`] finds them equal (`5`, `5.0`, `v5.00` and `5.0 (Rel)` all
    /// give `5`). Stores keep it under a unique index so that versions that compare equal
    /// cannot be published twice, even by concurrent requests.
    ///
    /// Numbers lose their leading zeros, letters are lower-cased, trailing zero components
    /// are dropped (missing components count as zero), labels and build metadata are left
    /// out; the pre-release keeps its identifiers (numeric ones without leading zeros), as
    /// they compare exactly.
    pub fn rank_key(&self) -> String {
        let parts = self.parts();
        let mut components: Vec<String> = parts
            .core
            .split('.')
            .map(|c| {
                tokens(c)
                    .map(|t| match t {
                        Token::Num(n) => canonical_number(n).to_owned(),
                        Token::Alpha(a) => a.to_ascii_lowercase(),
                    })
                    .collect()
            })
            .collect();
        while components.len() > 1 && components.last().is_some_and(|c| c == "0") {
            components.pop();
        }
        let mut key = components.join(".");
        if let Some(pre) = parts.pre {
            key.push('-');
            let ids: Vec<&str> =
                pre.split('.')
                    .map(|id| {
                        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
                            canonical_number(id)
                        } else {
                            id
                        }
                    })
                    .collect();
            key.push_str(&ids.join("."));
        }
        key
    }
}

/// A digit string without its leading zeros (`"0"` for zero).
fn canonical_number(n: &str) -> &str {
    let trimmed = n.trim_start_matches('0');
    if trimmed.is_empty() {
        "0"
    } else {
        trimmed
    }
}

fn validate(s: &str) -> Result<(), VersionError> {
    if s.is_empty() {
        return Err(VersionError::Empty);
    }
    if s.len() > Version::MAX_LEN {
        return Err(VersionError::TooLong(s.chars().count()));
    }
    let (head, label) = match s.split_once(' ') {
        Some((h, l)) => (h, Some(l)),
        None => (s, None),
    };
    if let Some(ch) = head.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | '~'))) {
        return Err(VersionError::BadChar(s.to_owned(), ch));
    }
    if let Some(ch) = label.and_then(|l| {
        l.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ' | '(' | ')')))
    }) {
        return Err(VersionError::BadChar(s.to_owned(), ch));
    }
    let body = head.strip_prefix(['v', 'V']).unwrap_or(head);
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(VersionError::BadStart(s.to_owned()));
    }
    let core = body.split(['+', '-']).next().unwrap_or(body);
    if core.split('.').any(str::is_empty) {
        return Err(VersionError::EmptyComponent(s.to_owned()));
    }
    Ok(())
}

fn tokens(component: &str) -> impl Iterator<Item = Token<'_>> {
    let mut rest = component;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digit = first.is_ascii_digit();
        let end = rest.find(|c: char| c.is_ascii_digit() != digit).unwrap_or(rest.len());
        let (tok, tail) = rest.split_at(end);
        rest = tail;
        Some(if digit { Token::Num(tok) } else { Token::Alpha(tok) })
    })
}

/// Compares two digit strings as numbers of any length.
fn cmp_numeric(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn cmp_token(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match (a, b) {
        (Token::Num(x), Token::Num(y)) => cmp_numeric(x, y),
        (Token::Alpha(x), Token::Alpha(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        (Token::Alpha(_), Token::Num(_)) => Ordering::Less,
        (Token::Num(_), Token::Alpha(_)) => Ordering::Greater,
    }
}

fn cmp_component(a: &str, b: &str) -> Ordering {
    let mut ta = tokens(a);
    let mut tb = tokens(b);
    loop {
        match (ta.next(), tb.next()) {
            (None, None) => return Ordering::Equal,
            // "2" vs "2a": the bare number ranks first, as "2" < "2.1".
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match cmp_token(&x, &y) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

fn cmp_core(a: &str, b: &str) -> Ordering {
    let mut ca = a.split('.');
    let mut cb = b.split('.');
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => match cmp_component(x.unwrap_or("0"), y.unwrap_or("0")) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        let o = match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (is_num(x), is_num(y)) {
                (true, true) => cmp_numeric(x, y),
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => x.cmp(y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_rank(other).then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({:?})", self.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::new(s).unwrap()
    }

    #[test]
    fn leading_zeros_compare_numerically() {
        assert!(v("5.0.04.0300") > v("4.6.1.1"));
        assert!(v("4.6.1.10") > v("4.6.1.9"));
        assert!(v("1.010") > v("1.9"));
        assert_eq!(v("1.04").cmp_rank(&v("1.4")), Ordering::Equal);
        assert_ne!(v("1.04"), v("1.4"));
    }

    #[test]
    fn numbers_of_any_length() {
        assert!(v("1.99999999999999999999999999") > v("1.99999999999999999999999998"));
        assert!(v("100000000000000000000000000") > v("99999999999999999999999999"));
    }

    #[test]
    fn semver_precedence_example() {
        let order = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
        ];
        for pair in order.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn labels_and_build_metadata_do_not_change_rank() {
        assert_eq!(v("4.0 (Rel)").cmp_rank(&v("4.0")), Ordering::Equal);
        assert!(v("4.0 (Rel)") < v("4.1"));
        assert!(v("4.0.1 (Rel)") > v("4.0 (Beta)"));
        assert_eq!(v("1.2.3+build.7").cmp_rank(&v("1.2.3")), Ordering::Equal);
        assert_eq!(v("v2.1").cmp_rank(&v("2.1")), Ordering::Equal);
    }

    #[test]
    fn missing_components_count_as_zero() {
        assert_eq!(v("1.0").cmp_rank(&v("1.0.0")), Ordering::Equal);
        assert!(v("1.0") < v("1.0.1"));
        assert!(v("2") > v("1.9.9"));
    }

    #[test]
    fn letters_inside_components() {
        assert!(v("1.2a") > v("1.2"));
        assert!(v("1.2b") > v("1.2a"));
        assert!(v("1.3") > v("1.2b"));
    }

    #[test]
    fn versions_that_compare_equal_share_a_rank_key() {
        for same in ["5", "5.0", "5.00", "5.0 (Rel)", "v5.0.0", "5+build.7", "05"] {
            assert_eq!(v(same).rank_key(), "5", "{same}");
        }
        assert_eq!(v("1.0-RC.01").rank_key(), "1-RC.1");
        assert_eq!(v("2A.0").rank_key(), "2a");
        assert_ne!(v("1.0-rc").rank_key(), v("1.0-RC").rank_key(), "pre-release identifiers compare exactly");
        assert_ne!(v("1.0-").rank_key(), v("1.0").rank_key());
        assert_ne!(v("5.0.1").rank_key(), v("5").rank_key());
    }

    #[test]
    fn refuses_bad_versions() {
        for bad in ["", "abc", "1..2", "1.2.", "1/2", "../1", "1.0\n", "1.0 (a/b)", "-1"] {
            assert!(Version::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Version::new("1".repeat(65)).is_err());
    }

    fn arb_version() -> impl Strategy<Value = Version> {
        let comp = prop_oneof!["[0-9]{1,3}", "0{0,2}[0-9]{1,2}", "[0-9]{1,2}[a-c]{0,2}",];
        (
            prop::collection::vec(comp, 1..5),
            prop::option::of(prop::collection::vec(prop_oneof!["[0-9]{1,2}", "(alpha|beta|rc)"], 1..3)),
            prop::option::of(prop_oneof![Just(" (Rel)"), Just(" (Beta)")]),
            any::<bool>(),
        )
            .prop_map(|(core, pre, label, vee)| {
                let mut s = String::new();
                if vee {
                    s.push('v');
                }
                s.push_str(&core.join("."));
                if let Some(pre) = pre {
                    s.push('-');
                    s.push_str(&pre.join("."));
                }
                if let Some(label) = label {
                    s.push_str(label);
                }
                Version::new(s).unwrap()
            })
    }

    proptest! {
        #[test]
        fn order_is_total_and_consistent_with_eq(a in arb_version(), b in arb_version()) {
            let ab = a.cmp(&b);
            prop_assert_eq!(ab, b.cmp(&a).reverse());
            prop_assert_eq!(ab == Ordering::Equal, a == b);
            prop_assert_eq!(a == b, a.as_str() == b.as_str());
        }

        #[test]
        fn rank_key_is_equal_exactly_when_the_rank_is(a in arb_version(), b in arb_version()) {
            prop_assert_eq!(a.rank_key() == b.rank_key(), a.cmp_rank(&b) == Ordering::Equal, "{:?} {:?}", a, b);
        }

        #[test]
        fn rank_key_ignores_spelling(nums in prop::collection::vec(0u32..1_000, 1..4), zeros in 0usize..3, extra in 0usize..3) {
            let plain = nums.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let padded = nums.iter().map(|n| format!("{}{n}", "0".repeat(zeros))).collect::<Vec<_>>().join(".");
            let spelled = format!("v{padded}{} (Rel)", ".0".repeat(extra));
            prop_assert_eq!(v(&plain).rank_key(), v(&spelled).rank_key());
        }

        #[test]
        fn order_is_transitive(a in arb_version(), b in arb_version(), c in arb_version()) {
            let mut xs = [a, b, c];
            xs.sort();
            prop_assert!(xs[0] <= xs[1] && xs[1] <= xs[2] && xs[0] <= xs[2]);
            prop_assert!(xs[0].cmp_rank(&xs[2]) != Ordering::Greater);
        }

        #[test]
        fn leading_zeros_never_change_rank(nums in prop::collection::vec(0u32..10_000, 1..6), zeros in 0usize..4) {
            let plain = nums.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let padded = nums.iter().map(|n| format!("{}{n}", "0".repeat(zeros))).collect::<Vec<_>>().join(".");
            prop_assert_eq!(v(&plain).cmp_rank(&v(&padded)), Ordering::Equal);
        }

        #[test]
        fn dotted_numerics_order_like_integer_tuples(a in prop::collection::vec(0u64..1_000_000, 4), b in prop::collection::vec(0u64..1_000_000, 4)) {
            let s = |x: &Vec<u64>| x.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            prop_assert_eq!(v(&s(&a)).cmp_rank(&v(&s(&b))), a.cmp(&b));
        }

        #[test]
        fn a_prerelease_ranks_below_its_release(core in "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}", pre in "(alpha|beta|rc)(\\.[0-9]{1,2})?") {
            let with_pre = format!("{core}-{pre}");
            prop_assert!(v(&with_pre) < v(&core));
        }
    }
}
