//! Two opinions, one grade. The risk library catches the wording someone wrote down and says
//! which phrase it was; the learned model ([`haven_model`]) catches paraphrase and other
//! languages. The grade Haven acts on:
//!
//! - a grade-5 phrase of the library always stands (the school's own words for "act now");
//! - the model raises a grade when it is sure enough (its grade in its category), on its own
//!   only to grade 3 or more;
//! - the model lowers a grade of 1 to 3 to nothing when it reads the text as ordinary with
//!   confidence (the library fired on a fragment: "what does kys mean", a recipe, a message to
//!   a grandparent signed with kisses; the phrases are kept as set aside), and a grade of 4 to 3
//!   (still a capture for triage, but no alert: the model never hides a concern the library
//!   found).
//!
//! Every assessment keeps both opinions, so a capture can say which said what.

use std::sync::Arc;

use haven_core::risk::{Grade, RiskLibrary};
use haven_model::{Model, Opinion};

/// How sure the model must be. Chosen by cross-validation on the training texts
/// (`haven monitor train --folds 5`), never on an evaluation corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// The model's grade is the highest grade `g` it finds at least this likely to be reached
    /// (`P(grade >= g)`), for grades 1 to 3.
    pub concern: f32,
    /// The same for grades 4 and 5 (an alert).
    pub alert: f32,
    /// The library's grade 1 to 4 is set aside when the model gives grade 0 at least this.
    pub ordinary: f32,
    /// The model's grade counts only when its category head finds "no category" at most this
    /// likely (both heads must agree there is a concern).
    pub none: f32,
}

/// The tuning Haven ships. With 20,600 training texts, cross-validation offered fewer ordinary
/// texts alerting (3.8% against 4.4%) at the same grade 4-5 recall by requiring both heads to
/// agree (`none` 0.7) with an alert at 0.4, but a point fewer grade-5 texts alerting (86%
/// against 87%); the corpora it was then run on lost more (7 of 281 grade-5 texts, for 7 of
/// 1,363 ordinary texts fewer alerting: docs/BENCHMARKS.md), and a missed grade 5 is the worse
/// mistake, so the heads need not agree.
pub const TUNING: Tuning = Tuning {
    concern: 0.8,
    alert: 0.5,
    ordinary: 0.9,
    none: 1.01,
};

impl Tuning {
    /// The model's grade under this tuning.
    pub fn grade(&self, o: &Opinion) -> u8 {
        if o.none_p > self.none {
            return 0;
        }
        (1..=5u8)
            .rev()
            .find(|&g| o.at_least(g) >= if g >= 4 { self.alert } else { self.concern })
            .unwrap_or(0)
    }
}

/// The lowest grade the model gives on its own, where no phrase of the library was found:
/// grades 1 and 2 are curiosity and early signs, which the model finds in every other ordinary
/// search ("how do volcanoes work"); a phrase the school can read explains those better.
pub const MODEL_ALONE: u8 = 3;

/// What the model said of a text, as a capture records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelSaid {
    /// Its category (the most likely other than none).
    pub category: &'static str,
    /// Its grade (the most likely, 0 to 5).
    pub grade: u8,
    /// How likely that category is.
    pub category_p: f32,
    /// How likely a grade of 4 or 5 is (an alert).
    pub alert_p: f32,
    /// How likely grade 0 is.
    pub ordinary_p: f32,
    /// P(no category), from the category head.
    pub none_p: f32,
    /// P(grade = g) for g = 0..=5, as the model read it.
    pub grades: [f32; haven_model::GRADES],
}

impl ModelSaid {
    fn from(o: &Opinion, t: &Tuning) -> ModelSaid {
        ModelSaid {
            category: o.category,
            grade: t.grade(o),
            category_p: o.category_p,
            alert_p: o.at_least(4),
            ordinary_p: o.grades[0],
            none_p: o.none_p,
            grades: o.grades,
        }
    }
}

