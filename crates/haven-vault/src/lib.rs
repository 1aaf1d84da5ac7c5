//! Each school's keys, kept in files outside the database (`<data-dir>/vault/`), and evidence
//! sealed under them: a copy of the database alone reveals no photo, screenshot or document.
//!
//! - `school-<id>.keys` (0600): the school's AES-256-GCM keys, a line per version,
//!   `<version> <64 hex digits>`, oldest first. Rotation adds a line; no line is ever removed, so
//!   every sealed value stays readable. The file is replaced whole (temporary file, fsync,
//!   rename) under the vault's lock: two rotations in one process never lose a version, but two
//!   *processes* rotating the same school at once are not supported.
//! - `school-<id>.signing.p8` (0600): the school's Ed25519 signing key (PKCS#8 v2).
//! - `school-<id>.transfer.key` (0600): the school's X25519 key for receiving a child's file
//!   from another school ([`transfer`]).
//!
//! A sealed value is `HVS1`, the key version (u32 big-endian), a random 96-bit nonce, then the
//! ciphertext and its 16-byte tag. The header, the school id (i64 big-endian) and the caller's
//! associated data are bound in as AEAD associated data, so a value copied onto another school
//! or record, or with any byte changed, does not open.
//!
//! A key file that is readable by others, malformed or unreadable is refused and left as it is:
//! a new key is made only where there is no file at all, never over one that cannot be read
//! (that would orphan every value sealed under it).

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub mod transfer;

pub use transfer::{Identity, Receipt, TransferError};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};

/// The first bytes of every sealed value.
pub const MAGIC: &[u8; 4] = b"HVS1";
/// The magic and the key version.
const HEADER_LEN: usize = 8;
/// AES-256-GCM's tag.
const TAG_LEN: usize = 16;
/// An AES-256 key.
const KEY_LEN: usize = 32;

/// What went wrong in the vault; each message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A vault file or directory could not be read or written.
    #[error("{}: {error}; check that it exists, belongs to the user Haven runs as, and that the disk is not full", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Other users could put their own key files in the vault directory.
    #[error("the vault directory {p} can be changed by other users (mode {mode:03o}); make it Haven's alone: chmod 700 {p}", p = path.display())]
    LooseDirectory { path: PathBuf, mode: u32 },
    /// A key file other users can read or write.
    #[error("the key file {p} can be read or changed by other users (mode {mode:03o}) and was left as it is; find out who may have copied it, then chmod 600 {p} and rotate the school's key", p = path.display())]
    LooseFile { path: PathBuf, mode: u32 },
    /// A keyring that is not `<version> <64 hex digits>` lines with distinct versions.
    #[error("the key file {} line {line}: {problem}; it was left as it is: restore it from the vault backup", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
    /// A signing key file that ring does not accept.
    #[error("the signing key file {} is not an Ed25519 key (PKCS#8 v2) and was left as it is; restore it from the vault backup", path.display())]
    BadSigningKey { path: PathBuf },
    /// Too short to be a sealed value, or no `HVS1` header.
    #[error("the value is not sealed evidence (shorter than a sealed value, or no HVS1 header): it was truncated or never sealed")]
    NotSealed,
    /// The value names a key version the school's keyring does not hold.
    #[error("the value was sealed under key version {version}, which {} does not hold; restore the vault from a backup made after that key was added", path.display())]
    UnknownVersion { path: PathBuf, version: u32 },
    /// The AEAD refused the value: changed, truncated, another school's or record's, or another key.
    #[error("the value does not open with key version {version} of {}: it was changed or truncated, belongs to another school or record, or the key file was replaced; restore the value or the vault from backup", path.display())]
    Refused { path: PathBuf, version: u32 },
    /// An Ed25519 signature that does not verify.
    #[error("the signature does not match this message and public key: the message was changed, or another key signed it")]
    BadSignature,
    /// ring's random number generator or AEAD failed (not expected to happen).
    #[error(
        "{0} failed in the cryptography library; try again, and report it if it keeps failing"
    )]
    Crypto(&'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VaultError + '_ {
    move |error| VaultError::Io {
        path: path.to_owned(),
        error,
    }
}

/// A bool-free choice for loading a keyring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    /// Make the school's first key when it has no keyring file (sealing, rotating).
    Yes,
    /// Treat a missing keyring as holding no keys (opening, listing).
    No,
}

