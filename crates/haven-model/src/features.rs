//! A text's features: its words, pairs of words and the letter groups inside each word
//! (fastText's "subwords"), after the spellings that carry no meaning are folded together, each
//! hashed to a row of the model. Letter groups are what make the model work in every language
//! and script without a tokeniser: "samobójstwo" and "samobojstwa" share most of theirs, so do
//! "khudkushi" and "khudkashi", and an Arabic word with and without its article.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Letter groups of these lengths are features (of a word with its `<` `>` ends).
pub const MIN_N: usize = 3;
/// See [`MIN_N`].
pub const MAX_N: usize = 5;

/// Words read from a text, at most (a page passage is well under this).
const MAX_WORDS: usize = 400;

/// Folds one letter: lower case, Latin letters without their accents (pupils type Polish and
/// Welsh without them), Arabic-script letters that Urdu and Arabic write differently to one
/// form, digits to `0` (a time or an amount matters, not which), and look-alike digits in words
/// are left to the letter groups. `None` drops the character (Arabic short vowels, tatweel).
fn fold(c: char, out: &mut String) {
    match c {
        'A'..='Z' => out.push(c.to_ascii_lowercase()),
        'a'..='z' => out.push(c),
        '0'..='9' => out.push('0'),
        'ą' | 'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'Ą' | 'À' | 'Á' | 'Â' | 'Ä' => {
            out.push('a')
        }
        'ć' | 'ç' | 'Ć' | 'Ç' => out.push('c'),
        'ę' | 'è' | 'é' | 'ê' | 'ë' | 'Ę' | 'È' | 'É' | 'Ê' | 'Ë' => out.push('e'),
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => out.push('i'),
        'ł' | 'Ł' => out.push('l'),
        'ń' | 'ñ' | 'Ń' | 'Ñ' => out.push('n'),
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'Ò' | 'Ó' | 'Ô' | 'Ö' => out.push('o'),
        'ś' | 'Ś' | 'ß' => out.push('s'),
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => out.push('u'),
        'ŵ' | 'Ŵ' => out.push('w'),
        'ý' | 'ÿ' | 'ŷ' | 'Ý' | 'Ŷ' => out.push('y'),
        'ź' | 'ż' | 'Ź' | 'Ż' => out.push('z'),
        // Arabic script: short vowels and tatweel carry nothing here.
        '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{0640}' => {}
        'أ' | 'إ' | 'آ' | 'ٱ' => out.push('ا'),
        'ي' | 'ى' | 'ئ' | 'ے' => out.push('ی'),
        'ك' => out.push('ک'),
        'ه' | 'ة' | 'ۃ' | 'ھ' => out.push('ہ'),
        'ؤ' => out.push('و'),
        '٠'..='٩' | '۰'..='۹' => out.push('0'),
        c => out.extend(c.to_lowercase()),
    }
}

/// The words of a text, folded: letters and digits run together; any other symbol that is not
/// punctuation or space (an emoji) is a word of its own; a letter repeated more than twice
/// counts twice ("soooo" is "soo"). At most 400 words.
pub fn words(text: &str) -> Vec<String> {
    tokens(text, MAX_WORDS)
        .into_iter()
        .map(|(w, _)| w)
        .collect()
}

/// The words of a text as [`words`] reads them, each with the bytes of `text` it came from; at
/// most `cap` words.
pub fn tokens(text: &str, cap: usize) -> Vec<(String, std::ops::Range<usize>)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut folded = String::new();
    let end = |word: &mut String, words: &mut Vec<(String, std::ops::Range<usize>)>, span| {
        if !word.is_empty() {
            words.push((std::mem::take(word), span));
        }
    };
    for (at, c) in text.char_indices() {
        if words.len() >= cap {
            return words;
        }
        if c.is_alphanumeric() || c == '\u{200C}' {
            if word.is_empty() {
                start = at;
            }
            folded.clear();
            fold(c, &mut folded);
            for f in folded.chars() {
                let mut tail = word.chars().rev();
                if tail.next() == Some(f) && tail.next() == Some(f) {
                    continue;
                }
                word.push(f);
            }
        } else if c.is_whitespace() || c.is_ascii_punctuation() || is_punctuation(c) {
            end(&mut word, &mut words, start..at);
        } else if !c.is_control() && !matches!(c, '\u{FE0F}' | '\u{200D}') {
            end(&mut word, &mut words, start..at);
            words.push((c.to_string(), at..at + c.len_utf8()));
        }
    }
    if words.len() < cap {
        end(&mut word, &mut words, start..text.len());
    }
    words
}

