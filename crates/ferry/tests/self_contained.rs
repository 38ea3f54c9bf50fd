//! The repository stands on its own: no tracked file cites a document that is not in it (the
//! product texts the project started from, by name or by a relative path out of the
//! repository) or the requirement numbers of those texts (`R5.7`). The trust design is
//! `docs/trust.md`; the behaviour is described in the README, ARCHITECTURE.md and the code.

use std::process::Command;

/// This file, which has to spell the patterns out.
const THIS_FILE: &str = "crates/ferry/tests/self_contained.rs";

/// Strings no tracked file may contain.
const FORBIDDEN: [&str; 3] = ["TRUST.md", "SPEC.md", "../shared"];

/// The first requirement number in `line`: `R`, digits, `.`, a digit, with no letter, digit
/// or `_` just before the `R` (so that names such as `HDR1.2` do not count).
fn requirement_number(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if bytes[i] != b'R' || !word_start {
            return None;
        }
        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let dot = i + 1 + digits;
        let cited = digits > 0 && bytes.get(dot) == Some(&b'.') && bytes.get(dot + 1).is_some_and(u8::is_ascii_digit);
        cited.then(|| &line[i..=dot + 1])
    })
}

#[test]
fn no_tracked_file_cites_documents_outside_the_repository() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let listed = Command::new("git").args(["ls-files", "-z"]).current_dir(root).output().unwrap();
    assert!(listed.status.success(), "git ls-files failed: {}", String::from_utf8_lossy(&listed.stderr));
    let mut found = Vec::new();
    for path in listed.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path);
        if path == THIS_FILE {
            continue;
        }
        // Binary files and files deleted but not yet committed have nothing to cite.
        let Ok(text) = std::fs::read_to_string(format!("{root}/{path}")) else { continue };
        for (n, line) in text.lines().enumerate() {
            let cited = FORBIDDEN.iter().copied().find(|f| line.contains(f)).or_else(|| requirement_number(line));
            if let Some(cited) = cited {
                found.push(format!("{path}:{}: {cited}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/trust.md (or the README, ARCHITECTURE.md) instead of documents outside the \
         repository and their requirement numbers:\n{}",
        found.join("\n")
    );
}

#[test]
fn requirement_numbers_are_recognised_as_words_only() {
    assert_eq!(requirement_number("see R5.7 for"), Some("R5.7"));
    assert_eq!(requirement_number("(SPEC R10.2, R3)"), Some("R10.2"));
    assert_eq!(requirement_number("R1.3"), Some("R1.3"));
    for clean in ["HDR1.2", "R.5", "R5", "R5.x", "r5.7", "VERSION_R2.1", "Release 1.0"] {
        assert_eq!(requirement_number(clean), None, "{clean}");
    }
}
