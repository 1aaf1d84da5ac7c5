//! Proxy authentication: `Proxy-Authorization: Basic` checked against Haven's users, so that
//! events carry the person and the person's group decides. Checking a password is slow on
//! purpose (argon2id), so answers are remembered for a while by a keyed hash of the
//! credentials: a browser sends them with every request. A password change anywhere drops what
//! was remembered (the authenticator's [`Authenticator::generation`] moves). Wrong passwords
//! are counted by client address (never against the account: a pupil's device must not lock a
//! member of staff out): past [`FAILURES_PER_CLIENT`] in a quarter of an hour, that address's
//! new credentials are not checked until the window has passed.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderMap};
use serde::Deserialize;

/// Whether browsers must sign in to the proxy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authenticate {
    /// Clients are known by address only.
    #[default]
    Off,
    /// Credentials are used when a client sends them; nobody is asked.
    Optional,
    /// Every request needs a user name and password (407 until it has them).
    Required,
}

/// A signed-in person, as the proxy needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUser {
    /// Their user name (recorded with every event).
    pub username: String,
    /// Their policy group (which replaces the address's).
    pub group: String,
}

/// Checks a user name and password (Haven's store, in the binary).
pub trait Authenticator: Send + Sync {
    /// The person, when the password is theirs (and their account is open).
    fn check<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<ProxyUser>> + Send + 'a>>;

    /// A number that moves whenever a password may have changed: answers remembered under
    /// another number are forgotten.
    fn generation(&self) -> u64 {
        0
    }
}

/// Wrong passwords (each checked afresh) from one client address within
/// [`FAILURE_WINDOW`], after which its new credentials wait.
pub const FAILURES_PER_CLIENT: u32 = 20;
/// The window for [`FAILURES_PER_CLIENT`].
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Credentials not checked: too many wrong ones from this address lately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyFailures;

/// How long a correct password is remembered.
const GOOD_FOR: Duration = Duration::from_secs(10 * 60);
/// How long a wrong one is remembered (a browser repeating stale credentials costs one
/// failed sign-in per this, not one per request).
const BAD_FOR: Duration = Duration::from_secs(5 * 60);
/// Credentials remembered at most.
const REMEMBERED: usize = 8192;

/// An answer (the person, or none) and until when it holds.
type Remembered = (Option<ProxyUser>, Instant);

/// Answers remembered by keyed hash of user name and password.
pub(crate) struct CredentialCache {
    key: ring::hmac::Key,
    /// The authenticator's generation the answers belong to, and the answers.
    answers: Mutex<(u64, HashMap<[u8; 32], Remembered>)>,
    failures: haven_core::throttle::Failures<IpAddr>,
}

impl CredentialCache {
    pub(crate) fn new() -> CredentialCache {
        use ring::rand::SecureRandom as _;
        let mut secret = [0u8; 32];
        if ring::rand::SystemRandom::new().fill(&mut secret).is_err() {
            // ring's system source does not fail on Linux; should it, the process's own
            // randomly keyed hasher still gives a key nobody outside knows.
            use std::hash::BuildHasher as _;
            let seed = std::collections::hash_map::RandomState::new();
            for (i, chunk) in secret.chunks_mut(8).enumerate() {
                chunk.copy_from_slice(&seed.hash_one(i).to_le_bytes());
            }
        }
        CredentialCache {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            answers: Mutex::new((0, HashMap::new())),
            failures: haven_core::throttle::Failures::new(FAILURES_PER_CLIENT, FAILURE_WINDOW),
        }
    }

