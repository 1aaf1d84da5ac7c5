//! Secrets the store must read back (TOTP secrets), sealed with AES-256-GCM under a key kept in
//! a file outside the database (`<data-dir>/totp.key`, mode 0600, made on first use): a copy of
//! the database alone (a backup, a PostgreSQL dump) does not give anyone the second factors.
//!
//! A sealed value is `sealed1:` and the hex of a random 96-bit nonce followed by the ciphertext
//! and its tag; the person it belongs to is bound in as associated data, so a sealed secret
//! copied onto another person's row does not open. Values without the prefix are secrets kept
//! before sealing began: they are still read, and sealed when next touched.

use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::StoreError;

/// The key file's name in the data directory.
pub const TOTP_KEY_FILE: &str = "totp.key";

const PREFIX: &str = "sealed1:";

/// The key that seals and opens secrets.
pub struct SealKey(LessSafeKey);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(…)")
    }
}

fn key_error(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(format!("the key file {}: {what}", path.display()))
}

impl SealKey {
    /// The key in `path`, made there first (readable by this user only) when there is none.
    /// Two processes making it at once agree on one: the file appears whole or not at all.
    pub fn load_or_create(path: &Path) -> Result<SealKey, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if !path.exists() {
            let bytes = crate::sessions::random_bytes(32)?;
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| key_error(&tmp, e))?;
            std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| key_error(&tmp, e))?;
            // A hard link never replaces a file another process made meanwhile.
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(key_error(path, e)),
            }
        }
        let meta = std::fs::metadata(path).map_err(|e| key_error(path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| key_error(path, e))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| key_error(path, e))?;
        let bytes = unhex(text.trim())
            .filter(|b| b.len() == 32)
            .ok_or_else(|| key_error(path, "not 64 hexadecimal digits"))?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| key_error(path, "not an AES-256 key"))?;
        Ok(SealKey(LessSafeKey::new(key)))
    }

    /// `plain`, sealed for the row `owner`.
    pub fn seal(&self, plain: &str, owner: i64) -> Result<String, StoreError> {
        let nonce_bytes = crate::sessions::random_bytes(NONCE_LEN)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&nonce_bytes);
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.to_be_bytes()),
                &mut data,
            )
            .map_err(|_| StoreError::Invalid("sealing a secret failed".into()))?;
        let mut out = String::with_capacity(PREFIX.len() + 2 * (NONCE_LEN + data.len()));
        out.push_str(PREFIX);
        for b in nonce.iter().chain(&data) {
            out.push_str(&format!("{b:02x}"));
        }
        Ok(out)
    }

    /// The secret in a stored value for the row `owner`: opened when sealed (refused when
    /// another key or another row sealed it), as it is when kept before sealing began.
    pub fn open(&self, stored: &str, owner: i64) -> Result<String, StoreError> {
        let Some(hex) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let refused = || {
            StoreError::Invalid(format!(
                "a sealed secret does not open with {TOTP_KEY_FILE}: was the key file replaced or lost?"
            ))
        };
        let mut bytes = unhex(hex)
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or_else(refused)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plain = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.to_be_bytes()),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| refused())?;
        String::from_utf8(plain.to_vec()).map_err(|_| refused())
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_for_their_row_and_key_only() {
        let dir = std::env::temp_dir().join(format!("haven-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join(TOTP_KEY_FILE);
        let key = SealKey::load_or_create(&path).expect("key");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("meta").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let sealed = key.seal("JBSWY3DPEHPK3PXP", 7).expect("seal");
        assert!(is_sealed(&sealed) && !sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_ne!(
            sealed,
            key.seal("JBSWY3DPEHPK3PXP", 7).expect("seal"),
            "fresh nonce"
        );
        let again = SealKey::load_or_create(&path).expect("same key");
        assert_eq!(again.open(&sealed, 7).expect("open"), "JBSWY3DPEHPK3PXP");
        assert!(again.open(&sealed, 8).is_err(), "another row's secret");
        assert!(again.open("sealed1:00zz", 7).is_err());
        assert_eq!(again.open("PLAINOLD", 7).expect("plain"), "PLAINOLD");
        std::fs::remove_file(&path).expect("rm");
        let other = SealKey::load_or_create(&path).expect("a new key");
        assert!(other.open(&sealed, 7).is_err(), "another key");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
