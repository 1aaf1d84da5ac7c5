//! The weighted-phrase scanner: scores page text as it streams by, for the proxy's real-time
//! content filtering.
//!
//! Text is normalised on the fly (HTML tags, scripts and styles skipped, entities read, case
//! folded, accents removed, leetspeak read as letters, punctuation and runs of white space made
//! one space, letters spaced out one by one joined up), then run through one Aho-Corasick
//! automaton a byte at a time, so memory per scan is a few counters whatever the page's size.
//!
//! A phrase matches whole words unless it is marked `*` at an end (`porn*` also matches
//! "pornographic"). Every occurrence adds its weight; negative weights take away (education and
//! support pages). A combination (`naked + pictures`) adds its weight once when all its parts
//! appear anywhere on the page.
//!
//! Haven's phrase list format, one entry a line:
//!
//! ```text
//! # comments start with '#'
//! category: pornography
//! 40 free porn
//! -60 sex education
//! 80 naked + pictures
//! 25 porn*
//! ```

use std::collections::HashMap;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

pub use crate::textfile::Undecided;

/// A line that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseError {
    /// `file:line`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// Why a line of a phrase list is not an entry (the message of its [`PhraseError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum LineError {
    #[error("an empty phrase")]
    EmptyPhrase,
    #[error("expected <phrase> at {0:?}")]
    ExpectedPhrase(String),
    #[error("a < without its >")]
    Unclosed,
    #[error("no <phrase><weight>")]
    NoPhrase,
    #[error("<{0}> is not a weight")]
    NotAWeight(String),
    #[error("weight {0} out of range")]
    WeightOutOfRange(i32),
    #[error("a weight without a phrase")]
    WeightWithoutPhrase,
}

/// Why phrases could not be compiled into a [`Scanner`].
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    /// A combination (`a + b + …`) of more parts than a scanner follows.
    #[error("a combination of more than {MAX_PARTS} parts")]
    TooManyParts,
    /// More combinations than a scanner numbers.
    #[error("{0}")]
    TooManyCombinations(#[from] std::num::TryFromIntError),
    /// The automaton could not be built.
    #[error("{0}")]
    Build(#[from] aho_corasick::BuildError),
}

/// One entry of a phrase list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    /// The category it counts towards.
    pub category: String,
    /// Its weight (negative: evidence the page is harmless).
    pub weight: i32,
    /// The parts (one for a plain phrase), as written, with `*` marking a part-word end.
    pub parts: Vec<String>,
}

/// Largest weight magnitude accepted.
const MAX_WEIGHT: i32 = 10_000;

/// Reads Haven's phrase-list format. `origin` names the file in errors. Entries before any
/// `category:` line are refused.
pub fn parse(text: &str, origin: &str) -> (Vec<Phrase>, Vec<PhraseError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut category: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{origin}:{}", n + 1);
        let line = raw.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(c) = line.strip_prefix("category:") {
            let c = c.trim();
            if c.is_empty() {
                errors.push(PhraseError {
                    at,
                    message: "category: needs a name".into(),
                });
            } else {
                category = Some(c.to_owned());
            }
            continue;
        }
        let Some(cat) = &category else {
            errors.push(PhraseError {
                at,
                message: "an entry before any `category:` line".into(),
            });
            continue;
        };
        let (w, phrase) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let weight = match w.parse::<i32>() {
            Ok(w) if w != 0 && w.abs() <= MAX_WEIGHT => w,
            _ => {
                errors.push(PhraseError {
                    at,
                    message: format!(
                        "{w:?} is not a weight (a whole number, not 0, at most {MAX_WEIGHT} either way)"
                    ),
                });
                continue;
            }
        };
        match entry(cat, weight, phrase.split('+')) {
            Ok(p) => out.push(p),
            Err(e) => errors.push(PhraseError {
                at,
                message: e.to_string(),
            }),
        }
    }
    (out, errors)
}

fn entry<'a>(
    category: &str,
    weight: i32,
    parts: impl Iterator<Item = &'a str>,
) -> Result<Phrase, LineError> {
    let parts: Vec<String> = parts.map(|p| p.trim().to_owned()).collect();
    if parts.is_empty() || parts.iter().any(|p| normalise_phrase(p).trim().is_empty()) {
        return Err(LineError::EmptyPhrase);
    }
    Ok(Phrase {
        category: category.to_owned(),
        weight,
        parts,
    })
}

