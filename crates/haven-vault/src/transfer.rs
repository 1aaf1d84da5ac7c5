//! Sealing a child's file to another school, and the receipt that school signs.
//!
//! Each school has, beside its evidence keys, an X25519 key for receiving files
//! (`school-<id>.transfer.key`, 0600, 64 hex digits) and its Ed25519 signing key. The two public
//! halves are its *transfer identity*, a line the receiving school's DSL gives the sending
//! school's (by email, or read out over the phone as a fingerprint):
//!
//! ```text
//! haven-school-key/1 <signing key, 64 hex> <receiving key, 64 hex> <school name>
//! ```
//!
//! A sealed transfer (`docs/TRANSFER.md`) is, in order: `HVT1`; the sender's signing key (32
//! bytes); the recipient's receiving key (32); a fresh ephemeral X25519 public key (32); a
//! 96-bit nonce; the payload under AES-256-GCM; then an Ed25519 signature (64) over everything
//! before it. The AES key is HKDF-SHA256 of the X25519 shared secret (salt
//! `haven transfer v1`, info the 4 + 32 + 32 + 32 bytes before the nonce); the whole header
//! (through the nonce) is the associated data. Only the recipient opens it; anyone holding the
//! sender's identity can check who sent it; a changed byte is refused.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf;
use ring::rand::SecureRandom as _;
use std::io::ErrorKind;
use x25519_dalek::{PublicKey, StaticSecret};

use crate::{create_once, hex, io, read_private, unhex, verify, Vault, VaultError};

/// The first bytes of a sealed transfer.
pub const TRANSFER_MAGIC: &[u8; 4] = b"HVT1";
/// The first word of a transfer identity line.
pub const IDENTITY_TAG: &str = "haven-school-key/1";
/// The first line of a receipt.
pub const RECEIPT_TAG: &str = "haven-receipt/1";
const KEY: usize = 32;
const SIG: usize = 64;
/// Magic, sender's signing key, recipient's receiving key, ephemeral key.
const KEYS_END: usize = 4 + 3 * KEY;
const HEADER_END: usize = KEYS_END + NONCE_LEN;
const SALT: &[u8] = b"haven transfer v1";

/// A school's transfer identity: the public halves of its signing and receiving keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Ed25519: checks what the school signs (a transfer it sends, a receipt it returns).
    pub signing: [u8; KEY],
    /// X25519: files sealed to this key open only with the school's vault.
    pub receiving: [u8; KEY],
    /// The school's name as it gave it (not checked by anything: a label for people).
    pub school: String,
}

/// What was wrong with a transfer identity, a sealed transfer or a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Not a `haven-school-key/1` line.
    #[error("this is not a Haven school key: expected one line `haven-school-key/1 <64 hex digits> <64 hex digits> <school name>` as `haven records identity` prints it")]
    BadIdentity,
    /// Too short, or no `HVT1` header.
    #[error("this is not a sealed Haven transfer (no HVT1 header, or cut short)")]
    NotTransfer,
    /// Sealed to another school's key.
    #[error("this transfer was sealed for another school's key, not this school's: ask the sending school to seal it again with this school's key (`haven records identity`)")]
    NotForUs,
    /// The signature does not match: changed on the way, or not from the key it names.
    #[error("the transfer's signature does not match: it was changed after it was sealed, or it is not from the school it names; it was not opened")]
    BadSignature,
    /// Signed by a key other than the sending school's the receiver expected.
    #[error("the transfer was signed by {found}, not by the school key you gave ({expected}); it was not opened: check with the sending school's DSL by phone")]
    UnexpectedSender { expected: String, found: String },
    /// The AEAD refused it (cannot happen after a good signature unless the sender's software is wrong).
    #[error("the transfer does not open with this school's receiving key; it was not imported")]
    Refused,
    /// Not a receipt in the `haven-receipt/1` form.
    #[error("this is not a Haven receipt: {0}")]
    BadReceipt(&'static str),
    /// The receipt's signature is not the receiving school's.
    #[error("the receipt's signature does not match the key of the school the file was sent to: it was changed, or another school signed it")]
    BadReceiptSignature,
}

