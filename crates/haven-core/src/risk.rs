//! Risk libraries for monitoring: phrases that suggest a pupil may be at risk, each with a UK
//! Safer Internet Centre category and a grade from 1 (worth noting) to 5 (act now), and the
//! context that shows a text is about education or support instead ("suicide prevention",
//! "Childline"). A text is graded by the phrases it contains, after the evasions pupils use are
//! undone: case, accents, leetspeak, spaced-out and repeated letters, look-alike letters of
//! other alphabets.
//!
//! The file format is meant to be read and edited by a DSL:
//!
//! ```text
//! version 1
//! # grade | category | phrase [| unless: other phrase; another]
//! 5 | suicide | kill myself | unless: don't kill myself
//! 3 | gambling | online casino*
//! # two different phrases of grade 3 or 4 in one category raise it a grade; so does one
//! # with a context sign, which never grades alone
//! sign | drugs | want some
//! # `..` stands for up to three words: "want to .. die" is also "want to just die"
//! 5 | suicide | want to .. die
//! # context that makes a category's matches safe (or every category's, with *)
//! safe | suicide | suicide prevention
//! safe | * | childline
//! # a phrase of an earlier library (the built-in one) switched off
//! off | suicide*
//! ```
//!
//! A phrase matches whole words; a trailing `*` lets its last word run on (`casino*` matches
//! "casinos"). `unless:` names phrases that, anywhere in the same text, mean this one does not
//! count. Safe context sets aside grades 1 to 4: a grade-5 phrase beside "Childline" still
//! reaches the DSL.

use crate::phrases::normalise_into;

/// The categories a risk library may use (UKSIC monitoring content).
pub const CATEGORIES: &[&str] = &[
    "illegal",
    "bullying",
    "exploitation",
    "discrimination",
    "drugs",
    "extremism",
    "gambling",
    "pornography",
    "self-harm",
    "suicide",
    "violence",
];

/// One phrase of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskPhrase {
    /// As written.
    pub text: String,
    /// Its category.
    pub category: String,
    /// 1 to 5; 0 for a context sign (`sign | …`), which never grades alone.
    pub grade: u8,
    /// Phrases that make it not count, as written.
    pub unless: Vec<String>,
    /// The phrase with its word classes spelt out: one pattern per combination.
    patterns: Vec<Pattern>,
    unless_patterns: Vec<Pattern>,
}

/// Context that makes matches safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeContext {
    /// The category it applies to, or `*` for all.
    pub category: String,
    /// As written.
    pub text: String,
    patterns: Vec<Pattern>,
}

/// A line of a library that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskError {
    /// The line (1 is the first).
    pub line: usize,
    /// Why.
    pub message: String,
}

/// A risk library.
#[derive(Debug, Clone, Default)]
pub struct RiskLibrary {
    /// The format version the file declared.
    pub version: u32,
    /// The phrases.
    pub phrases: Vec<RiskPhrase>,
    /// The safe contexts.
    pub safe: Vec<SafeContext>,
    /// Phrases switched off (`off | PHRASE`): an earlier library's phrase written the same way
    /// does not count.
    pub off: Vec<String>,
    /// Word classes (`set | NAME | a; b; c`), used in phrases as `{NAME}`.
    pub sets: std::collections::BTreeMap<String, Vec<String>>,
    /// Phrase patterns by their first one or two letters: (phrase, pattern).
    /// Every distinct part of every pattern (word classes spell out many patterns that share
    /// them), found in a text at once by one automaton; for each part, the (phrase, pattern)s
    /// it begins.
    begins: Vec<Vec<(u32, u32)>>,
    /// For each part, whether some pattern lets it end inside a word (a last part with `*`).
    open_ended: Vec<bool>,
    parts: Option<aho_corasick::AhoCorasick>,
}

/// Combinations one line may spell out, at most.
const MAX_EXPANSIONS: usize = 20_000;

/// Why a written phrase does not spell out patterns (the message of its [`RiskError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PhraseSpelling {
    #[error("{0:?}: a {{ without its }}")]
    Unclosed(String),
    #[error("{{{0}}} is not a word class (define it first: set | {0} | a; b)")]
    UnknownClass(String),
    #[error("{0:?} spells out more than {MAX_EXPANSIONS} phrases: use fewer or smaller classes")]
    TooMany(String),
    #[error("the phrase has no words")]
    NoWords,
}

