//! Haven's learned text classifier: a second opinion beside the risk library, learned from
//! examples rather than written down. A text's hashed features (words, pairs of words, letter
//! groups: [`features`]) are averaged into a small vector, which two heads read: the category
//! (none or one of the eleven monitoring categories) and the grade (0 to 5). This is fastText's
//! supervised model, with two heads sharing one embedding. It is small enough to ship in the
//! binary, runs in microseconds per search term in plain Rust, and is trained here, from the
//! texts in `config/model/train`, by `haven monitor train`: the same texts and seed give the
//! same model, byte for byte.
//!
//! Pure: no I/O, no clock; the caller reads and writes files.

pub mod features;
mod train;

pub use train::{train, Example, TrainOptions};

/// What the category head chooses between: `none`, then the risk library's categories.
pub const CATEGORIES: [&str; 12] = [
    "none",
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

/// Grades 0 (nothing of concern) to 5.
pub const GRADES: usize = 6;

/// The fewest words the model gives an opinion on. None of its training texts has fewer than
/// two, and no concern of grade 4 or 5 fewer than three; on one or two words it read whatever
/// a frequent word's vector happened to carry ("the", "friday" and "bridge" alone each read as
/// grade 5), so a text that short is the library's alone.
pub const MIN_WORDS: usize = 3;

const MAGIC: &[u8; 8] = b"HAVENTX1";

/// A trained model. Its embedding is kept as 8-bit numbers with one scale a row (a quarter of
/// the memory of 32-bit floats, and the form it is stored in).
#[derive(Clone, PartialEq)]
pub struct Model {
    buckets: u32,
    dim: usize,
    /// `buckets × dim`, each row times its scale.
    rows: Vec<i8>,
    scales: Vec<f32>,
    /// Category head: `CATEGORIES.len() × dim`, then a bias each.
    cat_w: Vec<f32>,
    cat_b: Vec<f32>,
    /// Grade head: `GRADES × dim`, then a bias each.
    grade_w: Vec<f32>,
    grade_b: Vec<f32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("buckets", &self.buckets)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

/// The model's opinion of a text.
#[derive(Debug, Clone, PartialEq)]
pub struct Opinion {
    /// The most likely category other than `none` (what the text is about if it is a concern).
    pub category: &'static str,
    /// How likely that category is, 0 to 1.
    pub category_p: f32,
    /// How likely the category head finds it that the text is in no category (a second
    /// reading of "ordinary", beside the grade head's grade 0).
    pub none_p: f32,
    /// How likely each grade is, 0 to 5.
    pub grades: [f32; GRADES],
}

impl Opinion {
    /// The most likely grade.
    pub fn grade(&self) -> u8 {
        let mut best = 0;
        for g in 1..GRADES {
            if self.grades[g] > self.grades[best] {
                best = g;
            }
        }
        best as u8
    }

    /// How likely the text is of grade `g` or more.
    pub fn at_least(&self, g: u8) -> f32 {
        self.grades[usize::from(g).min(GRADES)..].iter().sum()
    }
}

/// A model file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Not a model file.
    #[error("not a Haven text model (it does not start with {MAGIC:?})")]
    NotAModel,
    /// Cut short or its sizes do not add up.
    #[error("the model file is damaged: {0}")]
    Damaged(&'static str),
}

impl Model {
    /// The number of feature rows.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The length of a text's vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes the model holds in memory.
    pub fn memory(&self) -> usize {
        self.rows.len()
            + 4 * (self.scales.len()
                + self.cat_w.len()
                + self.cat_b.len()
                + self.grade_w.len()
                + self.grade_b.len())
    }

    /// The model's opinion of `text`; `None` when it has fewer than [`MIN_WORDS`] words.
    pub fn judge(&self, text: &str) -> Option<Opinion> {
        let words = features::words(text);
        if words.len() < MIN_WORDS {
            return None;
        }
        let mut f = Vec::new();
        features::features_of(&words, self.buckets, &mut f);
        self.judge_features(&f)
    }

    fn judge_features(&self, f: &[u32]) -> Option<Opinion> {
        if f.is_empty() {
            return None;
        }
        let mut h = vec![0f32; self.dim];
        for &r in f {
            let r = r as usize;
            let scale = self.scales[r];
            let row = &self.rows[r * self.dim..(r + 1) * self.dim];
            for (hk, &q) in h.iter_mut().zip(row) {
                *hk += scale * f32::from(q);
            }
        }
        let n = f.len() as f32;
        for hk in &mut h {
            *hk /= n;
        }
        Some(self.opinion(&h))
    }

    /// The two heads' reading of a text's vector.
    fn opinion(&self, h: &[f32]) -> Opinion {
        let cats = softmax(&head(&self.cat_w, &self.cat_b, h));
        let grades = softmax(&head(&self.grade_w, &self.grade_b, h));
        let mut best = 1;
        for c in 2..CATEGORIES.len() {
            if cats[c] > cats[best] {
                best = c;
            }
        }
        let mut g = [0f32; GRADES];
        g.copy_from_slice(&grades);
        Opinion {
            category: CATEGORIES[best],
            category_p: cats[best],
            none_p: cats[0],
            grades: g,
        }
    }

    /// The model as bytes (little-endian): magic, sizes, the embedding's scales and rows, then
    /// the two heads.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.memory() + 64);
        out.extend_from_slice(MAGIC);
        for n in [
            self.buckets,
            self.dim as u32,
            CATEGORIES.len() as u32,
            GRADES as u32,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for v in &self.scales {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend(self.rows.iter().map(|&q| q as u8));
        for v in self
            .cat_w
            .iter()
            .chain(&self.cat_b)
            .chain(&self.grade_w)
            .chain(&self.grade_b)
        {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Reads a model written by [`Model::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(ModelError::NotAModel)?;
        let mut r = Reader(rest);
        let buckets = r.u32()?;
        let dim = r.u32()? as usize;
        if r.u32()? as usize != CATEGORIES.len() || r.u32()? as usize != GRADES {
            return Err(ModelError::Damaged(
                "its categories or grades are not this version's",
            ));
        }
        if buckets == 0 || dim == 0 || dim > 1024 || buckets > 1 << 24 {
            return Err(ModelError::Damaged("its sizes are out of range"));
        }
        let scales = r.f32s(buckets as usize)?;
        let rows = r
            .take(buckets as usize * dim)?
            .iter()
            .map(|&b| b as i8)
            .collect();
        let cat_w = r.f32s(CATEGORIES.len() * dim)?;
        let cat_b = r.f32s(CATEGORIES.len())?;
        let grade_w = r.f32s(GRADES * dim)?;
        let grade_b = r.f32s(GRADES)?;
        if !r.0.is_empty() {
            return Err(ModelError::Damaged("bytes left over at the end"));
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(&scales)
            || !finite(&cat_w)
            || !finite(&grade_w)
            || !finite(&cat_b)
            || !finite(&grade_b)
        {
            return Err(ModelError::Damaged("a weight is not a number"));
        }
        Ok(Model {
            buckets,
            dim,
            rows,
            scales,
            cat_w,
            cat_b,
            grade_w,
            grade_b,
        })
    }
}

/// Words in a passage of a page: about a paragraph.
pub const PASSAGE_WORDS: usize = 64;

/// Passages start this many words apart (a quarter of each overlaps the next).
const PASSAGE_STEP: usize = 48;

/// Words of a page read, at most (a page's text is capped before this, too: 32 KiB in the
/// proxy, 256 KiB in monitoring, about 45,000 words). Reading holds 128 bytes a word.
const PAGE_WORDS: usize = 50_000;

/// The passages of a long text (a page): overlapping windows of [`PASSAGE_WORDS`] words, as
/// byte ranges of `text`, so that what decides is what is near together and a capture can keep
/// the passage that decided.
pub fn passages(text: &str) -> Vec<std::ops::Range<usize>> {
    let tokens = features::tokens(text, PAGE_WORDS);
    windows(tokens.len())
        .map(|(a, b)| tokens[a].1.start..tokens[b - 1].1.end)
        .collect()
}

/// Word windows `(first, end)` over `n` words.
fn windows(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let count = if n <= PASSAGE_WORDS {
        usize::from(n > 0)
    } else {
        (n - PASSAGE_WORDS).div_ceil(PASSAGE_STEP) + 1
    };
    (0..count).map(move |k| {
        let a = (k * PASSAGE_STEP).min(n.saturating_sub(PASSAGE_WORDS));
        (a, (a + PASSAGE_WORDS).min(n))
    })
}

impl Model {
    /// The model's opinion of each passage of `text` (see [`passages`]), with its byte range.
    /// The text is read once: each word's features are summed once, and a passage's vector is
    /// the difference of two running sums, so a long page costs about what its words do.
    pub fn judge_passages(&self, text: &str) -> Vec<(Opinion, std::ops::Range<usize>)> {
        let tokens = features::tokens(text, PAGE_WORDS);
        let dim = self.dim;
        // Running sums of the words' vectors and feature counts.
        let mut sums = vec![0f32; (tokens.len() + 1) * dim];
        let mut counts = vec![0usize; tokens.len() + 1];
        let mut scratch = features::Scratch::default();
        let mut f = Vec::new();
        for i in 0..tokens.len() {
            f.clear();
            let next = tokens.get(i + 1).map(|(w, _)| w);
            features::word_features(&tokens[i].0, next, self.buckets, &mut scratch, &mut f);
            let (done, rest) = sums.split_at_mut((i + 1) * dim);
            let (before, now) = (&done[i * dim..], &mut rest[..dim]);
            now.copy_from_slice(before);
            for &r in &f {
                let r = r as usize;
                let scale = self.scales[r];
                for (v, &q) in now.iter_mut().zip(&self.rows[r * dim..(r + 1) * dim]) {
                    *v += scale * f32::from(q);
                }
            }
            counts[i + 1] = counts[i] + f.len();
        }
        windows(tokens.len())
            .filter_map(|(a, b)| {
                let n = counts[b] - counts[a];
                if n == 0 || b - a < MIN_WORDS {
                    return None;
                }
                let h: Vec<f32> = (0..dim)
                    .map(|k| (sums[b * dim + k] - sums[a * dim + k]) / n as f32)
                    .collect();
                Some((self.opinion(&h), tokens[a].1.start..tokens[b - 1].1.end))
            })
            .collect()
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], ModelError> {
        if self.0.len() < n {
            return Err(ModelError::Damaged("it is cut short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn f32s(&mut self, n: usize) -> Result<Vec<f32>, ModelError> {
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

fn head(w: &[f32], b: &[f32], h: &[f32]) -> Vec<f32> {
    b.iter()
        .enumerate()
        .map(|(i, bias)| {
            bias + w[i * h.len()..(i + 1) * h.len()]
                .iter()
                .zip(h)
                .map(|(a, b)| a * b)
                .sum::<f32>()
        })
        .collect()
}

fn softmax(z: &[f32]) -> Vec<f32> {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}
