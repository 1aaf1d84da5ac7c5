//! Alerts: a capture at or above its alerting grade queues an alert (in the same transaction as
//! the capture, so one is never kept without the other). The alert is sent to the DSL rota —
//! a delivery per email address and one per webhook, each kept until it is delivered, so a
//! restart loses none — and, when nobody with triage rights has opened the capture after the
//! configured time, escalated to the deputies. Every step is a conditional update, so several
//! Haven nodes on one PostgreSQL database send each alert once.

use sqlx::Row as _;

use crate::stored::stored;
use crate::{Store, StoreError};

/// Acknowledges a capture's alerts not yet acknowledged, on `db` (the pool, or a transaction
/// deciding the capture): how many.
pub(crate) async fn acknowledge<'e, E>(db: E, capture_id: i64, by: &str) -> Result<u64, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 WHERE capture_id = $3 AND acknowledged_at IS NULL",
    )
    .bind(crate::now_ms())
    .bind(by)
    .bind(capture_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// An alert, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// Its id.
    pub id: i64,
    /// The capture it is about.
    pub capture_id: i64,
    /// The capture's grade.
    pub grade: i64,
    /// The capture's category.
    pub category: String,
    /// When it was queued (ms since the epoch).
    pub created_at: i64,
    /// When it was sent to the rota.
    pub sent_at: Option<i64>,
    /// When someone who triages opened the capture.
    pub acknowledged_at: Option<i64>,
    /// Who.
    pub acknowledged_by: Option<String>,
    /// When it was sent on to the deputies.
    pub escalated_at: Option<i64>,
}

const ALERT_COLUMNS: &str = "id, capture_id, grade, category, created_at, sent_at, acknowledged_at, acknowledged_by, escalated_at";

fn alert_from(r: &sqlx::any::AnyRow) -> Result<Alert, StoreError> {
    Ok(Alert {
        id: r.try_get(0)?,
        capture_id: r.try_get(1)?,
        grade: r.try_get(2)?,
        category: r.try_get(3)?,
        created_at: r.try_get(4)?,
        sent_at: r.try_get(5)?,
        acknowledged_at: r.try_get(6)?,
        acknowledged_by: r.try_get(7)?,
        escalated_at: r.try_get(8)?,
    })
}

stored_text! {
    /// Which list of people an alert goes to: the rota, or the deputies (an escalation, when
    /// nobody has opened it in time).
    AlertLevel, "alert level" {
        /// The DSL rota.
        Rota = "rota",
        /// The deputy DSLs: an escalation.
        Deputy = "deputy",
    }
}

stored_text! {
    /// How a delivery is made.
    Channel, "delivery channel" {
        /// An email to one address.
        Email = "email",
        /// A JSON POST to one URL.
        Webhook = "webhook",
    }
}

/// Where a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The rota or the deputies.
    pub level: AlertLevel,
    /// Email or webhook.
    pub channel: Channel,
    /// The address or URL.
    pub target: String,
}

/// One message to deliver, with what it says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The alert.
    pub alert_id: i64,
    /// The rota or the deputies.
    pub level: AlertLevel,
    /// Email or webhook.
    pub channel: Channel,
    /// The address or URL.
    pub target: String,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// When it was delivered.
    pub delivered_at: Option<i64>,
    /// The last failure.
    pub error: Option<String>,
    /// The capture's id, grade, category, source and time.
    pub capture_id: i64,
    /// Its grade.
    pub grade: i64,
    /// Its category.
    pub category: String,
    /// Where it came from (`search`, `page`, `blocked`, `api`…).
    pub source: String,
    /// When it was seen.
    pub seen_at: i64,
}

const DELIVERY_SELECT: &str =
    "SELECT d.id, d.alert_id, d.level, d.channel, d.target, d.attempts, d.delivered_at, d.error, \
     a.capture_id, a.grade, a.category, c.source, c.at \
     FROM deliveries d JOIN alerts a ON a.id = d.alert_id JOIN captures c ON c.id = a.capture_id";

fn delivery_from(r: &sqlx::any::AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.try_get(0)?,
        alert_id: r.try_get(1)?,
        level: stored(r, 2)?,
        channel: stored(r, 3)?,
        target: r.try_get(4)?,
        attempts: r.try_get(5)?,
        delivered_at: r.try_get(6)?,
        error: r.try_get(7)?,
        capture_id: r.try_get(8)?,
        grade: r.try_get(9)?,
        category: r.try_get(10)?,
        source: r.try_get(11)?,
        seen_at: r.try_get(12)?,
    })
}

