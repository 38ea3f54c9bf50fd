use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_800_000_000;

struct Fixture {
    id: String,
    platform: Option<String>,
    attributes: BTreeMap<String, String>,
    installed: BTreeMap<ProductName, Version>,
    configs: BTreeMap<ProductName, Version>,
    last_contact: Option<i64>,
}

impl Fixture {
    fn osaka() -> Self {
        Self {
            id: "osaka-0042".to_owned(),
            platform: Some("linux-x86_64".to_owned()),
            attributes: BTreeMap::from([
                ("site".to_owned(), "osaka".to_owned()),
                ("rack id".to_owned(), "r 7".to_owned()),
            ]),
            installed: BTreeMap::from([(product("vpn-client"), version("4.2.1"))]),
            configs: BTreeMap::from([(product("vpn-client"), version("12"))]),
            last_contact: Some(NOW - 2 * DAY),
        }
    }

    fn view(&self) -> DeviceView<'_> {
        DeviceView {
            id: &self.id,
            platform: self.platform.as_deref(),
            attributes: &self.attributes,
            installed: &self.installed,
            configs: &self.configs,
            last_contact: self.last_contact,
        }
    }

    fn matches(&self, filter: &str) -> bool {
        Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")).matches(&self.view(), NOW)
    }
}

fn product(s: &str) -> ProductName {
    ProductName::new(s).unwrap()
}

fn version(s: &str) -> Version {
    Version::new(s).unwrap()
}

fn err(filter: &str) -> FilterError {
    Filter::parse(filter).expect_err(filter)
}

#[test]
fn the_documented_example_parses_and_matches() {
    let d = Fixture::osaka();
    let f = r#"platform = "linux-x86_64" and attr.site = "osaka" and version(vpn-client) < "5.0""#;
    assert!(d.matches(f));
    let mut newer = Fixture::osaka();
    newer.installed.insert(product("vpn-client"), version("5.0.1"));
    assert!(!newer.matches(f));
}

