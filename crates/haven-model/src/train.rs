//! Training: plain stochastic gradient descent on the two heads' cross-entropy, fastText's way
//! (the learning rate falling to nothing over the run), in one thread and in an order drawn from
//! the seed, so the same examples and seed give the same model, byte for byte.

use crate::{features, head, softmax, Model, CATEGORIES, GRADES};

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The text.
    pub text: String,
    /// Its category: `none` or a monitoring category (see [`CATEGORIES`]).
    pub category: String,
    /// Its grade, 0 to 5 (0 with `none`).
    pub grade: u8,
    /// How much it counts (1 is ordinary).
    pub weight: f32,
}

/// How to train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Feature rows.
    pub buckets: u32,
    /// Vector length.
    pub dim: usize,
    /// Passes over the examples.
    pub epochs: u32,
    /// The learning rate at the start.
    pub rate: f32,
    /// Chooses the order of examples and the heads' starting weights.
    pub seed: u64,
    /// The share of a text's features left out at random in each pass (0 keeps them all), so
    /// the model cannot lean on one word of a text.
    pub dropout: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            buckets: 1 << 17,
            dim: 32,
            epochs: 30,
            rate: 0.4,
            seed: 14,
            dropout: 0.0,
        }
    }
}

/// A small, fast, seeded generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-a, a).
    fn symmetric(&mut self, a: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
    }
}