/// `written` with each `{NAME}` replaced by each member of its class, every combination.
fn expand(
    written: &str,
    sets: &std::collections::BTreeMap<String, Vec<String>>,
) -> Result<Vec<String>, PhraseSpelling> {
    let mut out = vec![String::new()];
    let mut rest = written;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| PhraseSpelling::Unclosed(written.to_owned()))?;
        let name = rest[open + 1..close].trim().to_ascii_lowercase();
        let members = sets
            .get(&name)
            .ok_or_else(|| PhraseSpelling::UnknownClass(name.clone()))?;
        let before = &rest[..open];
        let mut next = Vec::with_capacity(out.len() * members.len());
        for o in &out {
            for m in members {
                next.push(format!("{o}{before}{m}"));
            }
        }
        if next.len() > MAX_EXPANSIONS {
            return Err(PhraseSpelling::TooMany(written.to_owned()));
        }
        out = next;
        rest = &rest[close + 1..];
    }
    Ok(out.into_iter().map(|o| o + rest).collect())
}

/// A text's grade.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Grade {
    /// 0 (nothing found) to 5.
    pub grade: u8,
    /// Each category found, with its highest grade, highest first.
    pub categories: Vec<(String, u8)>,
    /// The phrases that counted, as written.
    pub matched: Vec<String>,
    /// Phrases found but made safe by their context, as written.
    pub set_aside: Vec<String>,
}

/// A text ready for matching: its letters run together with runs of one letter cut to one, and
/// for each letter whether a word starts or ends there and whether it is a letter standing
/// alone (spelt out). Matching this way undoes spacing ("k i l l"), repeated letters
/// ("killll") and words run together, while a phrase still cannot start or end inside a word
/// ("skill" is not "kill").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Squeezed {
    chars: Vec<char>,
    start: Vec<bool>,
    end: Vec<bool>,
    alone: Vec<bool>,
    /// How many letters each one stands for.
    runs: Vec<u8>,
}

/// Phrases of at most this many letters (once repeats are cut) match only where each letter is
/// repeated at least as often as written: "xxx" is not the "x" of "solve for x".
const SHORT: usize = 3;

fn squeeze(text: &str) -> Squeezed {
    let mut s = Squeezed::default();
    s.chars.reserve(text.len());
    s.start.reserve(text.len());
    s.end.reserve(text.len());
    s.alone.reserve(text.len());
    s.runs.reserve(text.len());
    // The words as they were written (a word spelt out letter by letter stays so many
    // one-letter words), each normalised on its own: case, accents, leetspeak, look-alikes.
    let mut buf = Vec::new();
    for piece in text.split_whitespace() {
        buf.clear();
        normalise_into(piece, &mut buf);
        let normalised = String::from_utf8_lossy(&buf);
        for word in normalised.split(' ').filter(|w| !w.is_empty()) {
            let n = word.chars().count();
            for (i, c) in word.chars().enumerate() {
                let (first, last) = (i == 0, i + 1 == n);
                if s.chars.last() == Some(&c) {
                    // A repeated letter: its boundaries join the one kept.
                    let k = s.chars.len() - 1;
                    s.start[k] |= first;
                    s.end[k] |= last;
                    s.alone[k] |= n == 1;
                    s.runs[k] = s.runs[k].saturating_add(1);
                    continue;
                }
                s.chars.push(c);
                s.start.push(first);
                s.end.push(last);
                s.alone.push(n == 1);
                s.runs.push(1);
            }
        }
    }
    s
}

/// Words a `..` in a phrase may stand for, at most.
const GAP_WORDS: usize = 3;

/// A phrase ready for matching: its parts (split at `..`), each squeezed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pattern {
    parts: Vec<Vec<char>>,
    /// For each part, whether it was written as one word: it may then run across words only
    /// where they are single letters (spelt out), so "isis" is not the "is is" of a sentence.
    one_word: Vec<bool>,
    /// For a short phrase of one part, how often each letter is written.
    short_runs: Option<Vec<u8>>,
    /// The last word may run on (`casino*`).
    prefix: bool,
    /// Each part's id among the library's distinct parts (set when the library is indexed).
    ids: Vec<u32>,
}

/// Where a library's parts occur in one text: by part id, (first letter, last letter) of each
/// occurrence that starts where a word does, in order.
type Occurrences = std::collections::HashMap<u32, Vec<(usize, usize)>>;

impl Pattern {
    /// `None` when a part has no letters.
    fn new(written: &str) -> Option<Pattern> {
        let prefix = written.trim_end().ends_with('*');
        let body = written.trim_end().trim_end_matches('*');
        let written: Vec<&str> = body.split("..").collect();
        let squeezed: Vec<Squeezed> = written.iter().map(|w| squeeze(w)).collect();
        if squeezed.iter().any(|s| s.chars.is_empty()) {
            return None;
        }
        let short_runs = (squeezed.len() == 1 && squeezed[0].chars.len() <= SHORT)
            .then(|| squeezed[0].runs.clone());
        Some(Pattern {
            one_word: written
                .iter()
                .map(|w| w.split_whitespace().count() == 1)
                .collect(),
            parts: squeezed.into_iter().map(|s| s.chars).collect(),
            ids: Vec::new(),
            short_runs,
            prefix,
        })
    }