impl std::fmt::Display for ModelSaid {
    /// `suicide 5 (alert 0.93)` or `ordinary (0.97)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.grade == 0 {
            write!(f, "ordinary ({:.2})", self.ordinary_p)
        } else {
            write!(
                f,
                "{} {} (alert {:.2})",
                self.category, self.grade, self.alert_p
            )
        }
    }
}

/// A text graded by both opinions.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The grade Haven acts on, with the library's phrases (matched and set aside).
    pub grade: Grade,
    /// The library's opinion alone.
    pub library: Grade,
    /// The model's opinion, when there is a model and the text has words.
    pub model: Option<ModelSaid>,
}

/// The library and model in force, graded together.
#[derive(Debug, Clone)]
pub struct Grader {
    /// The risk library.
    pub library: Arc<RiskLibrary>,
    /// The model (none: the library alone).
    pub model: Option<Arc<Model>>,
    /// How sure the model must be.
    pub tuning: Tuning,
}

impl Grader {
    /// Grades `text` by both opinions.
    pub fn assess(&self, text: &str) -> Assessment {
        let library = self.library.grade(text);
        let opinion = self.model.as_ref().and_then(|m| m.judge(text));
        combine(library, opinion.as_ref(), &self.tuning)
    }

    /// Grades a long text (a page) by its passages ([`haven_model::passages`]): the passage
    /// that grades highest (the model's likelihood of an alert breaking ties) and its
    /// assessment; `None` when nothing grades. The model reads the page once
    /// ([`Model::judge_passages`]); the library grades each passage.
    pub fn assess_passages(&self, text: &str) -> Option<(Assessment, String)> {
        let passages: Vec<(Option<Opinion>, std::ops::Range<usize>)> = match &self.model {
            Some(m) => m
                .judge_passages(text)
                .into_iter()
                .map(|(o, r)| (Some(o), r))
                .collect(),
            None => haven_model::passages(text)
                .into_iter()
                .map(|r| (None, r))
                .collect(),
        };
        let mut best: Option<(Assessment, std::ops::Range<usize>)> = None;
        let key = |a: &Assessment| (a.grade.grade, a.model.as_ref().map_or(0.0, |m| m.alert_p));
        for (opinion, range) in passages {
            let a = combine(
                self.library.grade(&text[range.clone()]),
                opinion.as_ref(),
                &self.tuning,
            );
            if a.grade.grade == 0 {
                continue;
            }
            if best.as_ref().is_none_or(|(b, _)| key(&a) > key(b)) {
                best = Some((a, range));
            }
        }
        best.map(|(a, r)| (a, text[r].to_owned()))
    }

    /// The grade Haven acts on.
    pub fn grade(&self, text: &str) -> Grade {
        self.assess(text).grade
    }
}

impl Assessment {
    /// The capture this assessment makes of `text` (which must grade 1 or more), saying what
    /// each opinion found.
    pub fn capture(
        &self,
        at_ms: i64,
        source: &str,
        client: &str,
        user: Option<&str>,
        url: &str,
        text: &str,
    ) -> haven_store::captures::NewCapture {
        haven_store::captures::NewCapture::graded(
            &self.grade,
            at_ms,
            source,
            client,
            user,
            url,
            text,
        )
        .with_model(self.model.as_ref().map(ToString::to_string))
    }
}