/// Writes phrases in Haven's format (grouped by category, in the order given).
pub fn write(phrases: &[Phrase]) -> String {
    let mut out = String::from("# Haven phrase list\n");
    let mut current: Option<&str> = None;
    for p in phrases {
        if current != Some(p.category.as_str()) {
            out.push_str(&format!("\ncategory: {}\n", p.category));
            current = Some(&p.category);
        }
        out.push_str(&format!("{} {}\n", p.weight, p.parts.join(" + ")));
    }
    out
}

/// Reads an e2guardian / DansGuardian weighted phrase list: `<phrase><weight>` lines, `,`
/// between the parts of a combination, `< word >` with spaces for whole words, `#listcategory:`
/// naming the category. Real lists come in UTF-8, Latin-1, Windows-1251, GB2312, Shift_JIS…,
/// with byte-order marks and trailing comments: the file is read in the encoding it was written
/// in (`textfile::decode_detected`), or not at all when that cannot be told (`Undecided`: a
/// Japanese list read as Latin-1 would match every English page); what is sound is imported
/// and the rest reported by `file:line`.
pub fn import_e2guardian(
    bytes: &[u8],
    origin: &str,
    default_category: &str,
) -> Result<(Vec<Phrase>, Vec<PhraseError>), Undecided> {
    let (phrases, errors, _) = import_e2guardian_with_includes(bytes, origin, default_category)?;
    Ok((phrases, errors))
}

/// What [`import_e2guardian_with_includes`] read from one file: its phrases, the lines left
/// out, and the files its `.Include<path>` lines name (with the `file:line` naming them).
pub type E2Import = (Vec<Phrase>, Vec<PhraseError>, Vec<(String, String)>);