    /// Whether the phrase occurs in `text` (a plain scan, for safe contexts and `unless`
    /// phrases, which are looked for only once a phrase has been found).
    fn found(&self, text: &Squeezed) -> bool {
        let places = |part: &[char]| -> Vec<(usize, usize)> {
            let n = part.len();
            (0..(text.chars.len() + 1).saturating_sub(n))
                .filter(|&a| (text.start[a] || text.alone[a]) && text.chars[a..a + n] == *part)
                .map(|a| (a, a + n - 1))
                .collect()
        };
        // Mostly the first part is nowhere, and nothing more is looked for.
        let first = self.parts.first().map(|p| places(p)).unwrap_or_default();
        if first.is_empty() {
            return false;
        }
        let rest: Vec<Vec<(usize, usize)>> = self.parts[1..].iter().map(|p| places(p)).collect();
        let starts = word_starts(text);
        let occ = |k: usize| match k {
            0 => Some(first.as_slice()),
            k => rest.get(k - 1).map(Vec::as_slice),
        };
        first
            .iter()
            .any(|&at| self.found_in(text, &occ, &starts, 0, at))
    }

    /// Whether part `part`, matched at `a..=z`, keeps to the words it may run across.
    fn within_words(&self, text: &Squeezed, part: usize, a: usize, z: usize) -> bool {
        // (The last letter may also start the next word: "should die" squeezed shares its d.)
        !self.one_word.get(part).copied().unwrap_or(false)
            || (a + 1..z).all(|i| !text.start[i] || text.alone[i])
    }

    /// Whether the phrase occurs with part `part` at `a..=z`, given where each part occurs
    /// (`occ(k)`: the places, in order, that part `k`'s letters start where a word does) and
    /// `starts[i]`, the word starts before letter `i`. Each part must end where a word does
    /// (or anywhere, for the last part of a `prefix` phrase), inside spelt-out letters either
    /// way; a part after `..` starts at most `GAP_WORDS` words after the one before, or on its
    /// last letter when a repeat joined them ("should die": one d once squeezed).
    fn found_in<'o>(
        &self,
        text: &Squeezed,
        occ: &dyn Fn(usize) -> Option<&'o [(usize, usize)]>,
        starts: &[usize],
        part: usize,
        (a, z): (usize, usize),
    ) -> bool {
        let last = part + 1 == self.parts.len();
        let fits = ((last && self.prefix) || text.end[z] || text.alone[z])
            && (part > 0
                || self
                    .short_runs
                    .as_ref()
                    .is_none_or(|r| text.runs[a..=z].iter().zip(r).all(|(t, p)| t >= p)))
            && self.within_words(text, part, a, z);
        if !fits {
            return false;
        }
        if last {
            return true;
        }
        let Some(next) = occ(part + 1) else {
            return false;
        };
        let first = z + 1 - usize::from(text.start[z] || text.alone[z]);
        next.iter()
            .filter(|&&(b, _)| b >= first)
            .take_while(|&&(b, _)| b <= z + 1 || starts[b] - starts[z + 1] <= GAP_WORDS)
            .any(|&(b, y)| self.found_in(text, occ, starts, part + 1, (b, y)))
    }
}

/// For each letter (and one past the last), how many word starts come before it.
fn word_starts(t: &Squeezed) -> Vec<usize> {
    let mut starts = Vec::with_capacity(t.chars.len() + 1);
    let mut n = 0;
    for i in 0..t.chars.len() {
        starts.push(n);
        n += usize::from(t.start[i] || t.alone[i]);
    }
    starts.push(n);
    starts
}

impl RiskLibrary {
    /// Reads a library; the lines that cannot be read are returned with the rest.
    pub fn parse(text: &str) -> (RiskLibrary, Vec<RiskError>) {
        RiskLibrary::parse_with(text, &Default::default())
    }