impl Identity {
    /// The identity as one line (`haven-school-key/1 …`).
    pub fn to_line(&self) -> String {
        format!(
            "{IDENTITY_TAG} {} {} {}",
            hex(&self.signing),
            hex(&self.receiving),
            one_line(&self.school)
        )
    }

    /// Reads a line [`Identity::to_line`] wrote (blank space around it is ignored).
    pub fn parse(text: &str) -> Result<Identity, TransferError> {
        let text = text.trim();
        if text.len() > 1_000 || text.contains('\n') {
            return Err(TransferError::BadIdentity);
        }
        let mut parts = text.splitn(4, ' ');
        if parts.next() != Some(IDENTITY_TAG) {
            return Err(TransferError::BadIdentity);
        }
        let signing = parts
            .next()
            .and_then(key32)
            .filter(sound_signing_key)
            .ok_or(TransferError::BadIdentity)?;
        let receiving = parts
            .next()
            .and_then(key32)
            .filter(sound_receiving_key)
            .ok_or(TransferError::BadIdentity)?;
        let school = parts.next().unwrap_or("").trim().to_owned();
        Ok(Identity {
            signing,
            receiving,
            school,
        })
    }

    /// Twenty hex digits in fives, from the SHA-256 of both keys: read out over the phone to
    /// check that the line came from the school it names.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.signing, &self.receiving)
    }
}

fn fingerprint(signing: &[u8], receiving: &[u8]) -> String {
    let mut both = signing.to_vec();
    both.extend_from_slice(receiving);
    let h = crate::sha256_hex(&both);
    h.as_bytes()
        .chunks(5)
        .take(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The fingerprint of a signing key alone (as a sealed transfer names its sender).
pub fn key_fingerprint(signing: &[u8]) -> String {
    let h = crate::sha256_hex(signing);
    h.get(..20).unwrap_or(&h).to_owned()
}

/// An Ed25519 public key that is a point of the curve and not of small order: a small-order
/// key (the identity point, say) verifies signatures nobody made.
pub fn sound_signing_key(key: &[u8; KEY]) -> bool {
    curve25519_dalek::edwards::CompressedEdwardsY(*key)
        .decompress()
        .is_some_and(|p| !p.is_small_order())
}

/// An X25519 public key that gives a shared secret depending on both sides (not one of the
/// small-order points, which make every shared secret the same).
fn sound_receiving_key(key: &[u8; KEY]) -> bool {
    let probe = StaticSecret::from([7u8; KEY]);
    probe
        .diffie_hellman(&PublicKey::from(*key))
        .was_contributory()
}

fn key32(text: &str) -> Option<[u8; KEY]> {
    unhex(text)?.try_into().ok()
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A transfer opened by its recipient.
#[derive(Debug)]
pub struct Opened {
    /// The sender's signing key (checked against the signature).
    pub sender: [u8; KEY],
    /// The payload.
    pub payload: Vec<u8>,
}

/// What the receiving school signs: the sealed file's SHA-256, when it arrived, and what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SHA-256 of the sealed transfer file, hex.
    pub transfer_sha256: String,
    /// When it was imported (RFC 3339, the receiver's clock).
    pub received_at: String,
    /// The receiving school, as it names itself.
    pub school: String,
    /// Who imported it (a name).
    pub received_by: String,
    /// Records imported.
    pub records: u64,
    /// Attachments imported.
    pub evidence: u64,
}

impl Receipt {
    fn body(&self, key: &[u8]) -> String {
        format!(
            "{RECEIPT_TAG}\ntransfer-sha256: {}\nreceived-at: {}\nschool: {}\nreceived-by: {}\nrecords: {}\nevidence: {}\nsigning-key: {}\n",
            self.transfer_sha256,
            one_line(&self.received_at),
            one_line(&self.school),
            one_line(&self.received_by),
            self.records,
            self.evidence,
            hex(key)
        )
    }

    /// Reads a receipt and checks its signature against `signer`, the signing key of the school
    /// the file was sent to (from the identity it was sealed for).
    pub fn verify(text: &str, signer: &[u8; KEY]) -> Result<Receipt, TransferError> {
        if text.len() > 10_000 {
            return Err(TransferError::BadReceipt("it is far longer than a receipt"));
        }
        let text = text.replace("\r\n", "\n");
        let (body, sig_line) = text
            .trim_end()
            .rsplit_once('\n')
            .ok_or(TransferError::BadReceipt("it has no signature line"))?;
        let body = format!("{body}\n");
        let sig = sig_line.strip_prefix("signature: ").and_then(unhex).ok_or(
            TransferError::BadReceipt("its last line is not `signature: <128 hex digits>`"),
        )?;
        let mut lines = body.lines();
        if lines.next() != Some(RECEIPT_TAG) {
            return Err(TransferError::BadReceipt(
                "its first line is not haven-receipt/1",
            ));
        }
        let mut get = |name: &'static str| -> Result<String, TransferError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or(TransferError::BadReceipt(
                    "its lines are not transfer-sha256, received-at, school, received-by, records, evidence, signing-key",
                ))
        };
        let r = Receipt {
            transfer_sha256: get("transfer-sha256")?,
            received_at: get("received-at")?,
            school: get("school")?,
            received_by: get("received-by")?,
            records: get("records")?
                .parse()
                .map_err(|_| TransferError::BadReceipt("records is not a number"))?,
            evidence: get("evidence")?
                .parse()
                .map_err(|_| TransferError::BadReceipt("evidence is not a number"))?,
        };
        let key = get("signing-key")?;
        if !sound_signing_key(signer) || key != hex(signer) || r.body(signer) != body {
            return Err(TransferError::BadReceiptSignature);
        }
        verify(signer, body.as_bytes(), &sig).map_err(|_| TransferError::BadReceiptSignature)?;
        Ok(r)
    }
}