/// As [`import_e2guardian`], also returning the files its `.Include<path>` lines name (with
/// the `file:line` naming them), for the caller to read in turn.
pub fn import_e2guardian_with_includes(
    bytes: &[u8],
    origin: &str,
    default_category: &str,
) -> Result<E2Import, Undecided> {
    let text = crate::textfile::decode_detected(bytes)?.text;
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut includes = Vec::new();
    let mut category = default_category.to_owned();
    for (n, raw) in text.lines().enumerate() {
        let at = format!("{origin}:{}", n + 1);
        let line = raw.trim();
        if let Some(c) = line.strip_prefix("#listcategory:") {
            let c = c.trim().trim_matches('"').trim();
            if !c.is_empty() {
                category = c.to_ascii_lowercase().replace(' ', "-");
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line
            .strip_prefix(".Include<")
            .or_else(|| line.strip_prefix(".include<"))
        {
            match rest.split_once('>') {
                Some((path, _)) if !path.trim().is_empty() => {
                    includes.push((path.trim().to_owned(), at));
                }
                _ => errors.push(PhraseError {
                    at,
                    message: format!("{line}: not .Include<path>"),
                }),
            }
            continue;
        }
        match e2_line(line) {
            Ok((parts, weight)) => match entry(&category, weight, parts.iter().map(String::as_str))
            {
                Ok(p) => out.push(p),
                Err(e) => errors.push(PhraseError {
                    at,
                    message: e.to_string(),
                }),
            },
            Err(e) => errors.push(PhraseError {
                at,
                message: e.to_string(),
            }),
        }
    }
    Ok((out, errors, includes))
}

/// `<a>,<b><30>` → (["*a*", "*b*"], 30); `< a >` → whole word `a`.
fn e2_line(line: &str) -> Result<(Vec<String>, i32), LineError> {
    let mut groups = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() || rest.starts_with('#') {
            break;
        }
        let Some(body) = rest.strip_prefix('<') else {
            return Err(LineError::ExpectedPhrase(rest.to_owned()));
        };
        let Some(end) = body.find('>') else {
            return Err(LineError::Unclosed);
        };
        groups.push(&body[..end]);
        rest = &body[end + 1..];
    }
    let Some(weight) = groups.pop() else {
        return Err(LineError::NoPhrase);
    };
    let weight: i32 = weight
        .trim()
        .parse()
        .map_err(|_| LineError::NotAWeight(weight.to_owned()))?;
    if weight == 0 || weight.abs() > MAX_WEIGHT {
        return Err(LineError::WeightOutOfRange(weight));
    }
    if groups.is_empty() {
        return Err(LineError::WeightWithoutPhrase);
    }
    let parts = groups
        .into_iter()
        .map(|g| {
            let start = if g.starts_with(' ') { "" } else { "*" };
            let end = if g.ends_with(' ') { "" } else { "*" };
            format!("{start}{}{end}", g.trim())
        })
        .collect();
    Ok((parts, weight))
}

/// The normalised pattern of a written phrase part: spaces at the ends unless marked `*`.
fn normalise_phrase(part: &str) -> String {
    let (lead, body) = match part.strip_prefix('*') {
        Some(b) => ("", b),
        None => (" ", part),
    };
    let (body, trail) = match body.strip_suffix('*') {
        Some(b) => (b, ""),
        None => (body, " "),
    };
    let mut n = Normaliser::new(false);
    let mut text = Vec::new();
    n.feed(body.as_bytes(), &mut |b| text.push(b));
    n.finish(&mut |b| text.push(b));
    let core = String::from_utf8_lossy(&text).trim().to_owned();
    format!("{lead}{core}{trail}")
}

/// Hashing for small integer keys (pattern and combination ids): one multiply. The keys are
/// Haven's own, so no one can choose them to collide.
type IdHash = std::hash::BuildHasherDefault<IdHasher>;

#[derive(Debug, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What one pattern of the automaton counts for.
#[derive(Debug, Clone, Copy)]
enum Use {
    /// A plain phrase: `weight` to `category` per occurrence.
    Phrase { category: usize, weight: i32 },
    /// Part `index` of combination `combo`.
    Part { combo: u32, index: u8 },
}

#[derive(Debug)]
struct Combo {
    category: usize,
    weight: i32,
    /// One bit per part: the mask a page must fill.
    all: u64,
}

/// Parts a combination may have.
const MAX_PARTS: usize = 64;

/// Compiled phrase lists, shared by every scan.
#[derive(Debug)]
pub struct Scanner {
    dfa: DFA,
    uses: Vec<Vec<Use>>,
    combos: Vec<Combo>,
    categories: Vec<String>,
    /// The written form of each pattern, for reporting.
    written: Vec<String>,
}

impl Scanner {
    /// Compiles phrases. Identical phrases from several lists share one pattern.
    pub fn new(phrases: &[Phrase]) -> Result<Scanner, ScannerError> {
        let mut categories: Vec<String> = Vec::new();
        let mut cat_index = |c: &str| match categories.iter().position(|x| x == c) {
            Some(i) => i,
            None => {
                categories.push(c.to_owned());
                categories.len() - 1
            }
        };
        let mut patterns: Vec<String> = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let mut by_pattern: HashMap<String, usize> = HashMap::new();
        let mut uses: Vec<Vec<Use>> = Vec::new();
        let mut combos = Vec::new();
        let mut pattern = |p: &str, uses: &mut Vec<Vec<Use>>| {
            let norm = normalise_phrase(p);
            *by_pattern.entry(norm.clone()).or_insert_with(|| {
                patterns.push(norm);
                written.push(p.to_owned());
                uses.push(Vec::new());
                patterns.len() - 1
            })
        };
        for ph in phrases {
            let category = cat_index(&ph.category);
            if ph.parts.len() == 1 {
                let id = pattern(&ph.parts[0], &mut uses);
                uses[id].push(Use::Phrase {
                    category,
                    weight: ph.weight,
                });
            } else {
                if ph.parts.len() > MAX_PARTS {
                    return Err(ScannerError::TooManyParts);
                }
                let combo = u32::try_from(combos.len())?;
                for (index, part) in ph.parts.iter().enumerate() {
                    let id = pattern(part, &mut uses);
                    uses[id].push(Use::Part {
                        combo,
                        index: index as u8,
                    });
                }
                combos.push(Combo {
                    category,
                    weight: ph.weight,
                    all: u64::MAX >> (64 - ph.parts.len()),
                });
            }
        }
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .build(&patterns)?;
        Ok(Scanner {
            dfa,
            uses,
            combos,
            categories,
            written,
        })
    }

    /// Starts scoring one page. `html`: skip tags, scripts and styles, and read entities.
    pub fn scan(&self, html: bool) -> Scan<'_> {
        let state = self.dfa.start_state(Anchored::No).unwrap_or(StateID::ZERO);
        let mut s = Scan {
            scanner: self,
            state,
            normaliser: Normaliser::new(html),
            seen: HashMap::default(),
            by_category: vec![0; self.categories.len()],
            counts: HashMap::default(),
            settled: false,
            bytes: 0,
        };
        // The text starts at a word boundary.
        s.step(b' ');
        s
    }

    /// Scores a whole text at once.
    pub fn score(&self, text: &[u8], html: bool) -> Score {
        let mut s = self.scan(html);
        s.feed(text);
        s.finish()
    }
}