impl Store {
    /// Alerts not yet sent, highest grade first, then oldest (so alerts held for quiet hours
    /// never keep a higher grade waiting behind them).
    pub async fn waiting_alerts(&self, limit: i64) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE sent_at IS NULL ORDER BY grade DESC, created_at, id LIMIT $1"
        )))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    /// Sent alerts nobody has acknowledged since before `sent_before`, not yet escalated.
    pub async fn alerts_to_escalate(&self, sent_before: i64) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE acknowledged_at IS NULL AND escalated_at IS NULL \
             AND sent_at IS NOT NULL AND sent_at <= $1 ORDER BY sent_at, id LIMIT 1000"
        )))
        .bind(sent_before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    /// The alerts raised by a capture.
    pub async fn capture_alerts(&self, capture_id: i64) -> Result<Vec<Alert>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE capture_id = $1 ORDER BY id"
        )))
        .bind(capture_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_from).collect()
    }

    /// Marks the alert sent (to the rota) or escalated (to the deputies), as `level` says,
    /// and queues its deliveries, once: false when another node (or an earlier pass) already
    /// did.
    pub async fn queue_deliveries(
        &self,
        alert_id: i64,
        level: AlertLevel,
        to: &[Recipient],
    ) -> Result<bool, StoreError> {
        let now = crate::now_ms();
        let mut tx = self.write_tx().await?;
        let sql = match level {
            AlertLevel::Deputy => "UPDATE alerts SET escalated_at = $1 WHERE id = $2 AND escalated_at IS NULL AND acknowledged_at IS NULL",
            AlertLevel::Rota => "UPDATE alerts SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL",
        };
        let done = sqlx::query(sql)
            .bind(now)
            .bind(alert_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for r in to {
            sqlx::query(
                "INSERT INTO deliveries (alert_id, level, channel, target, due_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(alert_id)
            .bind(r.level.as_str())
            .bind(r.channel.as_str())
            .bind(&r.target)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deliveries due now, each claimed for `lease_ms` (counted as a try) so that no other
    /// worker sends it meanwhile; a claim that lapses (a worker that stopped) is taken again.
    pub async fn claim_deliveries(
        &self,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = crate::now_ms();
        let ids: Vec<(i64, i64)> = sqlx::query(
            "SELECT id, claimed_until FROM deliveries WHERE delivered_at IS NULL AND due_at <= $1 \
             AND claimed_until <= $1 ORDER BY due_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, _>>()?;
        let mut claimed = Vec::new();
        for (id, was) in ids {
            let done = sqlx::query(
                "UPDATE deliveries SET claimed_until = $1, attempts = attempts + 1 WHERE id = $2 AND claimed_until = $3 AND delivered_at IS NULL",
            )
            .bind(now + lease_ms)
            .bind(id)
            .bind(was)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{DELIVERY_SELECT} WHERE d.id = $1"
                )))
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
                claimed.push(delivery_from(&row)?);
            }
        }
        Ok(claimed)
    }

    /// A delivery made.
    pub async fn delivered(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE deliveries SET delivered_at = $1, error = NULL WHERE id = $2")
            .bind(crate::now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A delivery that failed, tried again at `retry_at`.
    pub async fn delivery_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET error = $1, due_at = $2, claimed_until = 0 WHERE id = $3",
        )
        .bind(error)
        .bind(retry_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every delivery of an alert, oldest first.
    pub async fn alert_deliveries(&self, alert_id: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{DELIVERY_SELECT} WHERE d.alert_id = $1 ORDER BY d.id"
        )))
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from).collect()
    }

    /// Acknowledges a capture's alerts (someone who triages opened or decided it): the number
    /// newly acknowledged.
    pub async fn acknowledge_alerts(&self, capture_id: i64, by: &str) -> Result<u64, StoreError> {
        acknowledge(&self.pool, capture_id, by).await
    }

    /// The email addresses of active staff with `role` (`dsl`, `deputy-dsl`), by user name.
    pub async fn role_emails(&self, role: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.username, p.email FROM people p JOIN person_roles r ON r.person_id = p.id \
             WHERE r.role = $1 AND p.active = 1 AND p.email IS NOT NULL AND p.email <> '' \
             AND p.username IS NOT NULL ORDER BY p.username",
        )
        .bind(role)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_words_read_back_and_an_unknown_one_is_an_error() {
        for level in [AlertLevel::Rota, AlertLevel::Deputy] {
            assert_eq!(level.as_str().parse::<AlertLevel>(), Ok(level));
        }
        for channel in [Channel::Email, Channel::Webhook] {
            assert_eq!(channel.as_str().parse::<Channel>(), Ok(channel));
        }
        // Not silently a deputy, as a hand comparison with "rota" once made it.
        let e = "Rota".parse::<AlertLevel>().expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "alert level \"Rota\" is not one of: rota, deputy"
        );
        assert!("sms".parse::<Channel>().is_err());
    }
}