    /// As [`RiskLibrary::parse`], with the word classes of earlier libraries usable too.
    pub fn parse_with(
        text: &str,
        earlier_sets: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> (RiskLibrary, Vec<RiskError>) {
        let mut lib = RiskLibrary::default();
        let mut sets = earlier_sets.clone();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut fail = |message: String| errors.push(RiskError { line, message });
            if let Some(v) = t.strip_prefix("version") {
                match v.trim().parse::<u32>() {
                    Ok(1) => lib.version = 1,
                    _ => fail(format!(
                        "version {:?} is not one this Haven reads (1)",
                        v.trim()
                    )),
                }
                continue;
            }
            let parts: Vec<&str> = t.split('|').map(str::trim).collect();
            if parts.len() == 2 && parts[0].eq_ignore_ascii_case("off") {
                if parts[1].is_empty() {
                    fail("`off |` names the phrase to switch off".into());
                } else {
                    lib.off.push(parts[1].to_owned());
                }
                continue;
            }
            if parts.len() < 3 {
                fail("expected GRADE | CATEGORY | PHRASE, or safe | CATEGORY | PHRASE".into());
                continue;
            }
            if parts[0].eq_ignore_ascii_case("set") {
                let name = parts[1].to_ascii_lowercase();
                let members: Vec<String> = parts[2]
                    .split(';')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect();
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    fail(format!(
                        "{name:?}: a word class is named with letters, digits and -"
                    ));
                } else if members.is_empty() || members.iter().any(|m| m.contains('{')) {
                    fail(format!(
                        "set {name}: list its words or phrases, separated by ;"
                    ));
                } else {
                    sets.insert(name.clone(), members.clone());
                    lib.sets.insert(name, members);
                }
                continue;
            }
            let patterns_of = |written: &str| -> Result<Vec<Pattern>, PhraseSpelling> {
                let spelt = expand(written, &sets)?;
                let patterns: Option<Vec<Pattern>> =
                    spelt.iter().map(|w| Pattern::new(w)).collect();
                patterns.ok_or(PhraseSpelling::NoWords)
            };
            let category = parts[1].to_ascii_lowercase();
            let known = CATEGORIES.contains(&category.as_str());
            if parts[0].eq_ignore_ascii_case("safe") {
                if !known && category != "*" {
                    fail(format!(
                        "category {category:?} is not one of {}",
                        CATEGORIES.join(", ")
                    ));
                    continue;
                }
                let patterns = match patterns_of(parts[2]) {
                    Ok(p) => p,
                    Err(e) => {
                        fail(e.to_string());
                        continue;
                    }
                };
                lib.safe.push(SafeContext {
                    category,
                    text: parts[2].to_owned(),
                    patterns,
                });
                continue;
            }
            let grade = match parts[0].parse::<u8>() {
                Ok(g) if (1..=5).contains(&g) => g,
                // A context sign: never a grade alone.
                _ if parts[0].eq_ignore_ascii_case("sign") => 0,
                _ => {
                    fail(format!("grade {:?} is not 1 to 5 (or sign)", parts[0]));
                    continue;
                }
            };
            if !known {
                fail(format!(
                    "category {category:?} is not one of {}",
                    CATEGORIES.join(", ")
                ));
                continue;
            }
            let written = parts[2];
            let patterns = match patterns_of(written) {
                Ok(p) => p,
                Err(e) => {
                    fail(e.to_string());
                    continue;
                }
            };
            let mut unless = Vec::new();
            if let Some(extra) = parts.get(3) {
                match extra.strip_prefix("unless:") {
                    Some(list) => {
                        unless = list
                            .split(';')
                            .map(|u| u.trim().to_owned())
                            .filter(|u| !u.is_empty())
                            .collect()
                    }
                    None => {
                        fail(format!("{extra:?}: only `unless: …` may follow the phrase"));
                        continue;
                    }
                }
            }
            let mut unless_patterns = Vec::new();
            for u in &unless {
                match patterns_of(u) {
                    Ok(p) => unless_patterns.extend(p),
                    Err(e) => fail(format!("unless: {e}")),
                }
            }
            lib.phrases.push(RiskPhrase {
                text: written.to_owned(),
                category,
                grade,
                unless_patterns,
                unless,
                patterns,
            });
        }
        lib.reindex();
        if lib.version == 0
            && (!lib.phrases.is_empty() || !lib.safe.is_empty() || !lib.off.is_empty())
        {
            errors.push(RiskError {
                line: 1,
                message: "the file does not say its version (`version 1` first)".into(),
            });
        }
        (lib, errors)
    }

    /// Adds another library's phrases and contexts to this one.
    pub fn extend(&mut self, other: RiskLibrary) {
        self.version = self.version.max(other.version);
        self.phrases.extend(other.phrases);
        self.safe.extend(other.safe);
        if !other.off.is_empty() {
            self.phrases
                .retain(|p| !other.off.iter().any(|o| o.eq_ignore_ascii_case(&p.text)));
            self.off.extend(other.off);
        }
        self.sets.extend(other.sets);
        self.reindex();
    }

    fn reindex(&mut self) {
        self.begins.clear();
        self.open_ended.clear();
        let mut parts: Vec<String> = Vec::new();
        let mut ids: std::collections::HashMap<Vec<char>, u32> = Default::default();
        for (i, p) in self.phrases.iter_mut().enumerate() {
            for (j, pattern) in p.patterns.iter_mut().enumerate() {
                pattern.ids = pattern
                    .parts
                    .iter()
                    .map(|part| {
                        *ids.entry(part.clone()).or_insert_with(|| {
                            parts.push(part.iter().collect());
                            self.begins.push(Vec::new());
                            self.open_ended.push(false);
                            (parts.len() - 1) as u32
                        })
                    })
                    .collect();
                if let (true, Some(&last)) = (pattern.prefix, pattern.ids.last()) {
                    self.open_ended[last as usize] = true;
                }
                if let Some(&first) = pattern.ids.first() {
                    self.begins[first as usize].push((i as u32, j as u32));
                }
            }
        }
        // Built from the library's own words; should it ever fail, nothing matches (and the
        // tests, which grade the built-in library, would say so).
        self.parts = aho_corasick::AhoCorasick::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .build(&parts)
            .ok();
    }

    /// The phrases found in `t`, by index, in library order: each pattern tried only where a
    /// word starts with its first letters.
    fn found(&self, t: &Squeezed) -> Vec<(usize, (usize, usize))> {
        let Some(automaton) = &self.parts else {
            return Vec::new();
        };
        // The squeezed letters as text, and for each byte the letter it belongs to.
        let text: String = t.chars.iter().collect();
        let mut letter_at = Vec::with_capacity(text.len() + 1);
        for (n, c) in t.chars.iter().enumerate() {
            letter_at.extend(std::iter::repeat_n(n, c.len_utf8()));
        }
        let mut occ: Occurrences = Default::default();
        for m in automaton.find_overlapping_iter(&text) {
            let (a, z) = (letter_at[m.start()], letter_at[m.end() - 1]);
            let id = m.pattern().as_u32();
            // A part must start where a word does, and end where one does unless some pattern
            // lets it run on: most letters inside words are no occurrence at all.
            if (t.start[a] || t.alone[a])
                && (t.end[z] || t.alone[z] || self.open_ended[id as usize])
            {
                occ.entry(id).or_default().push((a, z));
            }
        }
        for list in occ.values_mut() {
            list.sort_unstable();
        }
        let starts = word_starts(t);
        let mut hit: Vec<Option<(usize, usize)>> = vec![None; self.phrases.len()];
        // Each phrase at the first place any of its patterns is found (whatever order the
        // parts are visited in, so grading is the same every time).
        for (id, list) in &occ {
            for &(i, j) in &self.begins[*id as usize] {
                let i = i as usize;
                let pattern = &self.phrases[i].patterns[j as usize];
                let occ_of = |k: usize| {
                    pattern
                        .ids
                        .get(k)
                        .and_then(|id| occ.get(id))
                        .map(Vec::as_slice)
                };
                let before = hit[i].map_or(usize::MAX, |(a, _)| a);
                if let Some(&at) = list
                    .iter()
                    .take_while(|&&(a, _)| a < before)
                    .find(|&&at| pattern.found_in(t, &occ_of, &starts, 0, at))
                {
                    hit[i] = Some(at);
                }
            }
        }
        hit.iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|at| (i, at)))
            .collect()
    }

    /// Grades a text.
    pub fn grade(&self, text: &str) -> Grade {
        let t = squeeze(text);
        let mut g = Grade::default();
        if t.chars.is_empty() {
            return g;
        }
        let safe_for = |category: &str| {
            self.safe.iter().any(|s| {
                (s.category == "*" || s.category == category)
                    && s.patterns.iter().any(|p| p.found(&t))
            })
        };
        // Where each category's phrases of grade 3 or 4 were found, and its context signs: two
        // phrases over the same words ("casino" and "online casino") are one sign.
        let mut strong: std::collections::HashMap<&str, Vec<(usize, usize)>> = Default::default();
        let mut context: std::collections::HashMap<&str, Vec<(usize, usize)>> = Default::default();
        for (i, at) in self.found(&t) {
            let p = &self.phrases[i];
            // Support-seeking beside a grade-5 phrase still reaches the DSL: safe context sets
            // aside grades 1 to 4 only; a grade-5 phrase only by its own `unless`.
            if p.unless_patterns.iter().any(|u| u.found(&t))
                || (p.grade < 5 && safe_for(&p.category))
            {
                g.set_aside.push(p.text.clone());
                continue;
            }
            if p.grade == 0 {
                context.entry(p.category.as_str()).or_default().push(at);
                continue;
            }
            g.matched.push(p.text.clone());
            match g.categories.iter_mut().find(|(c, _)| *c == p.category) {
                Some((_, best)) => *best = (*best).max(p.grade),
                None => g.categories.push((p.category.clone(), p.grade)),
            }
            if p.grade >= 3 {
                strong.entry(p.category.as_str()).or_default().push(at);
            }
        }
        // Signs together: two phrases of grade 3 or 4 found in different places in one
        // category ("how old are you" and "send me a photo"), or one with a context sign of the
        // category (`sign | …`: "weed" with "want some"), raise it a grade.
        for (category, best) in &mut g.categories {
            let Some(places) = strong.get(category.as_str()) else {
                continue;
            };
            let overlap = |(a, z): (usize, usize), (b, y): (usize, usize)| a <= y && b <= z;
            let apart = places
                .iter()
                .any(|&p| places.iter().any(|&q| !overlap(p, q)));
            let with_context = context
                .get(category.as_str())
                .is_some_and(|c| c.iter().any(|&at| places.iter().all(|&p| !overlap(at, p))));
            if *best < 5 && (apart || with_context) {
                *best += 1;
            }
        }
        g.grade = g.categories.iter().map(|(_, n)| *n).max().unwrap_or(0);
        g.categories
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        g
    }
}