/// One page being scored.
#[derive(Debug)]
pub struct Scan<'a> {
    scanner: &'a Scanner,
    state: StateID,
    normaliser: Normaliser,
    /// Parts seen so far, per combination touched.
    seen: HashMap<u32, u64, IdHash>,
    by_category: Vec<i64>,
    /// Occurrences per pattern, and the patterns found in the order found, for the report.
    counts: HashMap<usize, u32, IdHash>,
    settled: bool,
    bytes: u64,
}

/// A page's score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Score {
    /// Sum over all categories.
    pub total: i64,
    /// Categories with a non-zero score, highest first.
    pub categories: Vec<(String, i64)>,
    /// Phrases found, as written, with how often (most frequent first, at most 10).
    pub phrases: Vec<(String, u32)>,
}

impl Scan<'_> {
    #[inline(always)]
    fn step(&mut self, b: u8) {
        let dfa = &self.scanner.dfa;
        self.state = dfa.next_state(Anchored::No, self.state, b);
        if dfa.is_match(self.state) {
            self.matched();
        }
    }

    #[cold]
    #[inline(never)]
    fn matched(&mut self) {
        let dfa = &self.scanner.dfa;
        {
            for i in 0..dfa.match_len(self.state) {
                let pid = dfa.match_pattern(self.state, i).as_usize();
                *self.counts.entry(pid).or_default() += 1;
                for u in self.scanner.uses.get(pid).map_or(&[][..], |u| &u[..]) {
                    match *u {
                        Use::Phrase { category, weight } => {
                            self.by_category[category] += i64::from(weight);
                        }
                        Use::Part { combo, index } => {
                            *self.seen.entry(combo).or_default() |= 1 << index;
                        }
                    }
                }
            }
        }
    }

    /// Scores the next piece of the page (any split, even inside a character or a tag).
    pub fn feed(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        let mut n = std::mem::take(&mut self.normaliser);
        n.feed(chunk, &mut |b| self.step(b));
        self.normaliser = n;
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The score so far, without combinations (cheap; for stopping early).
    pub fn running_total(&self) -> i64 {
        self.by_category.iter().sum()
    }

    /// The page's score.
    pub fn finish(mut self) -> Score {
        self.settle();
        self.report()
    }

    /// The page's total, without the report (nothing allocated): enough to let a page through.
    /// [`Scan::report`] then gives the details when it is not let through.
    pub fn total(&mut self) -> i64 {
        self.settle();
        self.by_category.iter().sum()
    }

    /// Ends the text and adds the combinations found complete (once).
    fn settle(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        let mut n = std::mem::take(&mut self.normaliser);
        n.finish(&mut |b| self.step(b));
        self.step(b' ');
        for (&combo, &mask) in &self.seen {
            if let Some(c) = self.scanner.combos.get(combo as usize) {
                if mask == c.all {
                    self.by_category[c.category] += i64::from(c.weight);
                }
            }
        }
    }

    /// The score in full, after [`Scan::total`].
    pub fn report(&mut self) -> Score {
        self.settle();
        let mut categories: Vec<(String, i64)> = self
            .by_category
            .iter()
            .enumerate()
            .filter(|(_, s)| **s != 0)
            .map(|(i, s)| (self.scanner.categories[i].clone(), *s))
            .collect();
        categories.sort_by_key(|c| std::cmp::Reverse(c.1));
        let mut hits: Vec<(usize, u32)> = self.counts.iter().map(|(&p, &n)| (p, n)).collect();
        // Most frequent first; ties in the order of the lists, so reports are stable.
        hits.sort_by_key(|&(p, n)| (std::cmp::Reverse(n), p));
        Score {
            total: self.by_category.iter().sum(),
            categories,
            phrases: hits
                .iter()
                .take(10)
                .map(|(p, n)| (self.scanner.written[*p].clone(), *n))
                .collect(),
        }
    }
}

/// The text normaliser, a byte-at-a-time state machine.
#[derive(Debug, Default)]
struct Normaliser {
    html: bool,
    /// Inside `<…>`; with the tag name read so far.
    in_tag: bool,
    tag: Vec<u8>,
    /// Inside `<script>` or `<style>`: the closing tag to wait for.
    skip_until: Option<&'static [u8]>,
    /// Inside `&…;`.
    entity: Option<Vec<u8>>,
    /// A partial UTF-8 character.
    utf8: Vec<u8>,
    pending_space: bool,
    prev_single: bool,
    cur_len: usize,
    held: Option<char>,
}

