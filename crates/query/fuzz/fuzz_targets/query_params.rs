//! Arbitrary bytes as a query string: split into pairs the way the gateway will, then
//! parsed. The parser may refuse anything; it may not panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.to_owned(), String::new()),
        })
        .collect();
    let _ = galley_query::parse_query(&pairs);
    let _ = galley_query::parse_select(text);
});
