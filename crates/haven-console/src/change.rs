//! Change control for the policy: every change is recorded (who, when, why, the whole text),
//! validated against the lists in force before it is kept, and applied to the running filters
//! at once, or held until a second person approves it when `policy_approval` is set. Approving
//! a review request is a policy change too: an allow override naming the review.

use std::sync::Arc;

use haven_core::{Engine, Policy};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use haven_store::reviews::{ChangeStatus, ReviewStatus};
use haven_store::sessions::secret_hash;

use crate::web::{Denied, Signed};
use crate::Console;

/// What became of a proposed change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// In force now (its change id).
    Applied(i64),
    /// Waiting for a second person (its change id).
    Pending(i64),
}

/// Why a policy text cannot be put in force (the words are the policy's own error, or the
/// rule over an illegal-list entry).
#[derive(Debug, thiserror::Error)]
pub enum InvalidPolicy {
    /// It does not parse or compile.
    #[error("{0}")]
    Policy(#[from] haven_core::PolicyError),
    /// It adds a rule over an entry of an illegal list, which could never work.
    #[error("{0}")]
    IllegalOverride(haven_core::IllegalOverride),
}

/// `s` as a TOML basic string, quotes included.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Console {
    /// The policy text in force: the file, or the built-in default.
    pub fn policy_text(&self) -> String {
        std::fs::read_to_string(&self.policy_path)
            .unwrap_or_else(|_| haven_core::policy::DEFAULT_POLICY.to_owned())
    }

    /// `text` compiled against the lists in force, or why it cannot be. A change that adds a
    /// rule over an illegal-list entry is refused (the rule could never work); one the policy
    /// in force already has (a list update put an entry under it) does not hold other changes
    /// up: the list wins over it, and the banner names it.
    pub fn validate(&self, text: &str) -> Result<Engine, InvalidPolicy> {
        let policy = Policy::from_toml(text)?;
        let current = self.engine.current();
        let engine = Engine::new(
            current.snapshot().clone(),
            Arc::new(policy),
            &self.policy_path.display().to_string(),
        )?;
        let known = current.illegal_overrides();
        if let Some(o) = engine
            .illegal_overrides()
            .iter()
            .find(|o| !known.iter().any(|k| k.site == o.site && k.entry == o.entry))
        {
            return Err(InvalidPolicy::IllegalOverride(o.clone()));
        }
        Ok(match current.fallback() {
            Some(why) => engine.with_fallback(why.to_owned()),
            None => engine,
        })
    }

