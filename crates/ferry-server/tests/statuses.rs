//! Error statuses are decided in one place: `error.rs` derives each from its error code, so
//! two routes can never answer the same code with different statuses. Route and trust modules
//! may name only the success statuses their contract defines.

use std::path::Path;

/// Success and redirection statuses a route may answer with.
const ALLOWED: &[&str] = &["OK", "CREATED", "NO_CONTENT", "PARTIAL_CONTENT", "NOT_MODIFIED"];

fn scan(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("StatusCode::") {
                rest = &rest[at + "StatusCode::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
                if !ALLOWED.contains(&name.as_str()) {
                    found.push(format!("{}:{}: StatusCode::{name}", path.display(), n + 1));
                }
            }
        }
    }
}

#[test]
fn no_route_or_trust_module_chooses_an_error_status() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    scan(&src.join("routes"), &mut found);
    scan(&src.join("trust"), &mut found);
    assert!(found.is_empty(), "error statuses outside error.rs (use an ErrorCode):\n{}", found.join("\n"));
}