/// `text` as the scanner reads it, appended to `out`: lower case, accents and leetspeak folded,
/// look-alike letters of other alphabets read as Latin ones, spaced-out letters joined, words
/// separated by single spaces. (Shared by the risk library's grading.)
pub(crate) fn normalise_into(text: &str, out: &mut Vec<u8>) {
    let mut n = Normaliser::new(false);
    n.feed(text.as_bytes(), &mut |b| out.push(b));
    n.finish(&mut |b| out.push(b));
}

impl Normaliser {
    fn new(html: bool) -> Self {
        Normaliser {
            html,
            ..Normaliser::default()
        }
    }

    fn feed<O: FnMut(u8)>(&mut self, bytes: &[u8], out: &mut O) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn finish<O: FnMut(u8)>(&mut self, out: &mut O) {
        self.separator(out);
    }

    #[inline(always)]
    fn byte<O: FnMut(u8)>(&mut self, b: u8, out: &mut O) {
        // The common case, plain ASCII outside tags, entities and partial characters: one
        // table lookup.
        if !self.busy() {
            match ASCII_CLASS[usize::from(b)] {
                Class::Letter(l) => return self.letter_byte(l, out),
                Class::Separator => return self.separator(out),
                Class::Other => {}
            }
        }
        self.byte_slow(b, out);
    }

    #[inline(always)]
    fn busy(&self) -> bool {
        self.in_tag || self.skip_until.is_some() || self.entity.is_some() || !self.utf8.is_empty()
    }

    fn byte_slow<O: FnMut(u8)>(&mut self, b: u8, out: &mut O) {
        if self.html {
            if let Some(until) = self.skip_until {
                // Wait for `</script` or `</style`, case-insensitively.
                self.tag.push(b.to_ascii_lowercase());
                if self.tag.len() > until.len() {
                    self.tag.remove(0);
                }
                if self.tag == until {
                    self.skip_until = None;
                    self.tag.clear();
                    self.in_tag = true;
                }
                return;
            }
            if self.in_tag {
                if b == b'>' {
                    self.in_tag = false;
                    let name: Vec<u8> = self
                        .tag
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .copied()
                        .collect();
                    self.skip_until = match name.as_slice() {
                        b"script" => Some(b"</script"),
                        b"style" => Some(b"</style"),
                        _ => None,
                    };
                    self.tag.clear();
                    self.separator(out);
                } else if self.tag.len() < 16 {
                    self.tag.push(b.to_ascii_lowercase());
                }
                return;
            }
            if b == b'<' {
                self.in_tag = true;
                self.tag.clear();
                return;
            }
            if let Some(e) = &mut self.entity {
                if b == b';' || e.len() > 8 || !b.is_ascii_alphanumeric() && b != b'#' {
                    let e = self.entity.take().unwrap_or_default();
                    let c = entity(&e).unwrap_or(' ');
                    self.char(c, out);
                    if b != b';' {
                        self.byte(b, out);
                    }
                } else {
                    e.push(b);
                }
                return;
            }
            if b == b'&' {
                self.entity = Some(Vec::new());
                return;
            }
        }
        if b < 0x80 {
            self.utf8.clear();
            self.char(char::from(b), out);
            return;
        }
        if b & 0xC0 == 0xC0 {
            self.utf8.clear();
        }
        self.utf8.push(b);
        if let Ok(s) = std::str::from_utf8(&self.utf8) {
            let c = s.chars().next().unwrap_or(' ');
            self.utf8.clear();
            self.char(c, out);
        } else if self.utf8.len() >= 4 {
            // Not UTF-8 (Latin-1, say): read each byte as its Latin-1 character.
            let bytes = std::mem::take(&mut self.utf8);
            for b in bytes {
                self.char(char::from(b), out);
            }
        }
    }

    fn char<O: FnMut(u8)>(&mut self, c: char, out: &mut O) {
        match fold(c) {
            Some(Fold::Join) => {}
            Some(Fold::One(l)) => self.letter(l, out),
            Some(Fold::Two(a, b)) => {
                self.letter(a, out);
                self.letter(b, out);
            }
            None => self.separator(out),
        }
    }

