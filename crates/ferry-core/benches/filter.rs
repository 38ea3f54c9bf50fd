//! How long evaluating a typical dynamic-group filter against one device takes; a check-in
//! evaluates every dynamic group's filter once. Run with `cargo bench -p ferry-core`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ferry_core::filter::{DeviceView, Filter};
use ferry_core::{ProductName, Version};

const TYPICAL: &str = r#"platform = "linux-x86_64" and attr.site = "osaka" and version(vpn-client) < "5.0""#;
const WIDER: &str = r#"(id ~ "osaka-*" or attr.site in ("osaka", "kobe", "kyoto")) and not config(vpn-client) exists and last_contact_age < 7d"#;

fn bench(c: &mut Criterion) {
    let attributes: BTreeMap<String, String> = (0..16)
        .map(|i| (format!("attr{i}"), format!("value {i}")))
        .chain([("site".to_owned(), "osaka".to_owned())])
        .collect();
    let installed: BTreeMap<ProductName, Version> = (0..8)
        .map(|i| (ProductName::new(format!("product-{i}")).unwrap(), Version::new(format!("{i}.2.3")).unwrap()))
        .chain([(ProductName::new("vpn-client").unwrap(), Version::new("4.9.12").unwrap())])
        .collect();
    let configs = BTreeMap::new();
    let device = DeviceView {
        id: "osaka-000042",
        platform: Some("linux-x86_64"),
        attributes: &attributes,
        installed: &installed,
        configs: &configs,
        last_contact: Some(1_800_000_000 - 3600),
    };
    for (name, text) in [("typical", TYPICAL), ("wider", WIDER)] {
        let filter = Filter::parse(text).unwrap();
        assert!(filter.matches(&device, 1_800_000_000), "{name} should match");
        c.bench_function(&format!("filter_matches_{name}"), |b| {
            b.iter(|| black_box(&filter).matches(black_box(&device), 1_800_000_000))
        });
        c.bench_function(&format!("filter_parse_{name}"), |b| b.iter(|| Filter::parse(black_box(text))));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
