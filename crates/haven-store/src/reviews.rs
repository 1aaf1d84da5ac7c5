//! Review requests from block pages ("this page should not be blocked"), decided by staff in
//! the console; and policy changes with their change-control record.

use sqlx::Row as _;

use crate::stored::stored;
use crate::{now_ms, Store, StoreError};

stored_text! {
    /// Where a review request stands.
    ReviewStatus, "review status" {
        /// Waiting for someone to decide it.
        Open = "open",
        /// Approved: the page is allowed (through a policy change).
        Approved = "approved",
        /// Declined.
        Declined = "declined",
    }
}

stored_text! {
    /// Where a policy change stands.
    ChangeStatus, "policy change status" {
        /// In force.
        Applied = "applied",
        /// Waiting for a second person.
        Pending = "pending",
        /// Rejected by the second person.
        Rejected = "rejected",
    }
}

/// A review request as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Review {
    /// Its id.
    pub id: i64,
    /// When it was asked (ms since the epoch).
    pub at_ms: i64,
    /// From which address.
    pub client: String,
    /// The group the page was blocked for.
    pub group: String,
    /// By whom, when known.
    pub user: Option<String>,
    /// The page.
    pub url: String,
    /// Why the page was blocked.
    pub reason: String,
    /// Where it stands.
    pub status: ReviewStatus,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Their note.
    pub note: Option<String>,
}

/// A policy change: who, when, why, and whether it is in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyChange {
    /// Its id.
    pub id: i64,
    /// When it was proposed.
    pub at_ms: i64,
    /// Who proposed it.
    pub author: String,
    /// Why.
    pub reason: String,
    /// Where it stands.
    pub status: ChangeStatus,
    /// Who approved or rejected it.
    pub approver: Option<String>,
    /// The whole policy text it sets.
    #[serde(skip)]
    pub policy: String,
    /// The SHA-256 of the policy text it was written against.
    #[serde(skip)]
    pub base_hash: String,
    /// What it changes, in a line.
    pub summary: String,
}

fn review_from(r: &sqlx::any::AnyRow) -> Result<Review, StoreError> {
    Ok(Review {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        client: r.try_get(2)?,
        group: r.try_get(3)?,
        user: r.try_get(4)?,
        url: r.try_get(5)?,
        reason: r.try_get(6)?,
        status: stored(r, 7)?,
        decided_by: r.try_get(8)?,
        note: r.try_get(9)?,
    })
}

const REVIEW_COLUMNS: &str = "id, at, client, grp, username, url, reason, status, decided_by, note";

fn change_from(r: &sqlx::any::AnyRow) -> Result<PolicyChange, StoreError> {
    Ok(PolicyChange {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        author: r.try_get(2)?,
        reason: r.try_get(3)?,
        status: stored(r, 4)?,
        approver: r.try_get(5)?,
        policy: r.try_get(6)?,
        summary: r.try_get(7)?,
        base_hash: r.try_get(8)?,
    })
}

const CHANGE_COLUMNS: &str = "id, at, author, reason, status, approver, policy, summary, base_hash";

impl Store {
    /// Records a review request, unless the same person (by user name, else address) already
    /// has one open for the same site: then nothing is kept and the answer is `None`. A unique
    /// index holds this however many ask at once.
    pub async fn add_review(
        &self,
        at_ms: i64,
        client: &str,
        group: &str,
        user: Option<&str>,
        url: &str,
        reason: &str,
    ) -> Result<Option<i64>, StoreError> {
        let site =
            haven_core::Target::parse(url).map_or_else(|_| url.to_owned(), |t| t.host().to_owned());
        let row = sqlx::query(
            "INSERT INTO reviews (at, client, grp, username, url, reason, site) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(at_ms)
        .bind(client)
        .bind(group)
        .bind(user)
        .bind(url)
        .bind(reason)
        .bind(site)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Requests with this status, oldest first.
    pub async fn reviews(
        &self,
        status: ReviewStatus,
        limit: i64,
    ) -> Result<Vec<Review>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE status = $1 ORDER BY id LIMIT $2"
        )))
        .bind(status.as_str())
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(review_from).collect()
    }

    /// One request.
    pub async fn review(&self, id: i64) -> Result<Option<Review>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REVIEW_COLUMNS} FROM reviews WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(review_from).transpose()
    }

    /// Decides an open request; false when it was not open (decided already, or no such).
    pub async fn decide_review(
        &self,
        id: i64,
        approved: bool,
        by: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE reviews SET status = $1, decided_by = $2, decided_at = $3, note = $4 WHERE id = $5 AND status = 'open'",
        )
        .bind(if approved {
            ReviewStatus::Approved
        } else {
            ReviewStatus::Declined
        }.as_str())
        .bind(by)
        .bind(now_ms())
        .bind(note)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a policy change (applied or pending).
    pub async fn add_policy_change(
        &self,
        author: &str,
        reason: &str,
        status: ChangeStatus,
        policy: &str,
        base_hash: &str,
        summary: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO policy_changes (at, author, reason, status, policy, base_hash, summary) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(now_ms())
        .bind(author)
        .bind(reason)
        .bind(status.as_str())
        .bind(policy)
        .bind(base_hash)
        .bind(summary)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Policy changes, newest first.
    pub async fn policy_changes(&self, limit: i64) -> Result<Vec<PolicyChange>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM policy_changes ORDER BY id DESC LIMIT $1"
        )))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from).collect()
    }

    /// One policy change.
    pub async fn policy_change(&self, id: i64) -> Result<Option<PolicyChange>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM policy_changes WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(change_from).transpose()
    }

    /// Settles a pending change (applied or rejected); false when it was not pending.
    pub async fn settle_policy_change(
        &self,
        id: i64,
        status: ChangeStatus,
        approver: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE policy_changes SET status = $1, approver = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(approver)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::{ChangeStatus, ReviewStatus};

    #[test]
    fn a_status_reads_back_as_it_is_stored_and_an_unknown_one_is_an_error() {
        for &s in ReviewStatus::ALL {
            assert_eq!(s.as_str().parse::<ReviewStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for &s in ChangeStatus::ALL {
            assert_eq!(s.as_str().parse::<ChangeStatus>(), Ok(s));
        }
        assert_eq!(
            ReviewStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["open", "approved", "declined"]
        );
        assert_eq!(
            ChangeStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["applied", "pending", "rejected"]
        );
        assert!("Open".parse::<ReviewStatus>().is_err());
        assert_eq!(
            "".parse::<ReviewStatus>().map_err(|e| e.to_string()),
            Err("review status \"\" is not one of: open, approved, declined".to_owned())
        );
        assert!("open".parse::<ChangeStatus>().is_err());
    }
}