/// A file's inode, size and change time: a rotation (a rename of a longer file) changes it.
type Stamp = (u64, u64, i64, i64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec())
}

struct Keyring {
    stamp: Option<Stamp>,
    keys: BTreeMap<u32, LessSafeKey>,
}

#[derive(Default)]
struct State {
    rings: HashMap<i64, Arc<Keyring>>,
    signers: HashMap<i64, Arc<Ed25519KeyPair>>,
}

/// The vault in one directory. Cheap to share (`Arc<Vault>`); the keys it has read are cached
/// and a keyring is read again when its file changes (another process's rotation).
pub struct Vault {
    dir: PathBuf,
    /// The directory's user and group, given to every file written (see `write_temp`).
    owner: (u32, u32),
    rng: SystemRandom,
    state: Mutex<State>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault in `dir` (e.g. `<data-dir>/vault`), made with mode 0700 when absent. A vault
    /// directory other users can write to is refused (they could swap in a key they know).
    pub fn open(dir: &Path) -> Result<Vault, VaultError> {
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(dir)(e)),
        }
        let meta = std::fs::metadata(dir).map_err(io(dir))?;
        if !meta.is_dir() {
            return Err(io(dir)(std::io::Error::other("not a directory")));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(VaultError::LooseDirectory {
                path: dir.to_owned(),
                mode: meta.mode() & 0o777,
            });
        }
        Ok(Vault {
            dir: dir.to_owned(),
            owner: (meta.uid(), meta.gid()),
            rng: SystemRandom::new(),
            state: Mutex::default(),
        })
    }

    /// The vault's directory (what to back up).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Seals `plain` for `school` under the school's newest key (made on first use), with `aad`
    /// (e.g. `b"evidence:42"`) bound in: `HVS1`, version (u32 BE), nonce, ciphertext and tag.
    pub fn seal(&self, school: i64, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, VaultError> {
        let ring = self.keyring(school, Create::Yes)?;
        let (version, key) = ring
            .keys
            .last_key_value()
            .ok_or_else(|| VaultError::Malformed {
                path: self.keyring_path(school),
                line: 1,
                problem: "it holds no keys",
            })?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| VaultError::Crypto("making a nonce"))?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&version.to_be_bytes());
        let bound = bound_aad(&out, school, aad);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        // `out` holds the header and nonce just written, so the range is in bounds.
        let body = &mut out[HEADER_LEN + NONCE_LEN..];
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(bound), body)
            .map_err(|_| VaultError::Crypto("sealing"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a sealed value with whichever key version it names. A wrong school or aad, a
    /// changed byte, a truncated value or an unknown version is an error, never garbage.
    pub fn open_sealed(
        &self,
        school: i64,
        aad: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let version = Vault::version_of(sealed).ok_or(VaultError::NotSealed)?;
        let ring = self.keyring(school, Create::No)?;
        let path = self.keyring_path(school);
        let key = ring
            .keys
            .get(&version)
            .ok_or_else(|| VaultError::UnknownVersion {
                path: path.clone(),
                version,
            })?;
        // `version_of` checked the length.
        let (header, rest) = sealed.split_at(HEADER_LEN);
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::NotSealed)?;
        let mut buf = body.to_vec();
        let len = key
            .open_in_place(nonce, Aad::from(bound_aad(header, school, aad)), &mut buf)
            .map_err(|_| VaultError::Refused { path, version })?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    /// Adds a new key version for the school (after making its first, when it has none) and
    /// returns it; new seals use it, and every older version is kept so old values still open.
    pub fn rotate(&self, school: i64) -> Result<u32, VaultError> {
        let path = self.keyring_path(school);
        let mut state = self.lock();
        self.keyring_locked(&mut state, school, Create::Yes)?;
        let (mut text, _) = read_private(&path)?;
        let current = parse_keyring(&path, &text, None)?;
        let last = current.keys.last_key_value().map_or(0, |(v, _)| *v);
        let version = last.checked_add(1).ok_or_else(|| VaultError::Malformed {
            path: path.clone(),
            line: current.keys.len(),
            problem: "it holds the last key version there can be",
        })?;
        if !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(format!("{version} {}\n", hex(&self.random_key()?)).as_bytes());
        let tmp = write_temp(&path, &text, self.owner)?;
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(&path)(e)
        })?;
        sync_dir(&self.dir)?;
        self.keyring_locked(&mut state, school, Create::No)?;
        Ok(version)
    }

    /// Re-seals a value under the school's newest key, with the same aad (after a rotation, to
    /// retire the old keys).
    pub fn reseal(&self, school: i64, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, VaultError> {
        self.seal(school, aad, &self.open_sealed(school, aad, sealed)?)
    }

    /// The key version a sealed value names, or None when it is not a sealed value.
    pub fn version_of(sealed: &[u8]) -> Option<u32> {
        if sealed.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || !sealed.starts_with(MAGIC) {
            return None;
        }
        Some(u32::from_be_bytes(
            sealed.get(4..HEADER_LEN)?.try_into().ok()?,
        ))
    }

    /// The school's key versions, oldest first (none before its first seal).
    pub fn versions(&self, school: i64) -> Result<Vec<u32>, VaultError> {
        Ok(self
            .keyring(school, Create::No)?
            .keys
            .keys()
            .copied()
            .collect())
    }

    /// Signs `message` (a record transfer) with the school's Ed25519 key, made on first use.
    pub fn sign(&self, school: i64, message: &[u8]) -> Result<Vec<u8>, VaultError> {
        Ok(self.signer(school)?.sign(message).as_ref().to_vec())
    }

    /// The school's Ed25519 public key (32 bytes), for the receiver to [`verify`] with.
    pub fn public_signing_key(&self, school: i64) -> Result<Vec<u8>, VaultError> {
        Ok(self.signer(school)?.public_key().as_ref().to_vec())
    }

    fn keyring_path(&self, school: i64) -> PathBuf {
        self.dir.join(format!("school-{school}.keys"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state holds only whole, parsed keyrings: a panic elsewhere cannot leave half of one.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn random_key(&self) -> Result<[u8; KEY_LEN], VaultError> {
        let mut key = [0u8; KEY_LEN];
        self.rng
            .fill(&mut key)
            .map_err(|_| VaultError::Crypto("making a key"))?;
        Ok(key)
    }

    fn keyring(&self, school: i64, create: Create) -> Result<Arc<Keyring>, VaultError> {
        self.keyring_locked(&mut self.lock(), school, create)
    }

    fn keyring_locked(
        &self,
        state: &mut State,
        school: i64,
        create: Create,
    ) -> Result<Arc<Keyring>, VaultError> {
        let path = self.keyring_path(school);
        let cached = state.rings.get(&school).cloned();
        match (std::fs::metadata(&path), cached) {
            (Ok(meta), Some(ring)) if ring.stamp == Some(stamp(&meta)) => return Ok(ring),
            (Err(e), None) if e.kind() == ErrorKind::NotFound => {
                if create == Create::No {
                    return Ok(Arc::new(Keyring {
                        stamp: None,
                        keys: BTreeMap::new(),
                    }));
                }
                let first = format!("1 {}\n", hex(&self.random_key()?));
                create_once(&path, first.as_bytes(), self.owner, &self.dir)?;
            }
            // A keyring that vanished after it was read is an error, never a new first key.
            (Err(e), _) => return Err(io(&path)(e)),
            (Ok(_), _) => {}
        }
        let (text, stamp) = read_private(&path)?;
        let ring = Arc::new(parse_keyring(&path, &text, Some(stamp))?);
        state.rings.insert(school, Arc::clone(&ring));
        Ok(ring)
    }

    fn signer(&self, school: i64) -> Result<Arc<Ed25519KeyPair>, VaultError> {
        let path = self.dir.join(format!("school-{school}.signing.p8"));
        let mut state = self.lock();
        if let Some(pair) = state.signers.get(&school) {
            return Ok(Arc::clone(pair));
        }
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let doc = Ed25519KeyPair::generate_pkcs8(&self.rng)
                    .map_err(|_| VaultError::Crypto("making a signing key"))?;
                create_once(&path, doc.as_ref(), self.owner, &self.dir)?;
            }
            Err(e) => return Err(io(&path)(e)),
            Ok(_) => {}
        }
        let (bytes, _) = read_private(&path)?;
        let pair =
            Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| VaultError::BadSigningKey { path })?;
        let pair = Arc::new(pair);
        state.signers.insert(school, Arc::clone(&pair));
        Ok(pair)
    }
}