    fn fingerprint(&self, user: &str, password: &str) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// The person for these credentials from `client`: remembered, or asked of `auth` (unless
    /// that address has given too many wrong ones lately).
    pub(crate) async fn check(
        &self,
        auth: &dyn Authenticator,
        user: &str,
        password: &str,
        client: IpAddr,
    ) -> Result<Option<ProxyUser>, TooManyFailures> {
        let print = self.fingerprint(user, password);
        let now = crate::clock::instant();
        let generation = auth.generation();
        if let Ok(mut guard) = self.answers.lock() {
            let (seen, map) = &mut *guard;
            if *seen != generation {
                // A password changed somewhere: nothing remembered holds any more.
                map.clear();
                *seen = generation;
            }
            if let Some((answer, until)) = map.get(&print) {
                if *until > now {
                    return Ok(answer.clone());
                }
            }
        }
        if self.failures.too_many(&client, now) {
            return Err(TooManyFailures);
        }
        let answer = auth.check(user, password).await;
        if answer.is_none() {
            self.failures.failed(&client, now);
        }
        let until = now + if answer.is_some() { GOOD_FOR } else { BAD_FOR };
        if let Ok(mut guard) = self.answers.lock() {
            let (seen, map) = &mut *guard;
            if *seen != generation {
                // Changed while this was checked: the answer may be stale already.
                return Ok(answer);
            }
            if map.len() >= REMEMBERED {
                map.retain(|_, (_, t)| *t > now);
                if map.len() >= REMEMBERED {
                    map.clear();
                }
            }
            map.insert(print, (answer.clone(), until));
        }
        Ok(answer)
    }
}

/// The user name and password of a `Proxy-Authorization: Basic` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.trim().to_ascii_lowercase(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn reads_basic_credentials() {
        let mut h = HeaderMap::new();
        // "Amara.Okafor:pa:ss" — a colon in the password is part of it.
        h.insert(
            header::PROXY_AUTHORIZATION,
            "Basic QW1hcmEuT2thZm9yOnBhOnNz".parse().expect("header"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("amara.okafor".to_owned(), "pa:ss".to_owned()))
        );
        for bad in ["Bearer abc", "Basic !!!", "Basic bm9jb2xvbg=="] {
            h.insert(header::PROXY_AUTHORIZATION, bad.parse().expect("header"));
            assert_eq!(basic_credentials(&h), None, "{bad}");
        }
    }

    struct Counting(AtomicUsize, std::sync::atomic::AtomicU64);
    impl Authenticator for Counting {
        fn generation(&self) -> u64 {
            self.1.load(Ordering::Relaxed)
        }

        fn check<'a>(
            &'a self,
            username: &'a str,
            password: &'a str,
        ) -> Pin<Box<dyn Future<Output = Option<ProxyUser>> + Send + 'a>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                (password == "right").then(|| ProxyUser {
                    username: username.to_owned(),
                    group: "ks2".to_owned(),
                })
            })
        }
    }

    const PUPIL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test]
    async fn answers_are_remembered_right_and_wrong_until_a_password_changes() {
        let cache = CredentialCache::new();
        let auth = Counting(AtomicUsize::new(0), 0.into());
        for _ in 0..3 {
            assert!(
                cache.check(&auth, "amara", "right", PUPIL).await
                    == Ok(Some(ProxyUser {
                        username: "amara".into(),
                        group: "ks2".into()
                    }))
            );
            assert_eq!(cache.check(&auth, "amara", "wrong", PUPIL).await, Ok(None));
        }
        assert_eq!(auth.0.load(Ordering::Relaxed), 2, "each asked once");
        // A different password is a different question.
        assert_eq!(cache.check(&auth, "amara", "right ", PUPIL).await, Ok(None));
        assert_eq!(auth.0.load(Ordering::Relaxed), 3);
        // A password changed: asked again.
        auth.1.store(1, Ordering::Relaxed);
        assert!(cache.check(&auth, "amara", "right", PUPIL).await.is_ok());
        assert_eq!(auth.0.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn wrong_passwords_slow_their_address_only() {
        let cache = CredentialCache::new();
        let auth = Counting(AtomicUsize::new(0), 0.into());
        for n in 0..FAILURES_PER_CLIENT {
            assert_eq!(
                cache
                    .check(&auth, "amara", &format!("guess{n}"), PUPIL)
                    .await,
                Ok(None)
            );
        }
        assert_eq!(
            cache.check(&auth, "amara", "right", PUPIL).await,
            Err(TooManyFailures)
        );
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 3));
        assert!(matches!(
            cache.check(&auth, "amara", "right", other).await,
            Ok(Some(_))
        ));
    }
}
