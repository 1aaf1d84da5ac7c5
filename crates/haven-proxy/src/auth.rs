//! Proxy authentication: `Proxy-Authorization: Basic` checked against Haven's users, so that
//! events carry the person and the person's group decides. Checking a password is slow on
//! purpose (argon2id), so answers are remembered for a while by a keyed hash of the
//! credentials: a browser sends them with every request.

use std::collections::HashMap;
use std::future::Future;
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
}

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
    answers: Mutex<HashMap<[u8; 32], Remembered>>,
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
            answers: Mutex::new(HashMap::new()),
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

    /// The person for these credentials: remembered, or asked of `auth`.
    pub(crate) async fn check(
        &self,
        auth: &dyn Authenticator,
        user: &str,
        password: &str,
    ) -> Option<ProxyUser> {
        let print = self.fingerprint(user, password);
        let now = Instant::now();
        if let Ok(map) = self.answers.lock() {
            if let Some((answer, until)) = map.get(&print) {
                if *until > now {
                    return answer.clone();
                }
            }
        }
        let answer = auth.check(user, password).await;
        let until = now + if answer.is_some() { GOOD_FOR } else { BAD_FOR };
        if let Ok(mut map) = self.answers.lock() {
            if map.len() >= REMEMBERED {
                map.retain(|_, (_, t)| *t > now);
                if map.len() >= REMEMBERED {
                    map.clear();
                }
            }
            map.insert(print, (answer.clone(), until));
        }
        answer
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

    struct Counting(AtomicUsize);
    impl Authenticator for Counting {
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

    #[tokio::test]
    async fn answers_are_remembered_right_and_wrong() {
        let cache = CredentialCache::new();
        let auth = Counting(AtomicUsize::new(0));
        for _ in 0..3 {
            assert!(cache.check(&auth, "amara", "right").await.is_some());
            assert!(cache.check(&auth, "amara", "wrong").await.is_none());
        }
        assert_eq!(auth.0.load(Ordering::Relaxed), 2, "each asked once");
        // A different password is a different question.
        assert!(cache.check(&auth, "amara", "right ").await.is_none());
        assert_eq!(auth.0.load(Ordering::Relaxed), 3);
    }
}