#[test]
fn text_operators() {
    let d = Fixture::osaka();
    assert!(d.matches(r#"platform = "linux-x86_64""#));
    assert!(!d.matches(r#"platform != "linux-x86_64""#));
    assert!(d.matches(r#"platform in ("windows-x86_64", "linux-x86_64")"#));
    assert!(!d.matches(r#"platform in ("windows-x86_64")"#));
    assert!(d.matches(r#"id = "osaka-0042""#));
    assert!(d.matches(r#"id ~ "osaka-*""#));
    assert!(d.matches(r#"id ~ "osaka-00??""#));
    assert!(!d.matches(r#"id ~ "osaka-0?""#));
    assert!(!d.matches(r#"id ~ "kyoto-*""#));
    assert!(d.matches(r#"id ~ "*42""#));
    assert!(d.matches(r#"id ~ "*a*0*2""#));
    assert!(d.matches(r#"attr."rack id" = "r 7""#));
    assert!(d.matches(r#"attr.site exists and attr.site is set"#));
    assert!(!d.matches(r#"attr.floor exists"#));
    assert!(d.matches(r#"not attr.floor exists"#));
}

#[test]
fn version_operators_compare_by_rank() {
    let d = Fixture::osaka();
    for (f, want) in [
        (r#"version(vpn-client) = "4.2.1""#, true),
        (r#"version(vpn-client) = "v4.2.1.0""#, true),
        (r#"version(vpn-client) != "4.2.1""#, false),
        (r#"version(vpn-client) < "4.10""#, true),
        (r#"version(vpn-client) <= "4.2.1""#, true),
        (r#"version(vpn-client) > "4.2""#, true),
        (r#"version(vpn-client) >= "4.3""#, false),
        (r#"version(vpn-client) in ("1", "4.2.1")"#, true),
        (r#"version(vpn-client) exists"#, true),
        (r#"config(vpn-client) > "9""#, true),
        (r#"config(vpn-client) = "12""#, true),
    ] {
        assert_eq!(d.matches(f), want, "{f}");
    }
}

#[test]
fn a_missing_value_satisfies_no_comparison() {
    let mut d = Fixture::osaka();
    d.platform = None;
    d.last_contact = None;
    for f in [
        r#"version(other) < "5.0""#,
        r#"version(other) != "5.0""#,
        r#"config(other) >= "0""#,
        r#"platform != "x""#,
        r#"platform ~ "*""#,
        r#"attr.floor != "3""#,
        r#"last_contact_age > 0s"#,
        r#"last_contact_age < 1000w"#,
        r#"last_contact_age exists"#,
    ] {
        assert!(!d.matches(f), "{f}");
    }
    assert!(d.matches(r#"not version(other) exists"#));
}

#[test]
fn last_contact_age_compares_with_a_duration() {
    let d = Fixture::osaka(); // seen two days ago
    assert!(d.matches("last_contact_age < 7d"));
    assert!(d.matches("last_contact_age > 1d"));
    assert!(d.matches("last_contact_age >= 48h"));
    assert!(d.matches("last_contact_age <= 2d"));
    assert!(d.matches("last_contact_age = 172800s"));
    assert!(!d.matches("last_contact_age != 2880m"));
    assert!(!d.matches("last_contact_age > 1w"));
    let mut future = Fixture::osaka();
    future.last_contact = Some(NOW + 10);
    assert!(future.matches("last_contact_age = 0s"));
}

#[test]
fn precedence_not_then_and_then_or() {
    let d = Fixture::osaka();
    // `a or b and c` is `a or (b and c)`.
    assert_eq!(
        Filter::parse(r#"id = "x" or platform = "y" and attr.site = "z""#).unwrap().to_string(),
        r#"id = "x" or (platform = "y" and attr.site = "z")"#
    );
    assert!(d.matches(r#"id = "osaka-0042" or platform = "y" and attr.site = "z""#));
    assert!(!d.matches(r#"(id = "osaka-0042" or platform = "y") and attr.site = "z""#));
    assert!(!d.matches(r#"not id = "osaka-0042" or platform = "y""#));
    assert!(d.matches(r#"not (id = "x" or platform = "y")"#));
    assert!(d.matches(r#"not not id exists"#));
}

#[test]
fn strings_take_escapes() {
    let mut d = Fixture::osaka();
    d.attributes.insert("note".to_owned(), "say \"hi\"\\\n".to_owned());
    assert!(d.matches(r#"attr.note = "say \"hi\"\\\n""#));
    let f = Filter::parse(r#"attr.note = "say \"hi\"\\\n\t\r""#).unwrap();
    assert_eq!(Filter::parse(&f.to_string()).unwrap(), f);
}

#[test]
fn errors_name_the_column_what_was_found_and_what_was_expected() {
    let e = err(r#"platform = "linux-x86_64" and attr.site "osaka""#);
    assert_eq!((e.offset, e.column), (40, 41));
    assert_eq!(e.found, r#""osaka""#);
    assert!(e.to_string().starts_with("at column 41: expected a comparison operator"), "{e}");

    let e = err("platform = ");
    assert_eq!((e.column, e.found.as_str()), (12, "end of filter"));
    assert!(e.expected.contains("double quotes"), "{e}");

    let e = err(r#"platform < "a""#);
    assert_eq!(e.column, 10);
    assert!(e.expected.contains("= != in ~"), "{e}");

    let e = err(r#"version(vpn-client) < "not a version!""#);
    assert!(e.expected.starts_with("a version"), "{e}");
    assert_eq!(e.column, 23);

    let e = err(r#"version(-x) exists"#);
    assert!(e.expected.starts_with("a product name"), "{e}");

    let e = err(r#"last_contact_age < 7 days"#);
    assert!(e.expected.contains("duration"), "{e}");
    let e = err(r#"last_contact_age < "7d""#);
    assert!(e.expected.contains("duration"), "{e}");
    let e = err(r#"last_contact_age < 99999999999999999999w"#);
    assert!(e.expected.contains("duration"), "{e}");

    let e = err(r#"colour = "red""#);
    assert_eq!(e.column, 1);
    assert!(e.expected.starts_with("a field"), "{e}");

    let e = err(r#"(id exists"#);
    assert_eq!(e.found, "end of filter");
    assert!(e.expected.contains("`)`"), "{e}");

    let e = err(r#"id exists id exists"#);
    assert_eq!(e.column, 11);

    let e = err(r#"id = "open"#);
    assert!(e.expected.contains("closing"), "{e}");

    let e = err(r#"id = "a\q""#);
    assert!(e.expected.contains("escape"), "{e}");

    let e = err(r#"id = "a" & platform exists"#);
    assert_eq!((e.column, e.found.as_str()), (10, "\"&\""));

    let e = err(r#"id is "x""#);
    assert!(e.expected.contains("set"), "{e}");

    let e = err("");
    assert_eq!(e.found, "end of filter");

    // Columns count characters, offsets bytes.
    let e = err(r#"attr.x = "é" oops"#);
    assert_eq!((e.offset, e.column), (14, 14));
}

#[test]
fn caps_on_length_depth_and_terms() {
    let long = format!(r#"id = "{}""#, "x".repeat(MAX_LEN));
    let e = err(&long);
    assert!(e.expected.contains("4096 bytes"), "{e}");

    let deep_ok = format!("{}id exists{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(Filter::parse(&deep_ok).is_ok());
    let deep = format!("{}id exists{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    let e = err(&deep);
    assert!(e.expected.contains("levels of nesting"), "{e}");
    assert_eq!(e.column, MAX_DEPTH + 1);
    let nots = format!("{}id exists", "not ".repeat(MAX_DEPTH + 1));
    assert!(err(&nots).expected.contains("levels of nesting"));

    let many = vec!["id exists"; MAX_TERMS].join(" or ");
    assert!(Filter::parse(&many).is_ok());
    let too_many = vec!["id exists"; MAX_TERMS + 1].join(" or ");
    assert!(err(&too_many).expected.contains("256 tests"));
}

#[test]
fn display_is_canonical() {
    for (input, canonical) in [
        ("platform=\"a\"AND", ""),
        ("  id   ~\"x*\"  ", r#"id ~ "x*""#),
        ("attr.site is set", "attr.site exists"),
        ("last_contact_age > 720h", "last_contact_age > 30d"),
        ("last_contact_age > 14d", "last_contact_age > 2w"),
        ("last_contact_age > 90s", "last_contact_age > 90s"),
        ("((id exists))", "id exists"),
        ("not (not id exists)", "not not id exists"),
        (r#"version(a) in ("1","2")"#, r#"version(a) in ("1", "2")"#),
    ] {
        match Filter::parse(input) {
            Ok(f) => assert_eq!(f.to_string(), canonical),
            Err(_) => assert!(canonical.is_empty(), "{input} should parse"),
        }
    }
}

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a-z*?\" \\\\]{0,8}"]
}

fn arb_test() -> impl Strategy<Value = Test> {
    let version = "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}(-rc[0-9])?".prop_map(|s| Value::Version(Version::new(s).unwrap()));
    let product = "[a-z][a-z0-9-]{0,10}".prop_map(|s| ProductName::new(s).unwrap());
    let cmp = prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge)
    ];
    let eq = prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Ne)];
    let text_field = prop_oneof![
        Just(Field::Id),
        Just(Field::Platform),
        "[a-z_][a-z0-9_.-]{0,8}".prop_map(Field::Attr),
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()).prop_map(Field::Attr),
    ];
    let text_op = prop_oneof![
        (eq, arb_text()).prop_map(|(o, v)| Op::Cmp(o, Value::Text(v))),
        proptest::collection::vec(arb_text().prop_map(Value::Text), 1..4).prop_map(Op::In),
        arb_text().prop_map(Op::Glob),
        Just(Op::Exists),
    ];
    let version_field = prop_oneof![product.clone().prop_map(Field::Version), product.prop_map(Field::Config)];
    let version_op = prop_oneof![
        (cmp.clone(), version.clone()).prop_map(|(o, v)| Op::Cmp(o, v)),
        proptest::collection::vec(version, 1..4).prop_map(Op::In),
        Just(Op::Exists),
    ];
    let age_op = prop_oneof![(cmp, 0u64..100_000_000).prop_map(|(o, s)| Op::Cmp(o, Value::Age(s))), Just(Op::Exists)];
    prop_oneof![
        (text_field, text_op).prop_map(|(field, op)| Test { field, op }),
        (version_field, version_op).prop_map(|(field, op)| Test { field, op }),
        age_op.prop_map(|op| Test { field: Field::LastContactAge, op }),
    ]
}

fn arb_filter() -> impl Strategy<Value = Filter> {
    arb_test().prop_map(Filter::Test).prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #[test]
    fn display_parses_back_to_the_same_filter(filter in arb_filter()) {
        let text = filter.to_string();
        prop_assume!(text.len() <= MAX_LEN);
        let parsed = Filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(parsed, filter);
    }

    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = Filter::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_filter_like_text(
        parts in proptest::collection::vec(prop_oneof![
            Just("id"), Just("platform"), Just("attr.x"), Just("attr."), Just("version(a)"), Just("config("),
            Just("last_contact_age"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"), Just("="),
            Just("!="), Just("<"), Just(">="), Just("~"), Just("in"), Just(","), Just("exists"), Just("is"),
            Just("\"x\""), Just("\"1.0\""), Just("7d"), Just("\""), Just("\\"), Just("é"),
        ], 0..24)
    ) {
        let text = parts.join(" ");
        if let Err(e) = Filter::parse(&text) {
            prop_assert!(e.offset <= text.len());
            prop_assert!(text.is_char_boundary(e.offset));
        }
    }

    #[test]
    fn glob_star_matches_any_text(text in any::<String>(), prefix in "[a-z]{0,3}") {
        prop_assert!(glob("*", &text));
        prop_assert_eq!(glob(&format!("{prefix}*"), &text), text.starts_with(&prefix));
        prop_assert!(glob(&text.replace(['*', '?'], "?"), &text));
    }
}