/// The two opinions made one grade (see the module's description).
pub fn combine(library: Grade, opinion: Option<&Opinion>, t: &Tuning) -> Assessment {
    let Some(o) = opinion else {
        return Assessment {
            grade: library.clone(),
            library,
            model: None,
        };
    };
    let said = ModelSaid::from(o, t);
    let mut g = library.clone();
    let library_5 = library.grade >= 5;
    if !library_5 && said.grade == 0 && said.ordinary_p >= t.ordinary && library.grade > 0 {
        if library.grade >= 4 {
            // A library alert the model reads as ordinary is kept for triage, one grade down:
            // the model may be wrong about a concern ("how to hide cuts from my mum"), so it
            // never hides one, but it does not wake the DSL for a fragment.
            for (_, n) in &mut g.categories {
                *n = (*n).min(3);
            }
            g.grade = 3;
        } else {
            // The library fired on a fragment of an ordinary text.
            g.set_aside.append(&mut g.matched);
            g.categories.clear();
            g.grade = 0;
        }
    } else if said.grade >= MODEL_ALONE || (said.grade > 0 && library.grade > 0) {
        match g.categories.iter_mut().find(|(c, _)| c == said.category) {
            Some((_, n)) => *n = (*n).max(said.grade),
            None => g.categories.push((said.category.to_owned(), said.grade)),
        }
        g.categories
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        g.grade = g.categories.iter().map(|(_, n)| *n).max().unwrap_or(0);
    }
    Assessment {
        grade: g,
        library,
        model: Some(said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(grade: u8) -> Grade {
        Grade {
            grade,
            categories: if grade > 0 {
                vec![("bullying".to_owned(), grade)]
            } else {
                Vec::new()
            },
            matched: if grade > 0 {
                vec!["a phrase".to_owned()]
            } else {
                Vec::new()
            },
            set_aside: Vec::new(),
        }
    }

    /// An opinion whose grades are all on `grade`, with `p` there and the rest on 0.
    fn opinion(category: &'static str, grade: usize, p: f32) -> Opinion {
        let mut grades = [0f32; haven_model::GRADES];
        grades[grade] = p;
        grades[0] += 1.0 - p;
        Opinion {
            category,
            category_p: 0.9,
            none_p: 0.05,
            grades,
        }
    }

    #[test]
    fn the_model_categories_are_the_librarys() {
        assert_eq!(haven_model::CATEGORIES[0], "none");
        assert_eq!(&haven_model::CATEGORIES[1..], haven_core::risk::CATEGORIES);
    }

    #[test]
    fn two_opinions_make_one_grade() {
        let g = |lib: u8, o: Opinion| combine(library(lib), Some(&o), &TUNING).grade.grade;
        // The model raises, in its own category, when sure enough.
        let a = combine(library(0), Some(&opinion("suicide", 5, 0.9)), &TUNING);
        assert_eq!(a.grade.categories, [("suicide".to_owned(), 5)]);
        assert_eq!(
            a.model.as_ref().map(|m| m.to_string()).as_deref(),
            Some("suicide 5 (alert 0.90)")
        );
        assert_eq!(
            g(0, opinion("suicide", 5, 0.4)),
            0,
            "not sure enough to alert"
        );
        // With `none` below 1, both heads must agree: a grade the category head reads as no
        // category is not raised.
        let agree = Tuning {
            none: 0.7,
            ..TUNING
        };
        let unsure = Opinion {
            none_p: 0.8,
            ..opinion("suicide", 5, 0.9)
        };
        assert_eq!(combine(library(0), Some(&unsure), &agree).grade.grade, 0);
        assert_eq!(
            g(0, unsure),
            5,
            "the shipped tuning does not ask the category head"
        );
        // On its own, never below 3: grades 1 and 2 are the library's to explain.
        assert_eq!(g(0, opinion("drugs", 2, 0.95)), 0);
        assert_eq!(g(1, opinion("drugs", 2, 0.95)), 2);
        // A library grade 5 stands whatever the model reads.
        assert_eq!(g(5, opinion("none", 0, 0.0)), 5);
        // A fragment the model reads as ordinary: grades 1-3 set aside, 4 kept at 3.
        let a = combine(library(3), Some(&opinion("bullying", 0, 0.0)), &TUNING);
        assert_eq!((a.grade.grade, a.grade.set_aside.len()), (0, 1));
        assert_eq!(a.library.grade, 3, "the library's own opinion is kept");
        assert_eq!(
            g(4, opinion("bullying", 0, 0.0)),
            3,
            "never hides a library alert"
        );
        // Without a model, the library alone.
        assert_eq!(combine(library(4), None, &TUNING).grade.grade, 4);
    }
}
