//! The categories of concern that schools' online-safety policies name, each with its
//! procedure. A school may add its own (kept by the store with the school); those follow the
//! general procedure, [`GENERAL`].

use crate::procedure::Step;

/// A category of concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Category {
    /// Its id, as stored.
    pub id: &'static str,
    /// Its name, as pages show it.
    pub name: &'static str,
    /// Its procedure, as a checklist.
    pub steps: &'static [Step],
    /// Whether a case closes only with a debrief and the lessons learnt.
    pub debrief: bool,
    /// Whether staff must be warned, before writing, never to view or ask for an image.
    pub image_warning: bool,
}

macro_rules! steps {
    ($($id:literal => $text:literal,)+) => {
        &[$(Step { id: $id, text: $text },)+]
    };
}

/// The procedure of a school's own category, and of those with no procedure of their own.
pub const GENERAL: &[Step] = steps! {
    "dsl-informed" => "The DSL or a deputy has read the concern",
    "risk-assessed" => "Risk to the child considered; next steps decided and recorded",
    "parents" => "Parents or carers informed, unless that would put the child at risk",
    "review" => "Reviewed: the concern is resolved or escalated",
};

/// Every built-in category, in the order forms list them.
pub const CATEGORIES: &[Category] = &[
    Category {
        id: "cyberbullying",
        name: "Cyberbullying",
        steps: steps! {
            "dsl-informed" => "The DSL or a deputy has read the concern",
            "evidence" => "Evidence kept (screenshots of messages, not images of the child)",
            "support" => "Support agreed for the child who was targeted",
            "behaviour" => "The behaviour policy applied to those responsible",
            "parents" => "Parents or carers of those involved informed",
            "platform" => "Content reported to the platform where it is still online",
            "police-if-offence" => "Police told if threats, hate or intimate images are involved",
            "review" => "Reviewed after two weeks: has it stopped?",
        },
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "nudes",
        name: "Sharing nudes or semi-nudes (youth-produced)",
        steps: steps! {
            "not-viewed" => "Staff did not view, copy, print, share, save or delete the image, nor ask for it",
            "dsl-view-justified" => "Only the DSL or deputy viewed, as a last resort, with the justification recorded (or nobody viewed)",
            "device-secured" => "The device secured and the image isolated",
            "risk-assessment" => "Risk assessment recorded",
            "parents" => "Parents or carers informed, unless that puts the child at risk",
            "immediate-referral" => "Police or children's social care told at once if an adult is involved, there is coercion, blackmail or grooming, a child is under 13 or has additional needs, the act is unusual or violent, or there is immediate risk",
            "over-18" => "If one party is over 18, handled as child sexual abuse",
            "report-remove" => "The child signposted to Report Remove (Childline and the IWF)",
            "image-deleted" => "The image deleted only once the DSL confirmed no agency needs it",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: true,
    },
    Category {
        id: "indecent-images",
        name: "Indecent images of children",
        steps: steps! {
            "not-viewed" => "Nobody viewed, copied or shared the images",
            "iwf" => "URLs reported to the IWF",
            "police" => "Police told",
            "lado-if-staff" => "The LADO told if staff are involved",
            "devices-quarantined" => "Devices quarantined until police advice",
            "copies-on-request" => "Copies made only at police request",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: true,
    },
    Category {
        id: "sexual-exploitation",
        name: "Online sexual abuse and exploitation (CSE, grooming, sextortion)",
        steps: steps! {
            "police" => "Police told (101, or 999 when a child is in immediate danger)",
            "ceop" => "Reported to CEOP",
            "social-care" => "Children's social care told",
            "risk-assessment" => "Risk assessment recorded",
            "parents" => "Parents or carers informed, unless that puts the child at risk",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: true,
    },
    Category {
        id: "radicalisation",
        name: "Radicalisation and extremism",
        steps: steps! {
            "dsl-immediately" => "The DSL told immediately",
            "prevent-considered" => "A Prevent referral considered, and the decision recorded",
            "parents" => "Parents or carers informed, unless that puts the child at risk",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: false,
    },
    Category {
        id: "online-hate",
        name: "Online hate",
        steps: steps! {
            "advice" => "Advice sought from the local authority or police",
            "police-if-offence" => "Police told where an offence is suspected",
            "support" => "Support agreed for those targeted",
            "parents" => "Parents or carers informed",
            "review" => "Reviewed",
        },
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "sexual-violence",
        name: "Sexual violence and harassment",
        steps: steps! {
            "dsl-immediately" => "The DSL told immediately",
            "police-first" => "Police told first where a crime is involved",
            "risk-assessment" => "Risk and support plan for the victim and the alleged perpetrator",
            "other-schools" => "Other schools' DSLs worked with where their pupils are involved",
            "parents" => "Parents or carers informed, unless that puts the child at risk",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: true,
    },
    Category {
        id: "child-on-child",
        name: "Child-on-child abuse",
        steps: steps! {
            "dsl-informed" => "The DSL or a deputy has read the concern",
            "risk-assessment" => "Risk and support plan for every child involved",
            "social-care-if-harm" => "Children's social care told where a child is at risk of significant harm",
            "parents" => "Parents or carers informed, unless that puts the child at risk",
            "review" => "Reviewed",
        },
        debrief: true,
        image_warning: false,
    },
    Category {
        id: "filtering-breach",
        name: "Filtering breach",
        steps: steps! {
            "network-manager" => "The network manager told, with the address",
            "recorded" => "The breach recorded and escalated (the filter's event linked)",
            "parents" => "Parents told where it involved their child",
            "fixed" => "The filter changed, or the reason it stays recorded",
        },
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "misuse",
        name: "Misuse of technology",
        steps: GENERAL,
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "social-media",
        name: "Social-media incident",
        steps: GENERAL,
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "search-confiscation",
        name: "Search and confiscation",
        steps: steps! {
            "head-authorised" => "Authorised by the headteacher",
            "held-securely" => "The device held securely",
            "parents-collect" => "Parents told and asked to collect it",
            "police-if-illegal" => "Police told if the content may be illegal",
            "exam-board" => "The exam board told for a device found in an exam",
        },
        debrief: false,
        image_warning: true,
    },
    Category {
        id: "welfare",
        name: "Welfare",
        steps: GENERAL,
        debrief: false,
        image_warning: false,
    },
    Category {
        id: "staff-conduct",
        name: "Staff conduct",
        steps: steps! {
            "headteacher" => "Passed to the headteacher (the chair of governors if it is about the headteacher)",
            "lado" => "The LADO told within one working day",
            "no-investigation" => "No one investigated or questioned the member of staff before LADO advice",
            "review" => "Reviewed with the LADO's outcome",
        },
        debrief: true,
        image_warning: false,
    },
];

/// A built-in category by id.
pub fn find(id: &str) -> Option<&'static Category> {
    CATEGORIES.iter().find(|c| c.id == id)
}

/// The procedure of a category: its own, or [`GENERAL`] for a school's own category.
pub fn steps_for(id: &str) -> &'static [Step] {
    find(id).map_or(GENERAL, |c| c.steps)
}

/// Why a school's own category cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    /// A name with nothing in it, or too long.
    #[error("a category's name is 3 to 80 characters")]
    BadName,
    /// The name of a built-in category.
    #[error("{0:?} is already a category")]
    Exists(String),
}

/// The id for a school's own category named `name` (`school:` and its letters and digits,
/// lower case, joined by hyphens).
pub fn school_category_id(name: &str) -> Result<String, CategoryError> {
    let name = name.trim();
    if !(3..=80).contains(&name.chars().count()) {
        return Err(CategoryError::BadName);
    }
    if CATEGORIES
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case(name) || c.id.eq_ignore_ascii_case(name))
    {
        return Err(CategoryError::Exists(name.to_owned()));
    }
    let slug: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    if slug.is_empty() {
        return Err(CategoryError::BadName);
    }
    Ok(format!("school:{}", slug.join("-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_category_the_policies_name_is_here_with_a_procedure() {
        assert_eq!(CATEGORIES.len(), 14);
        let mut ids: Vec<&str> = CATEGORIES.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 14, "ids are unique");
        for c in CATEGORIES {
            assert!(!c.steps.is_empty(), "{}", c.id);
            let mut steps: Vec<&str> = c.steps.iter().map(|s| s.id).collect();
            steps.sort_unstable();
            steps.dedup();
            assert_eq!(steps.len(), c.steps.len(), "{}: step ids are unique", c.id);
        }
        assert!(find("nudes").is_some_and(|c| c.image_warning && c.debrief));
        assert_eq!(steps_for("school:vaping"), GENERAL);
    }

    #[test]
    fn a_schools_own_category_gets_a_plain_id_and_cannot_shadow_a_built_in_one() {
        assert_eq!(
            school_category_id("  Vaping on site "),
            Ok("school:vaping-on-site".into())
        );
        assert_eq!(school_category_id("ab"), Err(CategoryError::BadName));
        assert_eq!(school_category_id("%%%%"), Err(CategoryError::BadName));
        assert!(matches!(
            school_category_id("cyberbullying"),
            Err(CategoryError::Exists(_))
        ));
    }
}