fn is_punctuation(c: char) -> bool {
    matches!(
        c,
        '،' | '؛'
            | '؟'
            | '۔'
            | '«'
            | '»'
            | '“'
            | '”'
            | '‘'
            | '’'
            | '„'
            | '–'
            | '—'
            | '…'
            | '·'
    )
}

/// The hashed features of a text (one row number each, `< buckets`; repeats kept, as a word
/// said twice counts twice).
pub fn features(text: &str, buckets: u32, out: &mut Vec<u32>) {
    features_of(&words(text), buckets, out);
}

/// The hashed features of words already read by [`words`].
pub fn features_of(words: &[String], buckets: u32, out: &mut Vec<u32>) {
    out.clear();
    let mut scratch = Scratch::default();
    for i in 0..words.len() {
        word_features(&words[i], words.get(i + 1), buckets, &mut scratch, out);
    }
}

/// Buffers reused from word to word.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    buf: Vec<u8>,
    marked: String,
    bounds: Vec<usize>,
}

/// Adds the features of one word (with the word after it, for the pair) to `out`.
pub(crate) fn word_features<W: AsRef<str>>(
    w: &str,
    next: Option<&W>,
    buckets: u32,
    s: &mut Scratch,
    out: &mut Vec<u32>,
) {
    // A power of two (as the shipped model's 2^17 is) is a mask, the same number as the
    // remainder and many times quicker than a division.
    let mask = u64::from(buckets)
        .is_power_of_two()
        .then(|| u64::from(buckets) - 1);
    let row = |kind: u64, bytes: &[u8]| {
        let h = xxh3_64_with_seed(bytes, kind);
        (match mask {
            Some(m) => h & m,
            None => h % u64::from(buckets),
        }) as u32
    };
    out.push(row(1, w.as_bytes()));
    if let Some(next) = next {
        s.buf.clear();
        s.buf.extend_from_slice(w.as_bytes());
        s.buf.push(b' ');
        s.buf.extend_from_slice(next.as_ref().as_bytes());
        out.push(row(2, &s.buf));
    }
    // Letter groups of the word with its ends marked.
    s.marked.clear();
    s.marked.push('<');
    s.marked.push_str(w);
    s.marked.push('>');
    s.bounds.clear();
    s.bounds.extend(s.marked.char_indices().map(|(i, _)| i));
    let chars = s.bounds.len();
    s.bounds.push(s.marked.len());
    if chars <= 3 {
        return; // a one-letter word or an emoji: the word itself is enough
    }
    let bytes = s.marked.as_bytes();
    for n in MIN_N..=MAX_N {
        for k in 0..(chars + 1).saturating_sub(n) {
            out.push(row(3, &bytes[s.bounds[k]..s.bounds[k + n]]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_that_carry_no_meaning_are_folded() {
        assert_eq!(
            words("Soooo SAD!!! at 9pm 😢"),
            ["soo", "sad", "at", "0pm", "😢"]
        );
        assert_eq!(words("Samobójstwo, żal"), ["samobojstwo", "zal"]);
        assert_eq!(words("مرحبًا، أنا"), ["مرحبا", "انا"]);
        assert_eq!(words("ہے  ھے"), ["ہی", "ہی"]);
    }

    #[test]
    fn features_are_words_pairs_and_letter_groups() {
        let mut f = Vec::new();
        features("hi there", 1 << 20, &mut f);
        // hi: word + pair + "<hi" "hi>" "<hi>"; there: word + 4+3+2 groups of "<there>".
        assert_eq!(f.len(), 1 + 1 + 3 + 1 + (5 + 4 + 3));
        assert!(f.iter().all(|&r| r < 1 << 20));
        let mut g = Vec::new();
        features("HI  there", 1 << 20, &mut g);
        assert_eq!(f, g, "the same text however spaced and cased");
    }
}