/// The text a reader sees in an HTML page: tags, scripts and styles left out, common entities
/// read, white space collapsed; at most `cap` bytes of text.
pub fn html_text(html: &str, cap: usize) -> String {
    let mut out = String::with_capacity(html.len().min(cap));
    let mut rest = html;
    let mut space = false;
    let push = |out: &mut String, c: char, space: &mut bool| {
        if c.is_whitespace() {
            *space = !out.is_empty();
        } else {
            if *space {
                out.push(' ');
                *space = false;
            }
            out.push(c);
        }
    };
    while let Some(c) = rest.chars().next() {
        if out.len() >= cap {
            break;
        }
        if c == '<' {
            let lower: String = rest
                .chars()
                .take(8)
                .collect::<String>()
                .to_ascii_lowercase();
            let close = if lower.starts_with("<script") {
                Some("</script")
            } else if lower.starts_with("<style") {
                Some("</style")
            } else if lower.starts_with("<!--") {
                Some("-->")
            } else {
                None
            };
            let end = match close {
                Some(close) => find_ascii_ci(rest, close).map(|i| i + close.len()),
                None => Some(0),
            };
            let Some(end) = end else { break };
            rest = &rest[end..];
            match rest.find('>') {
                Some(i) if close != Some("-->") => rest = &rest[i + 1..],
                // An unclosed tag runs to the end.
                None if close.is_none() => break,
                _ => {}
            }
            space = !out.is_empty();
            continue;
        }
        if c == '&' {
            // An entity is short: look for its `;` in the next few bytes (a byte search, so a
            // multi-byte letter there is no problem).
            let semi = rest.as_bytes()[..rest.len().min(12)]
                .iter()
                .position(|&b| b == b';');
            let decoded = semi.and_then(|semi| {
                crate::phrases::entity(&rest.as_bytes()[1..semi]).map(|d| (semi, d))
            });
            if let Some((semi, d)) = decoded {
                push(&mut out, d, &mut space);
                rest = &rest[semi + 1..];
                continue;
            }
        }
        push(&mut out, c, &mut space);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn find_ascii_ci(haystack: &str, needle: &str) -> Option<usize> {
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    (0..h.len().saturating_sub(n.len() - 1)).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

impl RiskLibrary {
    /// Grades a long text (a page) by its passages: the whole text first (nothing found, nothing
    /// more to do), then overlapping passages of about `PASSAGE` characters, so that context
    /// rules apply to what is near a phrase and the capture keeps the passage that graded
    /// highest. `None` when nothing grades.
    pub fn grade_passages(&self, text: &str) -> Option<(Grade, String)> {
        const PASSAGE: usize = 400;
        if self.grade(text).grade == 0 {
            return None;
        }
        let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let mut best: Option<(Grade, String)> = None;
        let mut i = 0;
        while i < starts.len() {
            let end = starts.get(i + PASSAGE).copied().unwrap_or(text.len());
            let passage = &text[starts[i]..end];
            let g = self.grade(passage);
            if g.grade > best.as_ref().map_or(0, |(b, _)| b.grade) {
                best = Some((g, passage.to_owned()));
            }
            if end == text.len() {
                break;
            }
            i += PASSAGE * 3 / 4;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "version 1\n\
        # grade | category | phrase\n\
        5 | suicide | kill myself | unless: don't kill myself; never kill myself\n\
        5 | suicide | want to die\n\
        3 | suicide | suicide\n\
        3 | gambling | online casino*\n\
        4 | self-harm | cut myself\n\
        4 | pornography | xxx\n\
        3 | extremism | isis\n\
        4 | self-harm | hurt .. my self\n\
        4 | bullying | should .. die\n\
        5 | suicide | lladd fy hun\n\
        5 | suicide | أريد أن أموت\n\
        safe | suicide | suicide prevention\n\
        safe | * | childline\n";

    fn check(text: &str, grade: u8, categories: &[&str]) {
        let (lib, errors) = RiskLibrary::parse(LIB);
        assert!(errors.is_empty(), "{errors:?}");
        let g = lib.grade(text);
        assert_eq!(g.grade, grade, "{text:?}: {g:?}");
        let found: Vec<&str> = g.categories.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(found, categories, "{text:?}");
    }

    #[test]
    fn grades_what_is_there_and_not_what_is_not() {
        check("i want to kill myself", 5, &["suicide"]);
        check("how to get to the bus stop", 0, &[]);
        check("online casinos near me", 3, &["gambling"]);
        check("I cut myself and want to die", 5, &["suicide", "self-harm"]);
        // Whole words: "skill myself" is not "kill myself".
        check("skill myself up", 0, &[]);
        // A short phrase is matched as written: "xxx" is not the x of algebra.
        check("xxx videos", 4, &["pornography"]);
        check("x x x", 4, &["pornography"]);
        check("solve for x when 3 x 4 = 12", 0, &[]);
        // A one-word phrase runs across spelt-out letters, never across whole words.
        check("it is is it", 0, &[]);
        check("i s i s", 3, &["extremism"]);
        check("isis", 3, &["extremism"]);
        // `..` stands for up to three words between.
        check("i really just want to hurt my self", 4, &["self-harm"]);
        check("hurt my self", 4, &["self-harm"]);
        check("hurt all the people around my self", 0, &[]);
        check("myself hurt", 0, &[]);
        check("hurt my self", 4, &["self-harm"]);
        check("i should die", 4, &["bullying"]);
    }

    #[test]
    fn evasions_are_undone() {
        check("k i l l   m y s e l f", 5, &["suicide"]);
        check("how do I k i l l myself", 5, &["suicide"]);
        check("killmyself", 5, &["suicide"]);
        check("w a n t t o d i e", 5, &["suicide"]);
        check("KILLLL MYSELFFF", 5, &["suicide"]);
        check("k1ll mys3lf", 5, &["suicide"]);
        // A Cyrillic "і" and "е" in place of the Latin letters.
        check("k\u{456}ll mys\u{435}lf", 5, &["suicide"]);
        check("on-line c@sino", 3, &["gambling"]);
        check("online c@sino", 3, &["gambling"]);
    }

    #[test]
    fn context_sets_education_and_support_aside() {
        check("suicide prevention week assembly", 0, &[]);
        check("is suicide bad childline", 0, &[]);
        // Asking for help does not hide the words that matter most.
        check("I want to die, who do I call? childline", 5, &["suicide"]);
        check("I would never kill myself", 0, &[]);
        let (lib, _) = RiskLibrary::parse(LIB);
        let g = lib.grade("suicide prevention");
        assert_eq!(g.set_aside, ["suicide"]);
    }

    #[test]
    fn signs_together_raise_a_grade() {
        let (lib, _) = RiskLibrary::parse(
            "version 1\n3 | exploitation | how old are you\n3 | exploitation | send me a photo\n",
        );
        assert_eq!(lib.grade("how old are you").grade, 3);
        assert_eq!(lib.grade("how old are you? send me a photo").grade, 4);
        let (lib, errors) = RiskLibrary::parse(
            "version 1\nset | drug | weed; ket\n3 | drugs | {drug}\n3 | drugs | ket\nsign | drugs | want some\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            lib.grade("ket").grade,
            3,
            "two lines on one word are one sign"
        );
        assert_eq!(
            lib.grade("want some").grade,
            0,
            "a context sign never grades alone"
        );
        assert_eq!(lib.grade("ket is good want some").grade, 4);
        assert_eq!(lib.grade("weed and ket").grade, 4);
    }

    #[test]
    fn word_classes_spell_out_phrases() {
        let (lib, errors) = RiskLibrary::parse(
            "version 1\nset | intent | want to; going to; gonna\nset | end | die; end it all\n\
             5 | suicide | i .. {intent} .. {end} | unless: {intent} not {end}\n\
             4 | suicide | {nope} x\nset | bad name! | x\n",
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(lib.grade("i am gonna end it all").grade, 5);
        assert_eq!(lib.grade("i really want to just die").grade, 5);
        assert_eq!(lib.grade("i am going to die of boredom").grade, 5);
        assert_eq!(lib.grade("i want to not die").grade, 0);
        assert_eq!(lib.grade("we want to die").grade, 0);
        // A later library uses the classes of earlier ones.
        let (school, errors) =
            RiskLibrary::parse_with("version 1\n4 | suicide | {intent} jump\n", &lib.sets);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(school.grade("gonna jump").grade, 4);
    }

    /// The automaton and occurrence lists find exactly the phrases a plain scan of every
    /// pattern finds, over the built-in library and every evaluation text.
    #[test]
    fn the_indexed_matcher_agrees_with_a_plain_scan() {
        let (lib, errors) = RiskLibrary::parse(include_str!("../../../config/risk/library.txt"));
        assert!(errors.is_empty(), "{errors:?}");
        let corpora = [
            include_str!("../../../bench/monitor/corpus.tsv"),
            include_str!("../../../bench/monitor/fresh4.tsv"),
        ];
        let mut texts: Vec<String> = corpora
            .iter()
            .flat_map(|c| c.lines())
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t').map(|(_, t)| t.to_owned()))
            .collect();
        // And run-together pairs of them, for gaps and word boundaries across texts.
        let pairs: Vec<String> = texts
            .windows(2)
            .step_by(3)
            .map(|w| format!("{} {}", w[0], w[1]))
            .collect();
        texts.extend(pairs);
        for text in &texts {
            let t = squeeze(text);
            let mut fast: Vec<usize> = lib.found(&t).into_iter().map(|(i, _)| i).collect();
            fast.sort_unstable();
            let slow: Vec<usize> = (0..lib.phrases.len())
                .filter(|&i| lib.phrases[i].patterns.iter().any(|p| p.found(&t)))
                .collect();
            assert_eq!(fast, slow, "{text:?}");
        }
    }

    #[test]
    fn other_languages() {
        check("dw i eisiau lladd fy hun", 5, &["suicide"]);
        check("أريد أن أموت", 5, &["suicide"]);
    }

    #[test]
    fn a_later_library_switches_a_phrase_off() {
        let (mut lib, _) = RiskLibrary::parse(LIB);
        assert_eq!(lib.grade("online casino").grade, 3);
        let (school, errors) = RiskLibrary::parse("version 1\noff | online casino*\noff |\n");
        assert_eq!(errors.len(), 1, "an empty `off |` is refused: {errors:?}");
        lib.extend(school);
        assert_eq!(lib.grade("online casino").grade, 0);
        assert_eq!(lib.grade("i want to die").grade, 5, "other phrases stay");
    }

    #[test]
    fn pages_are_read_as_text_and_graded_by_passage() {
        let html = "<html><head><style>p{color:red}</style><script>var x='want to die';</script>\
            </head><body><!-- want to die --><h1>Forum</h1><p>Posted by anon &amp; friends:</p>\
            <p>i  just&nbsp;want to&#32;die</p></body></html>";
        let text = html_text(html, 10_000);
        assert_eq!(text, "Forum Posted by anon & friends: i just want to die");
        assert_eq!(html_text(html, 10).len(), 10, "the cap holds");
        assert_eq!(html_text("5 < 6 and <b", 100), "5");
        assert_eq!(html_text("<script>no end", 100), "");
        assert_eq!(
            html_text("caf&eacute; &unknown; &#x27;", 100),
            "caf&eacute; &unknown; '"
        );
        assert_eq!(
            html_text("&éééééé;", 100),
            "&éééééé;",
            "no panic inside a letter"
        );
        let (lib, _) = RiskLibrary::parse(LIB);
        let long = format!(
            "{} I cut myself and I want to die. {} The suicide prevention team can help.",
            "Revision notes on rivers and coasts. ".repeat(40),
            "More revision. ".repeat(60)
        );
        let (g, passage) = lib.grade_passages(&long).expect("graded");
        assert_eq!(g.grade, 5);
        assert!(
            passage.contains("want to die") && passage.len() < 1000,
            "{passage}"
        );
        assert!(lib
            .grade_passages(&"Rivers and coasts. ".repeat(100))
            .is_none());
    }

    #[test]
    fn bad_lines_are_reported_by_number() {
        let (lib, errors) = RiskLibrary::parse(
            "version 1\n7 | suicide | x\n3 | weather | rain\n3 | suicide\nsafe | nowhere | x\n2 | drugs | weed | because: reasons\n2 | drugs | skunk\n",
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{errors:?}");
        assert_eq!(lib.phrases.len(), 1);
        let (_, errors) = RiskLibrary::parse("3 | drugs | skunk\n");
        assert!(errors[0].message.contains("version"), "{errors:?}");
    }
}