/// Trains a model on `examples` (an example whose category is not one of [`CATEGORIES`] or
/// whose grade is over 5 is left out, and counted in the second value returned).
pub fn train(examples: &[Example], o: &TrainOptions) -> (Model, usize) {
    let dim = o.dim;
    let mut rng = Rng(o.seed);
    let mut skipped = 0;
    let data: Vec<(Vec<u32>, usize, usize, f32)> = examples
        .iter()
        .filter_map(|e| {
            let c = CATEGORIES.iter().position(|c| *c == e.category);
            let f = {
                let mut f = Vec::new();
                features::features(&e.text, o.buckets, &mut f);
                f
            };
            match c {
                Some(c) if usize::from(e.grade) < GRADES && !f.is_empty() => {
                    Some((f, c, usize::from(e.grade), e.weight))
                }
                _ => {
                    skipped += 1;
                    None
                }
            }
        })
        .collect();
    // The embedding starts at zero (a row no text uses stays zero, so a feature never seen in
    // training adds nothing); the heads start small and random.
    let mut emb = vec![0f32; o.buckets as usize * dim];
    let init = 1.0 / dim as f32;
    let mut cat_w: Vec<f32> = (0..CATEGORIES.len() * dim)
        .map(|_| rng.symmetric(init))
        .collect();
    let mut grade_w: Vec<f32> = (0..GRADES * dim).map(|_| rng.symmetric(init)).collect();
    let mut cat_b = vec![0f32; CATEGORIES.len()];
    let mut grade_b = vec![0f32; GRADES];
    let total = (data.len() as u64 * u64::from(o.epochs)).max(1) as f32;
    let mut step = 0f32;
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut h = vec![0f32; dim];
    let mut grad_h = vec![0f32; dim];
    for _ in 0..o.epochs {
        // Fisher–Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &i in &order {
            let (all, c, g, weight) = &data[i];
            let kept: Vec<u32>;
            let f: &[u32] = if o.dropout > 0.0 {
                let keep = ((1.0 - o.dropout) * (1u64 << 24) as f32) as u64;
                kept = all
                    .iter()
                    .copied()
                    .filter(|_| rng.next() >> 40 < keep)
                    .collect();
                if kept.is_empty() {
                    all
                } else {
                    &kept
                }
            } else {
                all
            };
            let lr = o.rate * (1.0 - step / total) * weight;
            step += 1.0;
            h.iter_mut().for_each(|v| *v = 0.0);
            for &r in f {
                let row = &emb[r as usize * dim..(r as usize + 1) * dim];
                for (hk, v) in h.iter_mut().zip(row) {
                    *hk += v;
                }
            }
            let n = f.len() as f32;
            h.iter_mut().for_each(|v| *v /= n);
            grad_h.iter_mut().for_each(|v| *v = 0.0);
            for (w, b, target) in [
                (&mut cat_w, &mut cat_b, *c),
                (&mut grade_w, &mut grade_b, *g),
            ] {
                let p = softmax(&head(w, b, &h));
                for (k, pk) in p.iter().enumerate() {
                    let gk = pk - if k == target { 1.0 } else { 0.0 };
                    let wk = &mut w[k * dim..(k + 1) * dim];
                    for ((gh, wkj), hj) in grad_h.iter_mut().zip(wk.iter_mut()).zip(&h) {
                        *gh += gk * *wkj;
                        *wkj -= lr * gk * hj;
                    }
                    b[k] -= lr * gk;
                }
            }
            for &r in f {
                let row = &mut emb[r as usize * dim..(r as usize + 1) * dim];
                for (v, gh) in row.iter_mut().zip(&grad_h) {
                    *v -= lr * gh / n;
                }
            }
        }
    }
    // Eight bits a weight, one scale a row.
    let mut rows = vec![0i8; emb.len()];
    let mut scales = vec![0f32; o.buckets as usize];
    for (r, row) in emb.chunks_exact(dim).enumerate() {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            continue;
        }
        let scale = max / 127.0;
        scales[r] = scale;
        for (q, v) in rows[r * dim..(r + 1) * dim].iter_mut().zip(row) {
            *q = (v / scale).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (
        Model {
            buckets: o.buckets,
            dim,
            rows,
            scales,
            cat_w,
            cat_b,
            grade_w,
            grade_b,
        },
        skipped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, category: &str, grade: u8) -> Example {
        Example {
            text: text.into(),
            category: category.into(),
            grade,
            weight: 1.0,
        }
    }

    fn small() -> Vec<Example> {
        let mut v = Vec::new();
        for (t, c, g) in [
            ("i want to end it all tonight", "suicide", 5),
            ("goodbye everyone i wont be here tomorrow", "suicide", 5),
            ("nobody would miss me if i was gone", "suicide", 4),
            ("bet on the match saturday", "gambling", 3),
            ("won big at the casino site", "gambling", 3),
            ("odds on the grand national", "gambling", 2),
            ("homework on fractions due friday", "none", 0),
            ("what time is football practice", "none", 0),
            ("can you help me with my science project", "none", 0),
        ] {
            v.push(ex(t, c, g));
        }
        v
    }

    fn options() -> TrainOptions {
        TrainOptions {
            buckets: 1 << 12,
            dim: 8,
            epochs: 60,
            rate: 0.5,
            seed: 1,
            dropout: 0.0,
        }
    }

    #[test]
    fn it_learns_and_the_same_data_and_seed_give_the_same_bytes() {
        let (m, skipped) = train(&small(), &options());
        assert_eq!(skipped, 0);
        let o = m.judge("i want to end it all").expect("words");
        assert_eq!(o.category, "suicide");
        assert!(o.grade() >= 4, "{o:?}");
        let o = m.judge("homework on fractions").expect("words");
        assert_eq!(o.grade(), 0, "{o:?}");
        assert_eq!(m.to_bytes(), train(&small(), &options()).0.to_bytes());
        let other = TrainOptions {
            seed: 2,
            ..options()
        };
        assert_ne!(m.to_bytes(), train(&small(), &other).0.to_bytes());
    }

    #[test]
    fn a_model_reads_back_and_a_damaged_file_is_refused() {
        let (m, _) = train(&small(), &options());
        let bytes = m.to_bytes();
        assert_eq!(Model::from_bytes(&bytes), Ok(m.clone()));
        assert_eq!(
            Model::from_bytes(b"not a model"),
            Err(crate::ModelError::NotAModel)
        );
        assert!(Model::from_bytes(&bytes[..bytes.len() - 3]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Model::from_bytes(&longer).is_err());
        let mut nan = bytes;
        let at = nan.len() - 4;
        nan[at..].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Model::from_bytes(&nan).is_err());
    }

    #[test]
    fn one_or_two_words_get_no_opinion() {
        let (m, _) = train(&small(), &options());
        for short in ["the", "friday", "end it", "  tonight  !!"] {
            assert!(m.judge(short).is_none(), "{short:?}");
            assert!(m.judge_passages(short).is_empty(), "{short:?}");
        }
        assert!(m.judge("end it all").is_some());
    }

    #[test]
    fn a_page_is_read_once_in_overlapping_passages() {
        let (m, _) = train(&small(), &options());
        // A short text is one passage, read as the whole text is.
        let short = "goodbye everyone i wont be here tomorrow";
        let one = m.judge_passages(short);
        assert_eq!(one.len(), 1);
        assert_eq!(&short[one[0].1.clone()], short);
        let whole = m.judge(short).expect("words");
        for (a, b) in one[0].0.grades.iter().zip(whole.grades) {
            assert!((a - b).abs() < 1e-4, "{one:?} {whole:?}");
        }
        // A long one: passages of 64 words, 48 apart, covering it all; the one that decides
        // is the one with the words.
        let filler = "homework on fractions due friday ".repeat(40);
        let page = format!("{filler} i want to end it all tonight {filler}");
        let ps = m.judge_passages(&page);
        let ranges = crate::passages(&page);
        assert_eq!(
            ps.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            ranges
        );
        assert!(ps.len() >= 6, "{}", ps.len());
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges.last().map(|r| r.end), Some(page.trim_end().len()));
        let (worst, range) = ps
            .iter()
            .max_by(|a, b| a.0.at_least(4).total_cmp(&b.0.at_least(4)))
            .expect("passages");
        assert!(page[range.clone()].contains("end it all"), "{worst:?}");
        assert!(m.judge_passages("").is_empty());
    }

    #[test]
    fn unknown_labels_are_left_out_and_counted() {
        let mut v = small();
        v.push(ex("something", "weather", 2));
        v.push(ex("something", "suicide", 9));
        assert_eq!(train(&v, &options()).1, 2);
    }
}