/// Checks an Ed25519 signature made by [`Vault::sign`] against the signer's public key.
pub fn verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), VaultError> {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .map_err(|_| VaultError::BadSignature)
}

/// The SHA-256 of `bytes` in lower-case hex (evidence is kept with its hash, so it can be
/// reported to the IWF without being opened again).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The associated data: the header, the school and the caller's aad (the first two are of
/// fixed length, so the joining is unambiguous).
fn bound_aad(header: &[u8], school: i64, aad: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(HEADER_LEN + 8 + aad.len());
    bound.extend_from_slice(header);
    bound.extend_from_slice(&school.to_be_bytes());
    bound.extend_from_slice(aad);
    bound
}

fn parse_keyring(path: &Path, bytes: &[u8], stamp: Option<Stamp>) -> Result<Keyring, VaultError> {
    let bad = |line, problem| VaultError::Malformed {
        path: path.to_owned(),
        line,
        problem,
    };
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if body.is_empty() {
        return Err(bad(1, "it holds no keys"));
    }
    let mut keys = BTreeMap::new();
    for (n, line) in body
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
    {
        // No part of a line is quoted back: it may hold a key.
        let (version, key) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(' '))
            .ok_or_else(|| bad(n, "not `<version> <64 hex digits>`"))?;
        let version = Some(version)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| bad(n, "the version is not a whole number from 1 to 4294967295"))?;
        let key = unhex(key)
            .filter(|k| k.len() == KEY_LEN)
            .ok_or_else(|| bad(n, "the key is not 64 hexadecimal digits"))?;
        let key =
            UnboundKey::new(&AES_256_GCM, &key).map_err(|_| VaultError::Crypto("loading a key"))?;
        if keys.insert(version, LessSafeKey::new(key)).is_some() {
            return Err(bad(n, "it repeats a key version"));
        }
    }
    Ok(Keyring { stamp, keys })
}

