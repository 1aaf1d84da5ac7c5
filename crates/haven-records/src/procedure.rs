//! A category's procedure as a checklist: each step ticked with who and when, or skipped with
//! a reason. A case closes with its outcome once every step is one or the other, and with a
//! debrief and the lessons learnt where the procedure asks for them.

/// One step of a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Its id, as stored with the tick (stable: never renamed once shipped).
    pub id: &'static str,
    /// What to do, as the checklist says it.
    pub text: &'static str,
}

/// What has become of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    /// Done.
    Done,
    /// Not done, for the reason given.
    Skipped(String),
}

/// Why a step cannot be ticked, or a case not closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcedureError {
    /// A step the procedure does not have.
    #[error("the procedure for {category} has no step {step:?}")]
    UnknownStep {
        /// The category's id.
        category: String,
        /// The step asked for.
        step: String,
    },
    /// Skipping without saying why.
    #[error("say why the step \"{0}\" is skipped: a skipped step needs its reason")]
    SkipWithoutReason(&'static str),
    /// Closing while steps are open.
    #[error("{} step(s) are neither done nor skipped with a reason: {}", .0.len(), .0.join("; "))]
    StepsOpen(Vec<&'static str>),
    /// Closing without an outcome.
    #[error("say what the outcome was: a case closes with its outcome")]
    NoOutcome,
    /// Closing without the debrief the procedure asks for.
    #[error("this procedure asks for a debrief and the lessons learnt before the case closes")]
    NoDebrief,
}

/// Checks a tick before it is kept: the step must be the procedure's, and a skip needs a reason.
pub fn check_tick(
    category: &str,
    steps: &'static [Step],
    step: &str,
    tick: &Tick,
) -> Result<&'static Step, ProcedureError> {
    let found = steps
        .iter()
        .find(|s| s.id == step)
        .ok_or_else(|| ProcedureError::UnknownStep {
            category: category.to_owned(),
            step: step.chars().take(60).collect(),
        })?;
    if let Tick::Skipped(reason) = tick {
        if reason.trim().is_empty() {
            return Err(ProcedureError::SkipWithoutReason(found.text));
        }
    }
    Ok(found)
}

/// Whether a case may close: every step done or skipped, an outcome, and a debrief where asked.
/// `ticked` holds the ids of the steps ticked or skipped.
pub fn check_close(
    steps: &'static [Step],
    ticked: &[&str],
    outcome: &str,
    debrief_needed: bool,
    debrief: &str,
) -> Result<(), ProcedureError> {
    let open: Vec<&'static str> = steps
        .iter()
        .filter(|s| !ticked.contains(&s.id))
        .map(|s| s.text)
        .collect();
    if !open.is_empty() {
        return Err(ProcedureError::StepsOpen(open));
    }
    if outcome.trim().is_empty() {
        return Err(ProcedureError::NoOutcome);
    }
    if debrief_needed && debrief.trim().is_empty() {
        return Err(ProcedureError::NoDebrief);
    }
    Ok(())
}

/// The facts that decide whether sharing nudes or semi-nudes goes to the police or children's
/// social care at once (UKCIS guidance, as schools' policies quote it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NudesFacts {
    /// An adult is involved.
    pub adult_involved: bool,
    /// There is coercion, blackmail or grooming.
    pub coercion_or_grooming: bool,
    /// A child involved is under 13.
    pub under_13: bool,
    /// A child involved has additional needs (SEND) that bear on it.
    pub additional_needs: bool,
    /// The act is unusual for the child's development, or violent.
    pub unusual_or_violent: bool,
    /// A child is at immediate risk of harm.
    pub immediate_risk: bool,
    /// One of those involved is over 18: child sexual abuse, not youth-produced imagery.
    pub party_over_18: bool,
}

/// What the facts of a nudes concern call for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NudesAdvice {
    /// Refer to the police or children's social care immediately, for these reasons.
    pub refer_now: Vec<&'static str>,
    /// It is child sexual abuse (one party over 18): the indecent-images procedure applies too.
    pub child_sexual_abuse: bool,
}

/// The referral rule for nudes and semi-nudes.
pub fn nudes_advice(f: NudesFacts) -> NudesAdvice {
    let mut refer_now = Vec::new();
    for (yes, why) in [
        (f.adult_involved, "an adult is involved"),
        (
            f.coercion_or_grooming,
            "there is coercion, blackmail or grooming",
        ),
        (f.under_13, "a child involved is under 13"),
        (f.additional_needs, "a child involved has additional needs"),
        (f.unusual_or_violent, "the act is unusual or violent"),
        (f.immediate_risk, "a child is at immediate risk of harm"),
        (f.party_over_18, "one party is over 18"),
    ] {
        if yes {
            refer_now.push(why);
        }
    }
    NudesAdvice {
        refer_now,
        child_sexual_abuse: f.party_over_18,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::find;

    #[test]
    fn a_skip_needs_a_reason_and_a_step_must_be_the_procedures() {
        let nudes = find("nudes").expect("nudes is a category");
        let first = nudes.steps[0].id;
        assert!(check_tick("nudes", nudes.steps, first, &Tick::Done).is_ok());
        assert_eq!(
            check_tick("nudes", nudes.steps, first, &Tick::Skipped("  ".into())),
            Err(ProcedureError::SkipWithoutReason(nudes.steps[0].text))
        );
        assert!(check_tick(
            "nudes",
            nudes.steps,
            first,
            &Tick::Skipped("the device was already with the police".into())
        )
        .is_ok());
        assert!(matches!(
            check_tick("nudes", nudes.steps, "view-the-image", &Tick::Done),
            Err(ProcedureError::UnknownStep { .. })
        ));
    }

    #[test]
    fn a_case_closes_only_with_every_step_settled_an_outcome_and_its_debrief() {
        let c = find("radicalisation").expect("a category");
        let all: Vec<&str> = c.steps.iter().map(|s| s.id).collect();
        let e = check_close(c.steps, &all[1..], "resolved", false, "").expect_err("a step is open");
        assert_eq!(e, ProcedureError::StepsOpen(vec![c.steps[0].text]));
        assert_eq!(
            check_close(c.steps, &all, " ", false, ""),
            Err(ProcedureError::NoOutcome)
        );
        assert_eq!(
            check_close(c.steps, &all, "resolved", true, ""),
            Err(ProcedureError::NoDebrief)
        );
        assert!(check_close(c.steps, &all, "resolved", true, "we learnt …").is_ok());
    }

    #[test]
    fn nudes_go_to_the_police_at_once_for_each_listed_reason_and_not_otherwise() {
        assert!(nudes_advice(NudesFacts::default()).refer_now.is_empty());
        let a = nudes_advice(NudesFacts {
            under_13: true,
            coercion_or_grooming: true,
            ..NudesFacts::default()
        });
        assert_eq!(a.refer_now.len(), 2);
        assert!(!a.child_sexual_abuse);
        let b = nudes_advice(NudesFacts {
            party_over_18: true,
            ..NudesFacts::default()
        });
        assert!(b.child_sexual_abuse && b.refer_now == ["one party is over 18"]);
    }
}
