//! How long `parse_query` takes over a few query strings, from the plainest (which the
//! shortcuts read) to ones only the full grammar reads. Run with
//! `cargo run --release -p galley-query --example parse_bench`; the numbers go in the
//! issue note, side by side with the same example built from the commit compared with.

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// A benchmark reports on standard output.
#[allow(clippy::print_stdout)]
fn main() {
    let queries = [
        (
            "by id",
            pairs(&[("select", "id,name,price"), ("id", "eq.42")]),
        ),
        (
            "page",
            pairs(&[("select", "*"), ("order", "id.desc"), ("limit", "20")]),
        ),
        (
            "embed, path, or",
            pairs(&[
                ("select", "id,title,authors(name,country:meta->>country)"),
                ("price", "gte.10"),
                ("price", "lt.100"),
                ("or", "(stock.eq.0,tags.cs.{sale})"),
            ]),
        ),
        (
            "full grammar",
            pairs(&[
                (
                    "select",
                    "id,total:amount.sum(),price::text,authors!inner(name)",
                ),
                ("name", "not.ilike.*ann*"),
                ("id", "in.(1,2,3)"),
                ("and", "(a.gt.1,or(b.is.null,c.eq.\"x,y\"))"),
            ]),
        ),
    ];
    for (name, query) in &queries {
        let n = 200_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                galley_query::parse_query(std::hint::black_box(query), false).expect("parses"),
            );
        }
        let each = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        println!("{name:>16}: {each:.2} µs");
    }
}