/// A key file's bytes and stamp; refused unless a regular file readable by its owner only.
fn read_private(path: &Path) -> Result<(Vec<u8>, Stamp), VaultError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let meta = file.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(io(path)(std::io::Error::other("not a regular file")));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(VaultError::LooseFile {
            path: path.to_owned(),
            mode: meta.mode() & 0o777,
        });
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io(path))?;
    Ok((bytes, stamp(&meta)))
}

/// A new file beside `path` (0600) holding `bytes`, flushed to disk. It belongs to the vault
/// directory's owner, so a command run as root (`sudo haven vault rotate`) does not leave a key
/// file that Haven's own user cannot read.
fn write_temp(path: &Path, bytes: &[u8], owner: (u32, u32)) -> Result<PathBuf, VaultError> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            let meta = file.metadata()?;
            if (meta.uid(), meta.gid()) != owner {
                std::os::unix::fs::fchown(&file, Some(owner.0), Some(owner.1))?;
            }
            file.write_all(bytes)?;
            file.sync_all()
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    Ok(tmp)
}

/// Puts `bytes` at `path` unless a file is there already: a hard link never replaces one that
/// another process made meanwhile, so two processes racing agree on one key.
fn create_once(path: &Path, bytes: &[u8], owner: (u32, u32), dir: &Path) -> Result<(), VaultError> {
    let tmp = write_temp(path, bytes, owner)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path)(e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (either case) as bytes; `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let nibble = |b: &u8| char::from(*b).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    (bytes.len() % 2 == 0).then_some(())?;
    bytes
        .chunks(2)
        .map(|p| Some(nibble(p.first()?)? << 4 | nibble(p.get(1)?)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A data directory under the system's temporary one, removed afterwards.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("haven-vault-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("the data directory");
            Scratch(dir)
        }
        fn vault(&self) -> Vault {
            Vault::open(&self.0.join("vault")).expect("open the vault")
        }
        fn file(&self, name: &str) -> PathBuf {
            self.0.join("vault").join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    fn names(err: &VaultError, path: &Path) -> bool {
        err.to_string().contains(&path.display().to_string())
    }

    const PHOTO: &[u8] = b"\x89PNG invented screenshot of a message to a pupil";
    const AAD: &[u8] = b"evidence:42";

    #[test]
    fn sealed_evidence_opens_again_and_does_not_show_in_the_sealed_bytes() {
        let s = Scratch::new("round-trip");
        let vault = s.vault();
        let sealed = vault.seal(1, AAD, PHOTO).expect("seal");
        assert!(
            sealed.starts_with(b"HVS1\0\0\0\x01"),
            "the header names version 1"
        );
        assert_eq!(sealed.len(), 8 + 12 + PHOTO.len() + 16);
        assert!(!sealed.windows(8).any(|w| PHOTO.windows(8).any(|p| p == w)));
        assert_ne!(
            sealed,
            vault.seal(1, AAD, PHOTO).expect("seal"),
            "a fresh nonce"
        );
        assert_eq!(
            (Vault::version_of(&sealed), Vault::version_of(PHOTO)),
            (Some(1), None)
        );
        assert_eq!(s.vault().open_sealed(1, AAD, &sealed).expect("open"), PHOTO);
        let empty = vault.seal(1, AAD, b"").expect("seal nothing");
        assert_eq!(vault.open_sealed(1, AAD, &empty).expect("open"), b"");
    }

    #[test]
    fn a_changed_truncated_or_misplaced_value_is_refused_never_garbage() {
        let s = Scratch::new("refused");
        let vault = s.vault();
        let sealed = vault.seal(1, AAD, PHOTO).expect("seal");
        let refused =
            |school, aad: &[u8], value: &[u8]| vault.open_sealed(school, aad, value).is_err();
        assert!(refused(1, b"evidence:43", &sealed), "another record's aad");
        assert!(refused(2, AAD, &sealed), "another school, without keys");
        vault.seal(2, AAD, PHOTO).expect("school 2's key");
        assert!(refused(2, AAD, &sealed), "another school's key");
        for i in 0..sealed.len() {
            let mut changed = sealed.clone();
            changed[i] ^= 0x01;
            assert!(refused(1, AAD, &changed), "byte {i} changed");
            assert!(refused(1, AAD, &sealed[..i]), "cut to {i} bytes");
        }
        let mut later = sealed.clone();
        later[4..8].copy_from_slice(&9u32.to_be_bytes());
        let err = vault.open_sealed(1, AAD, &later).expect_err("version 9");
        assert!(
            matches!(err, VaultError::UnknownVersion { version: 9, .. }),
            "{err}"
        );
        assert!(names(&err, &s.file("school-1.keys")), "{err}");
        assert!(
            vault.open_sealed(1, AAD, &sealed).is_ok(),
            "the original still opens"
        );
    }

    #[test]
    fn rotation_keeps_old_evidence_readable_and_seals_with_the_new_key() {
        let s = Scratch::new("rotate");
        let vault = s.vault();
        assert_eq!(vault.versions(1).expect("versions"), Vec::<u32>::new());
        let old = vault.seal(1, AAD, PHOTO).expect("seal");
        let other_school = vault.seal(2, AAD, PHOTO).expect("seal");
        assert_eq!(
            (
                vault.rotate(1).expect("rotate"),
                vault.rotate(1).expect("rotate")
            ),
            (2, 3)
        );
        assert_eq!(vault.versions(1).expect("versions"), vec![1, 2, 3]);
        assert_eq!(vault.versions(2).expect("versions"), vec![1]);
        let new = vault.seal(1, b"evidence:3", PHOTO).expect("seal");
        assert_eq!(Vault::version_of(&new), Some(3));
        assert_eq!(vault.open_sealed(1, AAD, &old).expect("old"), PHOTO);
        assert_eq!(
            vault.open_sealed(1, b"evidence:3", &new).expect("new"),
            PHOTO
        );
        assert_eq!(
            vault.open_sealed(2, AAD, &other_school).expect("other"),
            PHOTO
        );
        assert_eq!(
            mode(&s.file("school-1.keys")),
            0o600,
            "the rewritten keyring"
        );
        let text = std::fs::read_to_string(s.file("school-1.keys")).expect("read");
        assert_eq!(
            text.lines().map(|l| &l[..2]).collect::<Vec<_>>(),
            ["1 ", "2 ", "3 "]
        );
    }

    #[test]
    fn another_processes_rotation_is_seen_without_a_restart() {
        let s = Scratch::new("other-process");
        let (server, cli) = (s.vault(), s.vault());
        let old = server.seal(1, AAD, PHOTO).expect("seal");
        assert_eq!(cli.rotate(1).expect("rotate"), 2);
        let new = cli.seal(1, AAD, PHOTO).expect("seal");
        assert_eq!(server.open_sealed(1, AAD, &new).expect("opens"), PHOTO);
        assert_eq!(
            Vault::version_of(&server.seal(1, AAD, PHOTO).expect("seal")),
            Some(2)
        );
        assert_eq!(cli.open_sealed(1, AAD, &old).expect("opens"), PHOTO);
    }

    #[test]
    fn rotations_at_once_in_one_process_lose_no_version() {
        let s = Scratch::new("threads");
        let vault = Arc::new(s.vault());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let vault = Arc::clone(&vault);
                std::thread::spawn(move || (0..5).map(|_| vault.rotate(1).expect("rotate")).max())
            })
            .collect();
        let last = threads
            .into_iter()
            .filter_map(|t| t.join().expect("thread"))
            .max();
        assert_eq!(last, Some(21), "the first key and twenty rotations");
        assert_eq!(
            s.vault().versions(1).expect("versions"),
            (1..=21).collect::<Vec<_>>()
        );
    }

    #[test]
    fn reseal_moves_a_value_to_the_newest_key() {
        let s = Scratch::new("reseal");
        let vault = s.vault();
        let old = vault.seal(1, AAD, PHOTO).expect("seal");
        vault.rotate(1).expect("rotate");
        let moved = vault.reseal(1, AAD, &old).expect("reseal");
        assert_eq!(Vault::version_of(&moved), Some(2));
        assert_eq!(vault.open_sealed(1, AAD, &moved).expect("opens"), PHOTO);
        assert!(
            vault.reseal(1, b"evidence:43", &old).is_err(),
            "the aad must match"
        );
    }

    #[test]
    fn key_files_are_the_owners_only_and_the_vault_directory_too() {
        let s = Scratch::new("modes");
        let vault = s.vault();
        vault.seal(1, AAD, PHOTO).expect("seal");
        vault.sign(1, b"m").expect("sign");
        assert_eq!(mode(vault.dir()), 0o700);
        assert_eq!(mode(&s.file("school-1.keys")), 0o600);
        assert_eq!(mode(&s.file("school-1.signing.p8")), 0o600);
        let files = std::fs::read_dir(vault.dir()).expect("list").count();
        assert_eq!(files, 2, "no temporary files left");
        chmod(vault.dir(), 0o777);
        let err = Vault::open(vault.dir()).expect_err("a vault others can write to");
        assert!(matches!(err, VaultError::LooseDirectory { .. }), "{err}");
        assert!(names(&err, vault.dir()), "{err}");
    }

    #[test]
    fn key_files_belong_to_the_vault_directorys_owner_even_when_root_writes_them() {
        let s = Scratch::new("owner");
        let dir = s.vault().dir().to_owned();
        // Only root may give the directory away; as anyone else the files are simply theirs.
        let _ = std::os::unix::fs::chown(&dir, Some(65534), Some(65534));
        let vault = s.vault();
        vault.seal(1, AAD, PHOTO).expect("seal");
        vault.rotate(1).expect("rotate");
        vault.sign(1, b"m").expect("sign");
        let owner = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| (m.uid(), m.gid()))
                .expect("meta")
        };
        assert_eq!(owner(&s.file("school-1.keys")), owner(&dir));
        assert_eq!(owner(&s.file("school-1.signing.p8")), owner(&dir));
    }

    #[test]
    fn a_loose_or_garbled_keyring_is_refused_by_name_and_left_as_it_is() {
        let s = Scratch::new("garbled");
        let sealed = s.vault().seal(1, AAD, PHOTO).expect("seal");
        let path = s.file("school-1.keys");
        let before = std::fs::read(&path).expect("read");
        chmod(&path, 0o644);
        for err in [
            s.vault().seal(1, AAD, PHOTO).expect_err("loose"),
            s.vault().open_sealed(1, AAD, &sealed).expect_err("loose"),
            s.vault().rotate(1).expect_err("loose"),
        ] {
            assert!(
                matches!(err, VaultError::LooseFile { mode: 0o644, .. }),
                "{err}"
            );
            assert!(names(&err, &path), "{err}");
        }
        assert_eq!(std::fs::read(&path).expect("read"), before, "not replaced");
        assert_eq!(mode(&path), 0o644, "not quietly changed");
        let key = "ab".repeat(32);
        for (school, text, line) in [
            (2, "garbage\n".to_owned(), 1),
            (3, String::new(), 1),
            (4, format!("1 {key}\n1 {key}\n"), 2),
            (5, format!("1 {key}\n2 {}\n", "zz".repeat(32)), 2),
            (6, format!("0 {key}\n"), 1),
            (7, format!("1 {key}\n\n2 {key}\n"), 2),
        ] {
            let path = s.file(&format!("school-{school}.keys"));
            std::fs::write(&path, &text).expect("write");
            chmod(&path, 0o600);
            let err = s.vault().seal(school, AAD, PHOTO).expect_err("garbled");
            assert!(
                matches!(err, VaultError::Malformed { line: l, .. } if l == line),
                "{err}"
            );
            assert!(
                names(&err, &path) && !err.to_string().contains(&key),
                "{err}"
            );
            assert!(s.vault().rotate(school).is_err() && s.vault().versions(school).is_err());
            assert_eq!(
                std::fs::read_to_string(&path).expect("read"),
                text,
                "not replaced"
            );
        }
    }

    #[test]
    fn two_schools_have_different_keys() {
        let s = Scratch::new("schools");
        let vault = s.vault();
        let one = vault.seal(1, AAD, PHOTO).expect("seal");
        let two = vault.seal(2, AAD, PHOTO).expect("seal");
        assert!(
            vault.open_sealed(2, AAD, &one).is_err() && vault.open_sealed(1, AAD, &two).is_err()
        );
        let key =
            |n: i64| std::fs::read_to_string(s.file(&format!("school-{n}.keys"))).expect("read");
        assert_ne!(key(1)[2..], key(2)[2..]);
        let public = |n| vault.public_signing_key(n).expect("public key");
        assert_ne!(public(1), public(2));
    }

    #[test]
    fn a_signed_transfer_verifies_and_a_changed_one_does_not() {
        let s = Scratch::new("sign");
        let vault = s.vault();
        let message = b"transfer of record 42 to school 9";
        let signature = vault.sign(1, message).expect("sign");
        let public = s
            .vault()
            .public_signing_key(1)
            .expect("the same key, from its file");
        assert_eq!(public.len(), 32);
        verify(&public, message, &signature).expect("verifies");
        assert!(verify(&public, b"transfer of record 43 to school 9", &signature).is_err());
        let other = vault.public_signing_key(2).expect("school 2's key");
        assert!(verify(&other, message, &signature).is_err());
        let path = s.file("school-3.signing.p8");
        std::fs::write(&path, b"not a key").expect("write");
        chmod(&path, 0o600);
        let err = vault.sign(3, message).expect_err("a garbled signing key");
        assert!(
            matches!(err, VaultError::BadSigningKey { .. }) && names(&err, &path),
            "{err}"
        );
    }

    #[test]
    fn debug_output_shows_no_key_bytes() {
        let s = Scratch::new("debug");
        let vault = s.vault();
        vault.seal(1, AAD, PHOTO).expect("seal");
        vault.sign(1, b"m").expect("sign");
        let shown = format!("{vault:?} {vault:#?}");
        assert!(shown.contains("vault"), "{shown}");
        let text = std::fs::read_to_string(s.file("school-1.keys")).expect("read");
        let key = text.split_whitespace().nth(1).expect("a key");
        assert!(
            !shown.contains(&key[..8]) && !shown.contains(&key[56..]),
            "{shown}"
        );
        let signing = std::fs::read(s.file("school-1.signing.p8")).expect("read");
        assert!(
            !shown.contains(&format!("{:?}", &signing[16..20])),
            "{shown}"
        );
        assert!(!shown.contains(&hex(&signing[16..20])), "{shown}");
    }

    #[test]
    fn sha256_hex_matches_the_standard() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
    }
}
