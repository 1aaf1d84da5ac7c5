//! Text files written by other software (list exports, MIS exports): UTF-8 with or without a
//! byte-order mark, or a legacy 8-bit encoding.

/// The text of a file: a UTF-8 byte-order mark dropped; bytes that are not UTF-8 read as
/// Latin-1, where every byte is a character (so nothing is lost or refused).
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(t) => t.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// At most `max` bytes of `text` (cut at a character boundary, `…` added when cut), for an
/// error message that quotes input: a bad line or field is named, never echoed whole.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}…", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::{clip, decode};

    #[test]
    fn clipping_keeps_whole_letters() {
        assert_eq!(clip("short", 100), "short");
        assert_eq!(clip(&"a".repeat(150), 100), format!("{}…", "a".repeat(100)));
        // "é" is two bytes: a cut inside it moves back before it.
        assert_eq!(clip("aé", 2), "a…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn utf8_bom_and_latin1() {
        assert_eq!(decode(b"\xEF\xBB\xBFZo\xC3\xAB"), "Zoë");
        assert_eq!(decode(b"Zo\xEB"), "Zoë");
        assert_eq!(decode(b""), "");
    }
}