    /// Writes `text` as the policy file and puts `engine` (compiled from it) in force.
    fn apply(&self, text: &str, engine: Engine) -> Result<(), Denied> {
        let tmp = self.policy_path.with_extension("toml.console-tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.policy_path))
            .map_err(|e| Denied::Invalid(format!("cannot write the policy file: {e}")))?;
        self.engine
            .replace(|_| Ok::<_, std::convert::Infallible>(engine))
            .ok();
        Ok(())
    }

    /// Proposes `text` as the whole policy, for `reason`. Refused unless it validates; applied
    /// at once, or held for a second person when the configuration asks for approval.
    pub async fn propose(
        &self,
        by: &Signed,
        reason: &str,
        text: &str,
        summary: &str,
    ) -> Result<Outcome, Denied> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Denied::Invalid(
                "Say why: every policy change records its reason.".into(),
            ));
        }
        let engine = self
            .validate(text)
            .map_err(|e| Denied::Invalid(format!("The policy was not changed: {e}")))?;
        let base = secret_hash(&self.policy_text());
        let author = &by.who.username;
        let outcome = if self.config.policy_approval {
            let id = self
                .store
                .add_policy_change(author, reason, ChangeStatus::Pending, text, &base, summary)
                .await?;
            Outcome::Pending(id)
        } else {
            self.apply(text, engine)?;
            let id = self
                .store
                .add_policy_change(author, reason, ChangeStatus::Applied, text, &base, summary)
                .await?;
            Outcome::Applied(id)
        };
        let (what, id) = match outcome {
            Outcome::Applied(id) => (AuditKind::ChangePolicy, id),
            Outcome::Pending(id) => (AuditKind::ProposePolicyChange, id),
        };
        self.store
            .audit(&AuditEntry::new(
                author,
                &by.address,
                what,
                Subject::PolicyChange(id),
            ))
            .await?;
        Ok(outcome)
    }

    /// Approves (`true`) or rejects a pending change. Nobody approves their own; a change
    /// written against a policy that has changed since must be proposed again.
    pub async fn settle(&self, id: i64, approve: bool, by: &Signed) -> Result<(), Denied> {
        let change = self
            .store
            .policy_change(id)
            .await?
            .ok_or(Denied::NotFound)?;
        if change.status != ChangeStatus::Pending {
            return Err(Denied::Invalid(format!(
                "Change {id} is already {}.",
                change.status
            )));
        }
        if change.author == by.who.username {
            return Err(Denied::Invalid(
                "A change needs a second person: someone else must approve it.".into(),
            ));
        }
        if approve {
            if secret_hash(&self.policy_text()) != change.base_hash {
                return Err(Denied::Invalid(format!(
                    "The policy has changed since change {id} was proposed; it must be proposed again."
                )));
            }
            let engine = self
                .validate(&change.policy)
                .map_err(|e| Denied::Invalid(format!("Change {id} no longer validates: {e}")))?;
            self.apply(&change.policy, engine)?;
        }
        let status = if approve {
            ChangeStatus::Applied
        } else {
            ChangeStatus::Rejected
        };
        if !self
            .store
            .settle_policy_change(id, status, &by.who.username)
            .await?
        {
            return Err(Denied::Invalid(format!(
                "Change {id} was settled meanwhile."
            )));
        }
        self.store
            .audit(&AuditEntry::new(
                &by.who.username,
                &by.address,
                if approve {
                    AuditKind::ApprovePolicyChange
                } else {
                    AuditKind::RejectPolicyChange
                },
                Subject::PolicyChange(id),
            ))
            .await?;
        Ok(())
    }

    /// Decides a review request. Approving adds an allow override for the page's site (or,
    /// with `whole_site` false, that address) for the group it was blocked for, through change
    /// control; declining records the note.
    pub async fn decide_review(
        &self,
        id: i64,
        approve: bool,
        whole_site: bool,
        note: &str,
        by: &Signed,
    ) -> Result<Option<Outcome>, Denied> {
        let review = self.store.review(id).await?.ok_or(Denied::NotFound)?;
        if review.status != ReviewStatus::Open {
            return Err(Denied::Invalid(format!(
                "Review {id} is already {}.",
                review.status
            )));
        }
        let mut outcome = None;
        if approve {
            let target = haven_core::Target::parse(&review.url)
                .map_err(|_| Denied::Invalid(format!("{:?} is not an address", review.url)))?;
            let site = if whole_site {
                target.host().to_owned()
            } else {
                String::from_utf8_lossy(target.as_bytes()).into_owned()
            };
            let why = if note.trim().is_empty() {
                format!("review {id} approved")
            } else {
                format!("review {id} approved: {}", note.trim())
            };
            let text = format!(
                "{}\n[[allow]]\nname = {}\nsites = [{}]\ngroups = [{}]\nreason = {}\n",
                self.policy_text().trim_end(),
                toml_string(&format!("Review {id}")),
                toml_string(&site),
                toml_string(&review.group),
                toml_string(&why),
            );
            outcome = Some(
                self.propose(
                    by,
                    &why,
                    &text,
                    &format!("allow {site} for {}", review.group),
                )
                .await?,
            );
        }
        if !self
            .store
            .decide_review(id, approve, &by.who.username, note.trim())
            .await?
        {
            return Err(Denied::Invalid(format!(
                "Review {id} was decided meanwhile."
            )));
        }
        self.store
            .audit(
                &AuditEntry::new(
                    &by.who.username,
                    &by.address,
                    if approve {
                        AuditKind::ApproveReview
                    } else {
                        AuditKind::DeclineReview
                    },
                    Subject::Review(id),
                )
                .word("scope", if whole_site { "site" } else { "page" }),
            )
            .await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn toml_strings_hold_anything() {
        let nasty = "a \"quoted\" \\ back\nslash\u{7}";
        let doc = format!("x = {}\n", toml_string(nasty));
        let parsed: std::collections::BTreeMap<String, String> =
            toml::from_str(&doc).expect("valid TOML");
        assert_eq!(parsed["x"], nasty);
    }
}
