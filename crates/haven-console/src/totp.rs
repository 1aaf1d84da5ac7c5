//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, six digits), the
//! base32 secrets authenticator apps read (RFC 4648), and the enrolment QR code.

/// Seconds per step.
pub const STEP: u64 = 30;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Bytes as base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 to bytes (case, spaces and padding ignored); `None` for anything else.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| !matches!(c, b' ' | b'=' | b'-')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The six-digit code for `secret` at time step `step`.
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    bin % 1_000_000
}

/// The step a code given at `unix_secs` matches (this step, or one either side for clocks a
/// little apart), if any.
pub fn matching_step(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let given: u32 = code.parse().ok()?;
    let now = unix_secs / STEP;
    [now, now.saturating_sub(1), now + 1]
        .into_iter()
        .find(|&step| code_at(secret, step) == given)
}

/// The `otpauth://` address an authenticator app reads from the QR code.
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = crate::web::url_encode;
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

/// The QR code of `text` as an SVG image.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B (SHA-1, the last six of its eight digits).
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59u64, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(secret, t / STEP), code, "t = {t}");
        }
        assert_eq!(matching_step(secret, "287082", 59), Some(1));
        assert_eq!(
            matching_step(secret, "287082", 59 + 30),
            Some(1),
            "a step late"
        );
        assert_eq!(matching_step(secret, "287082", 59 + 90), None, "too late");
        assert_eq!(matching_step(secret, "28708x", 59), None);
    }

    #[test]
    fn base32_round_trips() {
        // RFC 4648 test vectors (without padding).
        for (raw, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(raw.as_bytes()), enc);
            assert_eq!(base32_decode(enc).as_deref(), Some(raw.as_bytes()));
        }
        assert_eq!(base32_decode("mzxw 6ytb"), Some(b"fooba".to_vec()));
        assert_eq!(base32_decode("MZ1"), None);
    }

    #[test]
    fn enrolment_address_and_picture() {
        let uri = otpauth_uri("Haven (Demo Primary)", "priya.shah", "MZXW6YTB");
        assert_eq!(
            uri,
            "otpauth://totp/Haven%20%28Demo%20Primary%29:priya.shah?secret=MZXW6YTB&issuer=Haven%20%28Demo%20Primary%29&algorithm=SHA1&digits=6&period=30"
        );
        let svg = qr_svg(&uri).expect("a QR code");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
}
