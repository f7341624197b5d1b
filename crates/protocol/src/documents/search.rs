//! The local search index over document titles, descriptions and file names.
//!
//! Plain BitTorrent cannot search by name; here every node holds every signed document
//! record, so it can answer searches itself, and what it answers is what the publisher
//! signed. The index is an ordered map from lowercase word to documents, rebuilt when
//! the set of records changes (a few thousand records take milliseconds); a query
//! matches documents that have every one of its words as a word or word prefix.

use std::collections::{BTreeMap, HashMap};

/// Where a word occurs, as weight bits: title 4, file name 2, description 1.
const TITLE: u8 = 4;
const NAME: u8 = 2;
const DESCRIPTION: u8 = 1;
/// Longest word indexed (longer ones are cut).
const MAX_WORD: usize = 64;
/// Words of a query considered.
const MAX_QUERY_WORDS: usize = 16;

/// Documents by the words of their titles, file names and descriptions, with their
/// publish times for ranking (module docs).
#[derive(Clone, Debug, Default)]
pub struct SearchIndex {
    words: BTreeMap<String, HashMap<u32, u8>>,
    times: HashMap<u32, u64>,
}

/// The words of `text`: runs of letters and digits, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase().chars().take(MAX_WORD).collect())
}

impl SearchIndex {
    /// Adds document `id` (published at `time`).
    pub fn add(&mut self, id: u32, time: u64, title: &str, name: &str, description: &str) {
        self.times.insert(id, time);
        for (text, weight) in [(title, TITLE), (name, NAME), (description, DESCRIPTION)] {
            for w in words(text) {
                *self.words.entry(w).or_default().entry(id).or_default() |= weight;
            }
        }
    }

    /// Document ids matching every word of `query`, best first (more weight, then
    /// newer, then higher id), at most `limit`.
    pub fn search(&self, query: &str, limit: usize) -> Vec<u32> {
        let q: Vec<String> = words(query).take(MAX_QUERY_WORDS).collect();
        if q.is_empty() {
            return Vec::new();
        }
        let mut score: Option<HashMap<u32, u32>> = None;
        for word in &q {
            let mut hits: HashMap<u32, u8> = HashMap::new();
            for (_, docs) in self
                .words
                .range(word.clone()..)
                .take_while(|(w, _)| w.starts_with(word.as_str()))
            {
                for (id, weight) in docs {
                    *hits.entry(*id).or_default() |= weight;
                }
            }
            score = Some(match score {
                None => hits.into_iter().map(|(id, w)| (id, u32::from(w))).collect(),
                Some(prev) => prev
                    .into_iter()
                    .filter_map(|(id, s)| hits.get(&id).map(|w| (id, s + u32::from(*w))))
                    .collect(),
            });
        }
        let mut found: Vec<(u32, u32)> = score.unwrap_or_default().into_iter().collect();
        found.sort_by(|(a, sa), (b, sb)| {
            sb.cmp(sa)
                .then(self.times.get(b).cmp(&self.times.get(a)))
                .then(b.cmp(a))
        });
        found.into_iter().take(limit).map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_every_word_and_prefix() {
        let mut ix = SearchIndex::default();
        ix.add(
            1,
            100,
            "Diplomatic cables",
            "cables.zip",
            "Embassy reports, 2010",
        );
        ix.add(2, 200, "Afghan war logs", "logs.7z", "Field reports");
        ix.add(3, 300, "Reports on <script>", "x.pdf", "");
        assert_eq!(ix.search("EMBASSY", 10), vec![1]);
        assert_eq!(ix.search("reports", 10), vec![3, 2, 1], "title hit first");
        assert_eq!(ix.search("rep field", 10), vec![2]);
        assert_eq!(ix.search("cables.zip", 10), vec![1]);
        assert_eq!(ix.search("script", 10), vec![3]);
        assert!(ix.search("", 10).is_empty());
        assert!(ix.search("!!", 10).is_empty());
        assert!(ix.search("nothing", 10).is_empty());
        assert_eq!(ix.search("reports", 1), vec![3]);
        let mut uni = SearchIndex::default();
        uni.add(9, 1, "Überwachung", "a", "Доклад");
        assert_eq!(uni.search("überw", 5), vec![9]);
        assert_eq!(uni.search("доклад", 5), vec![9]);
    }
}
