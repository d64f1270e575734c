//! Machine checks for the invariants ARCHITECTURE.md states about this crate.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable source tree")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// `"23505"`-like literals: a quoted five-character code starting with a digit.
fn sqlstate_literals(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for start in 0..bytes.len().saturating_sub(6) {
        let window = &bytes[start..start + 7];
        let code = &window[1..6];
        if window[0] == b'"'
            && window[6] == b'"'
            && code[0].is_ascii_digit()
            && code
                .iter()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            found.push(String::from_utf8_lossy(code).into_owned());
        }
    }
    found
}

#[test]
fn only_the_db_crate_interprets_sqlstate_codes() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates dir").flatten() {
        if entry.file_name() == "db" {
            continue;
        }
        let mut files = Vec::new();
        let src = entry.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("readable file");
            for code in sqlstate_literals(&text) {
                offenders.push(format!("{}: {code}", file.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQLSTATE codes are classified only in crates/db/src/error.rs; found: {offenders:?}"
    );
}

#[test]
fn the_check_recognises_a_code() {
    assert_eq!(
        sqlstate_literals(r#"match c { "23505" => 1, "HS256" => 2, "5000" => 3 }"#),
        vec!["23505"]
    );
}
