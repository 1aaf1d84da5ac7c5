//! Text files written by other software (list exports, MIS exports): UTF-8 with or without a
//! byte-order mark, or a legacy 8-bit encoding (Windows-1252, of which Latin-1 is a part) —
//! line by line, because a file put together from two exports can hold both.

/// The text of a file: a UTF-8 byte-order mark dropped; each line that is UTF-8 read as UTF-8,
/// and each line that is not read as Windows-1252 (where every byte is a character, so nothing
/// is lost or refused). Reading the whole file one way would turn the other lines into mojibake
/// ("RenÃ©e") or refuse them.
pub fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Ok(t) = std::str::from_utf8(bytes) {
        return t.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        match std::str::from_utf8(line) {
            Ok(t) => out.push_str(t),
            Err(_) => out.extend(line.iter().map(|&b| windows_1252(b))),
        }
    }
    out
}

/// A byte of Windows-1252 as a character (its five unassigned bytes as Latin-1's controls).
fn windows_1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The first stretch of `text` that looks garbled — UTF-8 that was once read as an 8-bit
/// encoding and written out again ("RenÃ©e", "O’Brien"), or a replacement character —
/// so that an import can refuse the row rather than keep a name misspelt for ever.
pub fn garbled(text: &str) -> Option<&str> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\u{FFFD}' {
            return Some(&text[i..i + c.len_utf8()]);
        }
        // A UTF-8 lead byte read as Windows-1252 (Â, Ã for Latin letters, â for punctuation)
        // followed by a continuation byte read the same way.
        if matches!(c, 'Â' | 'Ã' | 'â' | 'Ä' | 'Å') {
            if let Some(&(j, next)) = chars.peek() {
                let continuation = matches!(next, '\u{80}'..='\u{BF}')
                    || "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ".contains(next);
                if continuation {
                    return Some(&text[i..j + next.len_utf8()]);
                }
            }
        }
    }
    None
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
    use super::{clip, decode, garbled};

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

    #[test]
    fn mixed_files_are_read_line_by_line() {
        // One line from a UTF-8 export, one from a Windows export (0x92 is a curly apostrophe).
        assert_eq!(
            decode(b"Ren\xC3\xA9e,Dupont\r\nSi\xE2n,O\x92Brien\r\n"),
            "Renée,Dupont\r\nSiân,O’Brien\r\n"
        );
    }

    #[test]
    fn mojibake_is_recognised_and_names_are_not() {
        assert_eq!(garbled("RenÃ©e"), Some("Ã©"));
        assert_eq!(garbled("Oâ€™Brien"), Some("â€"));
        assert_eq!(garbled("Zo\u{FFFD}"), Some("\u{FFFD}"));
        for fine in [
            "Renée",
            "Siân",
            "Ã",
            "Ågot",
            "Ärzte",
            "O’Brien",
            "Łukasz",
            "Nguyễn",
        ] {
            assert_eq!(garbled(fine), None, "{fine}");
        }
    }
}
