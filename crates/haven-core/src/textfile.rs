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

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn utf8_bom_and_latin1() {
        assert_eq!(decode(b"\xEF\xBB\xBFZo\xC3\xAB"), "Zoë");
        assert_eq!(decode(b"Zo\xEB"), "Zoë");
        assert_eq!(decode(b""), "");
    }
}
