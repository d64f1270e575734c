//! PostgREST's "Perhaps you meant …" hints: the closest of some names to a name that
//! matched none, scored as the fuzzyset library PostgREST uses scores it. A name is
//! lower-cased; its n-grams (of the name stripped to letters, digits, spaces and commas,
//! between hyphens) give a cosine similarity to each candidate, trigrams first and bigrams
//! if no candidate shares a trigram; the best 50 are scored again by normalised
//! Levenshtein distance, and those at or above the minimum score count, best first.

use std::collections::HashMap;

/// The candidates at least `min_score` alike to `query`, best first, with their scores.
/// An exact match, ignoring case, is the only answer, with 1.
pub(super) fn matches<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    query: &str,
    min_score: f64,
) -> Vec<(f64, &'a str)> {
    // No name is this long (PostgreSQL's are 63 bytes, argument lists a few dozen): a
    // long query gets no hint rather than costing its length squared.
    if query.len() > 256 {
        return Vec::new();
    }
    let key = query.to_lowercase();
    // Each candidate once by its lower-cased form, the first of a kind kept.
    let mut entries: Vec<(String, &'a str)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for candidate in candidates {
        let lower = candidate.to_lowercase();
        if lower == key {
            return vec![(1.0, candidate)];
        }
        if seen.insert(lower.clone()) {
            entries.push((lower, candidate));
        }
    }
    for size in [3, 2] {
        let wanted = grams(&key, size);
        let wanted_norm = norm(&wanted);
        let mut scored: Vec<(f64, usize)> = entries
            .iter()
            .enumerate()
            .filter_map(|(index, (lower, _))| {
                let own = grams(lower, size);
                let dot: usize = wanted
                    .iter()
                    .filter_map(|(gram, count)| own.get(gram).map(|theirs| count * theirs))
                    .sum();
                (dot > 0).then(|| (dot as f64 / (wanted_norm * norm(&own)), index))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut found: Vec<(f64, &'a str)> = scored
            .into_iter()
            .take(50)
            .map(|(_, index)| {
                let (lower, candidate) = &entries[index];
                (similarity(&key, lower), *candidate)
            })
            .collect();
        found.sort_by(|a, b| b.0.total_cmp(&a.0));
        found.retain(|(score, _)| *score >= min_score);
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The best candidate at least `min_score` alike, if any.
pub(super) fn closest<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    query: &str,
    min_score: f64,
) -> Option<&'a str> {
    matches(candidates, query, min_score)
        .first()
        .map(|(_, candidate)| *candidate)
}

/// The n-grams of `text`, normalised and between hyphens, with their counts.
fn grams(text: &str, size: usize) -> HashMap<String, usize> {
    let normalized: Vec<char> = std::iter::once('-')
        .chain(
            text.to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == ','),
        )
        .chain(std::iter::once('-'))
        .collect();
    let mut counts = HashMap::new();
    for window in normalized.windows(size) {
        *counts.entry(window.iter().collect::<String>()).or_insert(0) += 1;
    }
    counts
}

fn norm(counts: &HashMap<String, usize>) -> f64 {
    (counts.values().map(|c| c * c).sum::<usize>() as f64).sqrt()
}

/// 1 less the Levenshtein distance over the longer length, in characters.
fn similarity(a: &str, b: &str) -> f64 {
    let longest = a.chars().count().max(b.chars().count());
    if longest == 0 {
        return 1.0;
    }
    1.0 - strsim::levenshtein(a, b) as f64 / longest as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_name_is_found_as_fuzzyset_finds_it() {
        // fuzzyset's own documented answers.
        let films = ["Jurassic Park", "Terminator", "The Matrix"];
        assert_eq!(closest(films, "percolator", 0.33), Some("Terminator"));
        let scooby = [
            "Shaggy Rogers",
            "Fred Jones",
            "Daphne Blake",
            "Velma Dinkley",
        ];
        let found = matches(scooby, "Shaggy Jones", 0.33);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].1, "Shaggy Rogers");
        assert!((found[0].0 - 0.769_230_769_230_769_3).abs() < 1e-12);
        assert_eq!(found[1], (0.5, "Fred Jones"));
        let states = [
            "Alabama",
            "Alaska",
            "Arizona",
            "Arkansas",
            "California",
            "Kansas",
            "Pennsylvania",
            "Wyoming",
        ];
        assert_eq!(closest(states, "Transylvania", 0.33), Some("Pennsylvania"));
        assert_eq!(matches(states, "Why-oh-me-ing", 0.33)[0].1, "Wyoming");
        assert_eq!(matches(states, "alaska", 0.33), vec![(1.0, "Alaska")]);
        // PostgREST's own examples: films for film, nothing for a name far from all.
        let tables = ["films", "directors", "roles", "actors"];
        assert_eq!(closest(tables, "film", 0.33), Some("films"));
        assert_eq!(closest(tables, "noclosealternative", 0.75), None);
        assert_eq!(closest(tables, "role", 0.33), Some("roles"));
    }
}