impl Vault {
    /// The school's transfer identity (its keys are made on first use).
    pub fn identity(&self, school: i64, name: &str) -> Result<Identity, VaultError> {
        let signing = self
            .public_signing_key(school)?
            .try_into()
            .map_err(|_| VaultError::Crypto("reading the signing key"))?;
        Ok(Identity {
            signing,
            receiving: PublicKey::from(&self.receiving_key(school)?).to_bytes(),
            school: one_line(name),
        })
    }

    /// Seals `payload` so that only `to`'s school opens it, signed by `school`.
    pub fn seal_transfer(
        &self,
        school: i64,
        to: &Identity,
        payload: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut eph = [0u8; KEY];
        self.rng
            .fill(&mut eph)
            .map_err(|_| VaultError::Crypto("making a transfer key"))?;
        let eph = StaticSecret::from(eph);
        let recipient = PublicKey::from(to.receiving);
        let shared = eph.diffie_hellman(&recipient);
        if !shared.was_contributory() {
            return Err(VaultError::Crypto("agreeing a key with that school key"));
        }
        let mut out = Vec::with_capacity(HEADER_END + payload.len() + 16 + SIG);
        out.extend_from_slice(TRANSFER_MAGIC);
        out.extend_from_slice(&self.public_signing_key(school)?);
        out.extend_from_slice(&to.receiving);
        out.extend_from_slice(PublicKey::from(&eph).as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| VaultError::Crypto("making a nonce"))?;
        out.extend_from_slice(&nonce);
        let key = aead_key(shared.as_bytes(), out.get(..KEYS_END).unwrap_or_default())?;
        let mut body = payload.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(out.as_slice()),
            &mut body,
        )
        .map_err(|_| VaultError::Crypto("sealing the transfer"))?;
        out.extend_from_slice(&body);
        let sig = self.sign(school, &out)?;
        out.extend_from_slice(&sig);
        Ok(out)
    }

    /// Opens a transfer sealed to `school`: checks its signature (and, given `from`, that the
    /// sender is that school), then decrypts it. Nothing is returned from a refused file.
    pub fn open_transfer(
        &self,
        school: i64,
        sealed: &[u8],
        from: Option<&[u8; KEY]>,
    ) -> Result<Result<Opened, TransferError>, VaultError> {
        if sealed.len() < HEADER_END + 16 + SIG || sealed.get(..4) != Some(TRANSFER_MAGIC) {
            return Ok(Err(TransferError::NotTransfer));
        }
        let (signed, sig) = sealed.split_at(sealed.len() - SIG);
        let sender: [u8; KEY] = signed
            .get(4..4 + KEY)
            .and_then(|s| s.try_into().ok())
            .ok_or(VaultError::Crypto("reading the sender"))?;
        if !sound_signing_key(&sender) || verify(&sender, signed, sig).is_err() {
            return Ok(Err(TransferError::BadSignature));
        }
        if let Some(expected) = from {
            if *expected != sender {
                return Ok(Err(TransferError::UnexpectedSender {
                    expected: key_fingerprint(expected),
                    found: key_fingerprint(&sender),
                }));
            }
        }
        let secret = self.receiving_key(school)?;
        let ours = PublicKey::from(&secret);
        if signed.get(4 + KEY..4 + 2 * KEY) != Some(ours.as_bytes().as_slice()) {
            return Ok(Err(TransferError::NotForUs));
        }
        let eph: [u8; KEY] = signed
            .get(4 + 2 * KEY..KEYS_END)
            .and_then(|s| s.try_into().ok())
            .ok_or(VaultError::Crypto("reading the ephemeral key"))?;
        let shared = secret.diffie_hellman(&PublicKey::from(eph));
        if !shared.was_contributory() {
            return Ok(Err(TransferError::Refused));
        }
        let header = signed.get(..HEADER_END).unwrap_or_default();
        let nonce: [u8; NONCE_LEN] = header
            .get(KEYS_END..)
            .and_then(|n| n.try_into().ok())
            .ok_or(VaultError::Crypto("reading the nonce"))?;
        let key = aead_key(
            shared.as_bytes(),
            header.get(..KEYS_END).unwrap_or_default(),
        )?;
        let mut body = signed.get(HEADER_END..).unwrap_or_default().to_vec();
        let Ok(plain) = key.open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        ) else {
            return Ok(Err(TransferError::Refused));
        };
        let len = plain.len();
        body.truncate(len);
        Ok(Ok(Opened {
            sender,
            payload: body,
        }))
    }

    /// A receipt signed with `school`'s key, as text to send back to the sending school.
    pub fn sign_receipt(&self, school: i64, r: &Receipt) -> Result<String, VaultError> {
        let key = self.public_signing_key(school)?;
        let body = r.body(&key);
        let sig = self.sign(school, body.as_bytes())?;
        Ok(format!("{body}signature: {}\n", hex(&sig)))
    }

    fn receiving_key(&self, school: i64) -> Result<StaticSecret, VaultError> {
        let path = self.dir.join(format!("school-{school}.transfer.key"));
        let _state = self.lock();
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let mut k = [0u8; KEY];
                self.rng
                    .fill(&mut k)
                    .map_err(|_| VaultError::Crypto("making a receiving key"))?;
                create_once(
                    &path,
                    format!("{}\n", hex(&k)).as_bytes(),
                    self.owner,
                    &self.dir,
                )?;
            }
            Err(e) => return Err(io(&path)(e)),
            Ok(_) => {}
        }
        let (bytes, _) = read_private(&path)?;
        let key = std::str::from_utf8(&bytes)
            .ok()
            .map(str::trim)
            .and_then(key32)
            .ok_or_else(|| VaultError::Malformed {
                path: path.clone(),
                line: 1,
                problem: "not 64 hex digits (an X25519 receiving key)",
            })?;
        Ok(StaticSecret::from(key))
    }
}

