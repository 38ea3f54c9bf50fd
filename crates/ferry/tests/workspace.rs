//! Properties of the workspace as a whole that keep building it cheap.

use std::collections::BTreeMap;
use std::process::Command;

/// Each package of the build of `packages`, with the features Cargo enables on it: `cargo tree`
/// resolves features exactly as `cargo build -p …` does, without compiling anything.
fn resolved_features(packages: &[&str]) -> BTreeMap<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["tree", "--offline", "-e", "normal,build", "--prefix", "none", "--format", "{p}|{f}"]);
    for package in packages {
        cmd.args(["-p", package]);
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
    assert!(out.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(package, features)| {
            (package.trim_end_matches(" (*)").to_owned(), features.trim_end_matches(" (*)").to_owned())
        })
        .collect()
}

/// `cargo run -p ferry` (the README's first step) and `cargo build -p ferry -p ferry-agent`
/// (its second) share every dependency build: no package they both use gets other features
/// when the agent is built too. Otherwise the second command recompiles that package,
/// everything that depends on it, and `ferry` itself.
#[test]
fn building_the_agent_too_changes_no_feature_of_ferrys_dependencies() {
    let alone = resolved_features(&["ferry"]);
    let with_agent = resolved_features(&["ferry", "ferry-agent"]);
    let differing: Vec<String> = alone
        .iter()
        .filter(|(package, features)| with_agent.get(*package) != Some(*features))
        .map(|(package, features)| {
            format!("{package}: [{features}] alone, [{}] with ferry-agent", with_agent[package.as_str()])
        })
        .collect();
    assert!(
        differing.is_empty(),
        "enable these features in ferry's own dependencies too (see crates/ferry/Cargo.toml):\n{}",
        differing.join("\n")
    );
}