    fn emit<O: FnMut(u8)>(c: char, out: &mut O) {
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            out(b);
        }
    }

    #[inline]
    fn letter_byte<O: FnMut(u8)>(&mut self, l: u8, out: &mut O) {
        if self.held.is_none() {
            if self.cur_len > 0 {
                out(l);
                self.cur_len += 1;
                return;
            }
            if !(self.pending_space && self.prev_single) {
                if self.pending_space {
                    out(b' ');
                    self.pending_space = false;
                }
                out(l);
                self.cur_len = 1;
                return;
            }
        }
        self.letter(char::from(l), out);
    }

    fn letter<O: FnMut(u8)>(&mut self, c: char, out: &mut O) {
        if self.cur_len == 0 {
            if self.pending_space && self.prev_single {
                // Maybe a letter spaced out from the last one ("p o r n"): wait and see.
                self.held = Some(c);
            } else {
                if self.pending_space {
                    out(b' ');
                }
                Self::emit(c, out);
            }
            self.pending_space = false;
            self.cur_len = 1;
        } else {
            if let Some(h) = self.held.take() {
                out(b' ');
                Self::emit(h, out);
            }
            Self::emit(c, out);
            self.cur_len += 1;
        }
    }

    fn separator<O: FnMut(u8)>(&mut self, out: &mut O) {
        if self.cur_len == 0 {
            return;
        }
        if let Some(h) = self.held.take() {
            // Single letter after single letter: joined.
            Self::emit(h, out);
        }
        self.prev_single = self.cur_len == 1;
        self.cur_len = 0;
        self.pending_space = true;
    }
}

/// What an ASCII byte is, outside tags and entities.
#[derive(Debug, Clone, Copy)]
enum Class {
    /// A letter to match as this byte (folded: lower case, leetspeak read).
    Letter(u8),
    /// Space or punctuation.
    Separator,
    /// Needs a closer look (`<`, `&`, an apostrophe, non-ASCII).
    Other,
}

const ASCII_CLASS: [Class; 256] = {
    let mut t = [Class::Other; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = match c {
            b'a'..=b'z' | b'2' | b'6' | b'8' | b'9' => Class::Letter(c),
            b'A'..=b'Z' => Class::Letter(c + 32),
            b'0' => Class::Letter(b'o'),
            b'1' => Class::Letter(b'i'),
            b'3' => Class::Letter(b'e'),
            b'4' | b'@' => Class::Letter(b'a'),
            b'5' | b'$' => Class::Letter(b's'),
            b'7' => Class::Letter(b't'),
            b'<' | b'&' | b'\'' => Class::Other,
            _ => Class::Separator,
        };
        b += 1;
    }
    t
};

/// A character as the scanner sees it.
#[derive(Debug, Clone, Copy)]
enum Fold {
    /// Part of a word, but nothing to match (an apostrophe, a zero-width joiner).
    Join,
    /// One letter.
    One(char),
    /// Two letters (ß → ss).
    Two(char, char),
}

/// Lower case, without accents, leetspeak read as the letter it stands for; `None` for a
/// separator. Letters of other scripts (Welsh, Polish, Arabic, Urdu…) are kept, lower-cased.
fn fold(c: char) -> Option<Fold> {
    use Fold::{Join, One, Two};
    Some(match c {
        'a'..='z' | '2' | '6' | '8' | '9' => One(c),
        'A'..='Z' => One(c.to_ascii_lowercase()),
        '0' => One('o'),
        '1' => One('i'),
        '3' => One('e'),
        '4' | '@' => One('a'),
        '5' | '$' => One('s'),
        '7' => One('t'),
        '\'' | '\u{2019}' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}' | '\u{ad}' => Join,
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'ā' | 'ą' | 'Ą' => {
            One('a')
        }
        'ç' | 'Ç' | 'ć' | 'Ć' | 'č' | 'Č' => One('c'),
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' | 'ē' | 'ę' | 'Ę' | 'ě' => {
            One('e')
        }
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'ī' => One('i'),
        'ñ' | 'Ñ' | 'ń' | 'Ń' => One('n'),
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'ō' => {
            One('o')
        }
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'ū' => One('u'),
        'ý' | 'ÿ' | 'Ý' | 'ŵ' | 'Ŵ' | 'ŷ' | 'Ŷ' => One('y'),
        'ł' | 'Ł' => One('l'),
        'ś' | 'Ś' | 'š' | 'Š' => One('s'),
        'ź' | 'ż' | 'Ź' | 'Ż' | 'ž' | 'Ž' => One('z'),
        'ß' => Two('s', 's'),
        // Letters of the Cyrillic and Greek alphabets that look like Latin ones, as used to
        // slip a word past a filter ("саsino" with a Cyrillic с).
        'а' | 'А' | 'α' | 'Α' => One('a'),
        'с' | 'С' => One('c'),
        'е' | 'Е' | 'ε' | 'Ε' => One('e'),
        'і' | 'І' | 'ι' | 'Ι' => One('i'),
        'ј' | 'Ј' => One('j'),
        'к' | 'К' | 'κ' | 'Κ' => One('k'),
        'о' | 'О' | 'ο' | 'Ο' => One('o'),
        'р' | 'Р' | 'ρ' | 'Ρ' => One('p'),
        'ѕ' | 'Ѕ' => One('s'),
        'т' | 'Т' | 'τ' | 'Τ' => One('t'),
        'у' | 'У' | 'υ' | 'Υ' => One('y'),
        'х' | 'Х' | 'χ' | 'Χ' => One('x'),
        'ν' | 'Ν' => One('v'),
        c if c.is_alphabetic() => One(c.to_lowercase().next().unwrap_or(c)),
        _ => return None,
    })
}

