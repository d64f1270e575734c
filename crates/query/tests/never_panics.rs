//! The parser meets arbitrary input without panicking: a deterministic random sweep over
//! the characters the grammar gives meaning to (a stand-in until the cargo-fuzz target,
//! which needs a nightly toolchain, runs in CI).

use galley_query::{parse_query, parse_select};

const ALPHABET: &[&str] = &[
    "a", "b", "id", "(", ")", ",", ".", ":", "::", "!", "\"", "\\", "->", "->>", "-", "*", "{",
    "}", "not", "eq", "in", "is", "or", "and", "null", "any", "all", "fts", "...", " ", "0", "9",
    "é", "\u{0}", "inner", "text", "()", "\u{a0}", "🦀",
];

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn text(&mut self) -> String {
        let len = (self.next() % 24) as usize;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

#[test]
fn arbitrary_query_strings_parse_or_fail_cleanly() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys = [
        "select",
        "order",
        "limit",
        "offset",
        "or",
        "and",
        "not.or",
        "rel.and",
        "columns",
        "on_conflict",
    ];
    for _ in 0..50_000 {
        let key = if rng.next().is_multiple_of(3) {
            rng.text()
        } else {
            keys[(rng.next() % keys.len() as u64) as usize].to_owned()
        };
        let value = rng.text();
        let rpc_read = rng.next().is_multiple_of(2);
        let _ = parse_query(&[(key, value.clone())], rpc_read);
        let _ = parse_select(&value);
    }
}