fn aead_key(shared: &[u8], info: &[u8]) -> Result<LessSafeKey, VaultError> {
    let info = [info];
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(shared);
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| VaultError::Crypto("deriving the transfer key"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!(
                "haven-vault-transfer-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch");
            Scratch(dir)
        }
        fn vault(&self, which: &str) -> Vault {
            Vault::open(&self.0.join(which)).expect("vault")
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_transfer_opens_only_at_the_school_it_was_sealed_for_and_names_its_sender() {
        let s = Scratch::new("seal");
        let (old, new, other) = (s.vault("old"), s.vault("new"), s.vault("other"));
        let to = Identity::parse(&new.identity(1, "Oak Hill").expect("id").to_line())
            .expect("the line reads back");
        assert_eq!(to.school, "Oak Hill");
        let payload = b"{\"child\":\"Ada Invented\",\"records\":[]}".repeat(50);
        let sealed = old.seal_transfer(1, &to, &payload).expect("seal");
        assert!(
            !sealed.windows(11).any(|w| w == b"Ada Invent"),
            "the child's name is not readable in the sealed file"
        );
        let opened = new
            .open_transfer(1, &sealed, None)
            .expect("vault")
            .expect("opens");
        assert_eq!(opened.payload, payload);
        let from = old.identity(1, "Elm Park").expect("id");
        assert_eq!(opened.sender, from.signing);
        // Given the sender it expected, the receiver opens it; given another, it refuses.
        assert!(new
            .open_transfer(1, &sealed, Some(&from.signing))
            .expect("vault")
            .is_ok());
        let stranger = other.identity(1, "Stranger").expect("id");
        assert!(matches!(
            new.open_transfer(1, &sealed, Some(&stranger.signing))
                .expect("vault"),
            Err(TransferError::UnexpectedSender { .. })
        ));
        // Another school (or the sender itself) cannot open it.
        assert_eq!(
            other.open_transfer(1, &sealed, None).expect("vault").err(),
            Some(TransferError::NotForUs)
        );
        assert_eq!(
            old.open_transfer(1, &sealed, None).expect("vault").err(),
            Some(TransferError::NotForUs)
        );
    }

    #[test]
    fn a_changed_or_cut_transfer_is_refused_before_it_is_opened() {
        let s = Scratch::new("tamper");
        let (old, new) = (s.vault("old"), s.vault("new"));
        let to = new.identity(1, "Oak Hill").expect("id");
        let sealed = old
            .seal_transfer(1, &to, &b"the file, ".repeat(20))
            .expect("seal");
        for i in [0, 5, 40, 70, 100, HEADER_END + 2, sealed.len() - 1] {
            let mut bad = sealed.clone();
            if let Some(b) = bad.get_mut(i) {
                *b ^= 1;
            }
            let got = new.open_transfer(1, &bad, None).expect("vault");
            assert!(got.is_err(), "byte {i} changed and it still opened");
        }
        assert_eq!(
            new.open_transfer(1, &sealed[..sealed.len() - 10], None)
                .expect("vault")
                .err(),
            Some(TransferError::BadSignature)
        );
        assert_eq!(
            new.open_transfer(1, b"HVT1 short", None)
                .expect("vault")
                .err(),
            Some(TransferError::NotTransfer)
        );
        // A re-signed file with a swapped signing key: the signature names the impostor, and
        // the receiver who pinned the real sender refuses it.
        let impostor = s.vault("impostor");
        let mut forged = sealed[..sealed.len() - SIG].to_vec();
        forged[4..4 + KEY].copy_from_slice(&impostor.public_signing_key(1).expect("key"));
        let sig = impostor.sign(1, &forged).expect("sign");
        forged.extend_from_slice(&sig);
        let real = old.identity(1, "Elm Park").expect("id").signing;
        assert!(matches!(
            new.open_transfer(1, &forged, Some(&real)).expect("vault"),
            Err(TransferError::UnexpectedSender { .. })
        ));
    }

    #[test]
    fn a_receipt_verifies_against_the_receiving_schools_key_only() {
        let s = Scratch::new("receipt");
        let (new, other) = (s.vault("new"), s.vault("other"));
        let r = Receipt {
            transfer_sha256: "ab".repeat(32),
            received_at: "2026-12-02T10:00:00Z".into(),
            school: "Oak Hill\nforged: line".into(),
            received_by: "Sam Example".into(),
            records: 3,
            evidence: 1,
        };
        let text = new.sign_receipt(1, &r).expect("sign");
        let key = new.identity(1, "").expect("id").signing;
        let back = Receipt::verify(&text, &key).expect("verifies");
        assert_eq!(back.records, 3);
        assert_eq!(back.school, "Oak Hill forged: line");
        let changed = text.replace("records: 3", "records: 4");
        assert_eq!(
            Receipt::verify(&changed, &key).err(),
            Some(TransferError::BadReceiptSignature)
        );
        let theirs = other.identity(1, "").expect("id").signing;
        assert_eq!(
            Receipt::verify(&text, &theirs).err(),
            Some(TransferError::BadReceiptSignature)
        );
        assert!(matches!(
            Receipt::verify("hello", &key),
            Err(TransferError::BadReceipt(_))
        ));
    }

    #[test]
    fn a_key_line_with_a_small_order_key_is_refused_and_so_is_a_receipt_signed_by_one() {
        // The Ed25519 identity point as a signing key verifies R = identity, S = 0 for any
        // message: a receipt "signed" by nobody.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        let good = "9".repeat(64);
        let line = format!("haven-school-key/1 {} {good} Oak Hill", hex(&ident));
        assert_eq!(Identity::parse(&line), Err(TransferError::BadIdentity));
        let body = format!(
            "haven-receipt/1\ntransfer-sha256: {}\nreceived-at: 2026-12-03T08:41:12Z\nschool: Oak Hill\nreceived-by: Nobody\nrecords: 3\nevidence: 0\nsigning-key: {}\n",
            "ab".repeat(32),
            hex(&ident)
        );
        let forged = format!("{body}signature: {}{}\n", hex(&ident), "00".repeat(32));
        assert_eq!(
            Receipt::verify(&forged, &ident),
            Err(TransferError::BadReceiptSignature)
        );
        // An X25519 receiving key of small order (zero) is refused too.
        let s = Scratch::new("small");
        let real = s.vault("v").identity(1, "").expect("id");
        let zero = format!(
            "haven-school-key/1 {} {} X",
            hex(&real.signing),
            "0".repeat(64)
        );
        assert_eq!(Identity::parse(&zero), Err(TransferError::BadIdentity));
        assert!(Identity::parse(&real.to_line()).is_ok());
    }

    #[test]
    fn an_identity_line_that_is_not_one_is_refused() {
        for bad in [
            "",
            "haven-school-key/1",
            "haven-school-key/1 zz 00",
            &format!("haven-school-key/2 {} {} X", "0".repeat(64), "0".repeat(64)),
            &format!(
                "haven-school-key/1 {} {}\nX",
                "0".repeat(64),
                "0".repeat(63)
            ),
        ] {
            assert_eq!(
                Identity::parse(bad),
                Err(TransferError::BadIdentity),
                "{bad:?}"
            );
        }
        let ok = format!(
            "  haven-school-key/1 {} {} Oak  Hill \n",
            "1".repeat(64),
            "2".repeat(64)
        );
        let id = Identity::parse(&ok).expect("reads");
        assert_eq!(id.school, "Oak  Hill");
        assert_eq!(id.fingerprint().len(), 23);
    }
}
