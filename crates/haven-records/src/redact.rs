//! Redaction for a subject-access export: other people's names taken out of what the record
//! says, whole words only and in any case, longest names first (so "Sam Idris" goes as one).

/// What a redacted name becomes.
pub const REDACTED: &str = "[another person]";

/// `text` with every whole-word occurrence of each of `names` (and of each name's parts of at
/// least three letters: a first name alone) replaced by [`REDACTED`].
pub fn redact(text: &str, names: &[String]) -> String {
    let mut words: Vec<String> = Vec::new();
    for n in names {
        let n = n.trim();
        if n.is_empty() {
            continue;
        }
        words.push(n.to_lowercase());
        for part in n.split_whitespace() {
            if part.chars().count() >= 3 {
                words.push(part.to_lowercase());
            }
        }
    }
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words.dedup();
    let mut out = text.to_owned();
    for w in &words {
        out = replace_word(&out, w);
    }
    out
}

/// Replaces whole-word, case-insensitive occurrences of `word` (already lower case).
fn replace_word(text: &str, word: &str) -> String {
    let lower = text.to_lowercase();
    // Lower-casing can change lengths (rarely); then match on the original text only.
    if lower.len() != text.len() {
        return text.replace(word, REDACTED);
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find(word) {
        let at = i + found;
        let end = at + word.len();
        let before = text[..at].chars().next_back();
        let after = text[end..].chars().next();
        let bounded =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&text[i..at]);
        if bounded {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[at..end]);
        }
        i = end;
    }
    out.push_str(&text[i..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_peoples_names_go_whole_words_only_and_in_any_case() {
        let names = vec!["Noah Price".to_owned(), "Jo".to_owned()];
        assert_eq!(
            redact("Ava said NOAH PRICE took it; Noah laughed. Jo's mum, Joanna and Priceless", &names),
            "Ava said [another person] took it; [another person] laughed. [another person]'s mum, Joanna and Priceless"
        );
        assert_eq!(redact("nothing here", &names), "nothing here");
        assert_eq!(redact("Noah", &[]), "Noah");
    }
}