/// The character an HTML entity (`amp`, `#39`, `#x27`…) names, if it is one this reads.
pub(crate) fn entity(e: &[u8]) -> Option<char> {
    match e {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        b"nbsp" => Some(' '),
        _ => {
            let num = match e {
                [b'#', b'x' | b'X', hex @ ..] => std::str::from_utf8(hex)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok()),
                [b'#', dec @ ..] => std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()),
                _ => None,
            };
            num.and_then(char::from_u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str, html: bool) -> String {
        let mut n = Normaliser::new(html);
        let mut out = Vec::new();
        n.feed(text.as_bytes(), &mut |b| out.push(b));
        n.finish(&mut |b| out.push(b));
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn normalises_case_accents_leet_spacing_and_html() {
        assert_eq!(norm("Hello,   WORLD!!", false), "hello world");
        assert_eq!(norm("Crème Brûlée", false), "creme brulee");
        assert_eq!(norm("fr33 p0rn", false), "free porn");
        assert_eq!(norm("p o r n and a cat", false), "porn and a cat");
        assert_eq!(norm("don't", false), "dont");
        assert_eq!(
            norm(
                "<p>Free<b>bets</b> &amp; <script>var porn = 1;</script>odds&#33;</p>",
                true
            ),
            "free bets odds"
        );
        assert_eq!(norm("<STYLE>.porn{}</STYLE>clean", true), "clean");
        assert_eq!(norm("Łódź Caerdydd ŵyn", false), "lodz caerdydd yyn");
    }

    fn scanner(list: &str) -> Scanner {
        let (phrases, errors) = parse(list, "test");
        assert!(errors.is_empty(), "{errors:?}");
        Scanner::new(&phrases).expect("compiles")
    }

    const LIST: &str = "category: gambling\n\
        30 free bets\n\
        20 casino\n\
        25 odds*\n\
        -40 gambling addiction help\n\
        60 poker + real money\n";

    #[test]
    fn weights_boundaries_combinations_and_negatives() {
        let s = scanner(LIST);
        let score = |t: &str| s.score(t.as_bytes(), false).total;
        assert_eq!(score("FREE BETS at the casino"), 50);
        assert_eq!(score("casino casino casino"), 60, "every occurrence counts");
        assert_eq!(score("casinos"), 0, "whole words only");
        assert_eq!(score("oddsmakers"), 25, "a part-word end");
        assert_eq!(score("poker night"), 0);
        assert_eq!(
            score("play poker for real money"),
            60,
            "all parts on one page"
        );
        assert_eq!(score("casino: gambling addiction help here"), -20);
        let full = s.score(b"free bets, casino", false);
        assert_eq!(full.categories, vec![("gambling".to_owned(), 50)]);
        assert_eq!(full.phrases.len(), 2);
    }

    #[test]
    fn any_chunking_gives_the_same_score() {
        let s = scanner(LIST);
        let page = "<html><body>Fr&#101;e b3ts! Play <i>poker</i> for real money at the cas1no. Crème &amp; odds</body></html>";
        let whole = s.score(page.as_bytes(), true);
        assert!(whole.total > 100, "{whole:?}");
        for size in [1, 2, 3, 5, 7, 64] {
            let mut scan = s.scan(true);
            for chunk in page.as_bytes().chunks(size) {
                scan.feed(chunk);
            }
            assert_eq!(scan.finish(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn bad_lines_are_reported_by_line() {
        let (ok, errors) = parse(
            "30 before category\ncategory: x\nabc free\n0 zero\n20 \n15 fine\n",
            "list.txt",
        );
        assert_eq!(ok.len(), 1);
        let at: Vec<&str> = errors.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(at, ["list.txt:1", "list.txt:3", "list.txt:4", "list.txt:5"]);
        let round = write(&ok);
        assert_eq!(parse(&round, "again").0, ok);
    }

    #[test]
    fn lists_in_other_encodings_score_their_language_and_never_english() {
        let english = "The school trip to the science museum is on Friday. Pupils should \
            bring a packed lunch, a coat and a water bottle; we return by half past three. \
            Sign the consent form, pay \u{a3}5 on ParentPay and tell us of any allergies.";
        for (bytes, page) in [
            (
                include_bytes!("../testdata/encodings/weighted_chinese_gb2312").as_slice(),
                "欢迎来到网上赌场，注册即可下注",
            ),
            (
                include_bytes!("../testdata/encodings/weighted_chinese_big5").as_slice(),
                "歡迎來到網上賭場，註冊即可下注",
            ),
            (
                include_bytes!("../testdata/encodings/weighted_japanese_shift_jis").as_slice(),
                "オンラインカジノで無料スピン",
            ),
            (
                include_bytes!("../testdata/encodings/weighted_japanese_euc_jp").as_slice(),
                "オンラインカジノで無料スピン",
            ),
            (
                include_bytes!("../testdata/encodings/weighted_russian_windows1251").as_slice(),
                "лучшее онлайн казино и ставки на спорт",
            ),
        ] {
            let (phrases, errors) = import_e2guardian(bytes, "weighted", "misc").expect("told");
            assert!(errors.is_empty(), "{errors:?}");
            assert!(phrases.len() >= 15, "{phrases:?}");
            let s = Scanner::new(&phrases).expect("compiles");
            assert_eq!(s.score(english.as_bytes(), false).total, 0, "{page}");
            assert!(s.score(page.as_bytes(), false).total >= 80, "{page}");
        }
        // Read as Latin-1 (as before), the Shift_JIS list scored the same English page.
        let bytes = include_bytes!("../testdata/encodings/weighted_japanese_shift_jis");
        let misread: String = bytes.iter().map(|&b| char::from(b)).collect();
        let (phrases, _) = import_e2guardian(misread.as_bytes(), "misread", "misc").expect("utf-8");
        let s = Scanner::new(&phrases).expect("compiles");
        assert!(s.score(english.as_bytes(), false).total > 0);
        // A file mixing encodings is not read at all.
        let mixed = include_bytes!("../testdata/encodings/weighted_japanese_mixed");
        assert_eq!(
            import_e2guardian(mixed, "weighted", "misc").map(|_| ()),
            Err(Undecided::Mixed)
        );
    }

    #[test]
    fn imports_e2guardian_lists_as_real_ones_come() {
        // Latin-1 bytes (é as 0xE9), a byte-order mark, a trailing comment, a combination,
        // whole-word and part-word phrases, an include and malformed lines.
        let mut bytes = b"\xEF\xBB\xBF#listcategory: \"Gambling\"\n".to_vec();
        bytes
            .extend_from_slice(b"< casino ><50>\n<pok\xE9r><40> # jeux de cartes \xE0 la fran\xE7aise, d\xE9j\xE0 interdits\n<free>,<bets><60>\n");
        bytes.extend_from_slice(
            b".Include</etc/e2guardian/lists/other>\n<broken<30>\n<no weight>\n< odds><-5>\n",
        );
        let (phrases, errors, includes) =
            import_e2guardian_with_includes(&bytes, "weighted", "misc").expect("Latin-1 is told");
        let named = [(
            "/etc/e2guardian/lists/other".to_owned(),
            "weighted:5".to_owned(),
        )];
        assert_eq!(includes, named);
        assert_eq!(phrases.len(), 4, "{phrases:?} {errors:?}");
        assert_eq!(phrases[0].parts, ["casino"]);
        assert_eq!(phrases[0].category, "gambling");
        assert_eq!(phrases[1].parts, ["*pokér*"], "Latin-1 read as such");
        assert_eq!(phrases[2].parts, ["*free*", "*bets*"]);
        assert_eq!(phrases[3].parts, ["odds*"]);
        let lines: Vec<&str> = errors.iter().map(|e| e.at.as_str()).collect();
        assert_eq!(lines, ["weighted:6", "weighted:7"]);
        let s = Scanner::new(&phrases).expect("compiles");
        assert_eq!(s.score("Póker!".as_bytes(), false).total, 40);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let s = scanner(LIST);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let mut page = Vec::new();
            for _ in 0..(seed % 300) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                page.push((seed >> 24) as u8);
            }
            let _ = s.score(&page, seed % 2 == 0);
        }
    }
}
