//! The proxy's ties to the store: its [`haven_proxy::Authenticator`] (sign-ins checked
//! against the store, so the proxy knows nothing of SQL) and where review requests go.

use std::sync::Arc;
use std::time::Duration;

impl StoreSignIn {
    /// Sign-ins against `store`.
    pub fn new(store: haven_store::Store) -> StoreSignIn {
        StoreSignIn {
            store,
            permits: tokio::sync::Semaphore::new(2),
            changed_at: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Where the proxy's review requests go: the store. The page says whether the request was
/// kept, or had been asked already (the proxy bounds the wait).
pub fn reviews(store: haven_store::Store) -> haven_proxy::ReviewSink {
    Arc::new(move |r: haven_proxy::ReviewRequest| {
        let store = store.clone();
        Box::pin(async move {
            let stored = store
                .add_review(
                    r.at_ms as i64,
                    &r.client.to_string(),
                    &r.group,
                    r.user.as_deref(),
                    &r.url,
                    &r.reason,
                )
                .await;
            match stored {
                Ok(Some(_)) => haven_proxy::ReviewOutcome::Recorded,
                Ok(None) => haven_proxy::ReviewOutcome::AlreadyAsked,
                Err(e) => {
                    tracing::error!(error = %e, "reviews: cannot store a review request");
                    haven_proxy::ReviewOutcome::Failed
                }
            }
        })
    })
}

#[derive(Debug)]
/// Proxy sign-ins checked against the store, two at a time (each is an argon2id hash), with
/// the proxy's own credentials (never counted against a console account).
pub struct StoreSignIn {
    store: haven_store::Store,
    permits: tokio::sync::Semaphore,
    /// When a password last changed in the store, by any process.
    changed_at: std::sync::atomic::AtomicU64,
}

/// Follows password changes made by other processes (`haven people password`, another node):
/// the proxy forgets the credentials it remembered within a second. Changes made by this
/// process (the console) count at once.
pub async fn watch_credentials(sign_in: Arc<StoreSignIn>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sign_in.store.credentials_changed_at().await {
            Ok(at) => sign_in.changed_at.store(
                u64::try_from(at).unwrap_or(0),
                std::sync::atomic::Ordering::Release,
            ),
            Err(e) => tracing::warn!(error = %e, "proxy: reading password changes failed"),
        }
    }
}

impl haven_proxy::Authenticator for StoreSignIn {
    fn check<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<haven_proxy::ProxyUser>> + Send + 'a>,
    > {
        Box::pin(async move {
            let _permit = self.permits.acquire().await.ok()?;
            match self.store.proxy_sign_in(username, password).await {
                Ok(Some(who)) => Some(haven_proxy::ProxyUser {
                    username: who.username,
                    group: who.group,
                }),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "proxy: sign-in check failed");
                    None
                }
            }
        })
    }

    fn generation(&self) -> u64 {
        self.changed_at
            .load(std::sync::atomic::Ordering::Acquire)
            .wrapping_add(haven_store::accounts::credential_changes_here())
    }
}
