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

/// A list file read whole in the one encoding it was written in (see [`decode_detected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// The encoding it was read in, by its WHATWG name (`UTF-8`, `Shift_JIS`, `GBK`,
    /// `windows-1251`…).
    pub encoding: &'static str,
}

/// Why a list file was not read: reading it in a guessed encoding could turn its entries into
/// something else (a Japanese phrase read as Latin-1 becomes a run of accented letters and
/// punctuation that matches ordinary English pages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecided {
    /// Not UTF-8, and no one legacy encoding reads it with confidence.
    #[error("not UTF-8 and its encoding could not be told")]
    Unknown,
    /// Some lines are UTF-8 with letters beyond ASCII and others are not UTF-8: a file put
    /// together from several encodings (e2guardian's Japanese list holds each phrase in UTF-8,
    /// EUC-JP and Shift_JIS), which no one reading decodes.
    #[error("not UTF-8 and its encoding could not be told (it mixes UTF-8 with another encoding)")]
    Mixed,
}

/// The text of a list file in the one encoding it was written in, or why it cannot be told:
/// a byte-order mark (UTF-8, UTF-16LE, UTF-16BE) decides; valid UTF-8 is UTF-8; otherwise the
/// encoding is guessed from the bytes (chardetng, the detector Firefox uses: the CJK
/// multi-byte encodings, Cyrillic, Greek, Central European, Windows-1252…) and accepted only
/// when the detector rates its guess above the other candidates, the bytes decode in it with
/// no malformed sequence, and the text holds no control characters. Unlike [`decode`], which
/// never refuses (a name in an MIS export is checked by a person), this is for files whose
/// every entry is acted on unseen, where a wrong reading is worse than none.
pub fn decode_detected(bytes: &[u8]) -> Result<Decoded, Undecided> {
    let bytes = match encoding_rs::Encoding::for_bom(bytes) {
        Some((encoding, bom)) if encoding != encoding_rs::UTF_8 => {
            let rest = bytes.get(bom..).unwrap_or_default();
            return strictly(encoding, rest).ok_or(Undecided::Unknown);
        }
        // A UTF-8 mark on a file that is not UTF-8 (put together from two exports) says
        // nothing: the rest is read as if it had none.
        Some((_, bom)) => bytes.get(bom..).unwrap_or_default(),
        None => bytes,
    };
    if let Ok(t) = std::str::from_utf8(bytes) {
        return Ok(Decoded {
            text: t.to_owned(),
            encoding: encoding_rs::UTF_8.name(),
        });
    }
    // Lines beyond ASCII that are UTF-8, among lines that are not: a legacy encoding makes
    // the odd line valid UTF-8 by chance (three of twenty GB2312 phrases of two or three
    // letters), a file put together from several encodings a third or more.
    let (mut beyond, mut utf8) = (0usize, 0usize);
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_ascii()) {
        beyond += 1;
        utf8 += usize::from(std::str::from_utf8(line).is_ok());
    }
    if utf8 * MIXED_SHARE >= beyond {
        return Err(Undecided::Mixed);
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let (encoding, confident) = detector.guess_assess(None, false);
    if !confident {
        return Err(Undecided::Unknown);
    }
    // A handful of letters beyond ASCII are too few to tell one encoding from another
    // (chardetng reads Portuguese "munição" from e2guardian's Latin-1 lists as Windows-1250's
    // "muniçăo", and five Russian letters as IBM866): a guess other than Windows-1252 (the
    // encoding of the Western European lists, where every byte is a character) needs more.
    // Where the two read the same ("póker" in Windows-1250 and Windows-1252), there is
    // nothing to tell.
    let decoded = strictly(encoding, bytes).ok_or(Undecided::Unknown)?;
    let beyond_ascii = bytes.iter().filter(|b| !b.is_ascii()).count();
    if encoding != encoding_rs::WINDOWS_1252 && beyond_ascii < EVIDENCE {
        return match strictly(encoding_rs::WINDOWS_1252, bytes) {
            Some(western) if western.text == decoded.text => Ok(western),
            _ => Err(Undecided::Unknown),
        };
    }
    Ok(decoded)
}

/// One line beyond ASCII in this many (or more) being UTF-8 in a file that is not makes it a
/// mixture of encodings.
const MIXED_SHARE: usize = 4;

/// Fewer bytes beyond ASCII than this are too few to trust a guess other than Windows-1252: a
/// Russian, Japanese or Chinese list of a dozen phrases has a hundred or more; e2guardian's
/// Portuguese lists, which the detector sometimes places in Central Europe, have one to fifteen.
const EVIDENCE: usize = 64;

/// `bytes` in `encoding`, or `None` for a malformed sequence or a control character (other
/// than tab, line feed, form feed and carriage return) that text in that encoding would not hold.
fn strictly(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Option<Decoded> {
    let text = encoding.decode_without_bom_handling_and_without_replacement(bytes)?;
    let control = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c');
    if text.chars().any(control) {
        return None;
    }
    Some(Decoded {
        text: text.into_owned(),
        encoding: encoding.name(),
    })
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
    use super::{clip, decode, decode_detected, garbled, Undecided};

    /// A weighted list invented for the tests, in the encoding its name says (made with
    /// Python's codecs; `testdata/encodings/`).
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("../testdata/encodings/", $name)).as_slice()
        };
    }

    #[test]
    fn a_list_is_read_in_the_encoding_it_was_written_in() {
        for (bytes, encoding, phrase) in [
            (fixture!("weighted_chinese_gb2312"), "GBK", "<网上赌场><40>"),
            (fixture!("weighted_chinese_big5"), "Big5", "<網上賭場><40>"),
            (
                fixture!("weighted_japanese_shift_jis"),
                "Shift_JIS",
                "<オンラインカジノ><40>",
            ),
            (
                fixture!("weighted_japanese_euc_jp"),
                "EUC-JP",
                "<オンラインカジノ><40>",
            ),
            (
                fixture!("weighted_japanese_utf16"),
                "UTF-16LE",
                "<オンラインカジノ><40>",
            ),
            (
                fixture!("weighted_russian_windows1251"),
                "windows-1251",
                "<онлайн казино><40>",
            ),
            (
                fixture!("weighted_portuguese_latin1"),
                "windows-1252",
                "<caça-níqueis><40>",
            ),
            (
                "<ca\u{e7}a-n\u{ed}queis><40>".as_bytes(),
                "UTF-8",
                "<caça-níqueis><40>",
            ),
        ] {
            let read = decode_detected(bytes).unwrap_or_else(|e| panic!("{encoding}: {e}"));
            assert_eq!(read.encoding, encoding);
            assert!(
                read.text.lines().any(|l| l == phrase),
                "{encoding}: {}",
                read.text
            );
        }
    }

    #[test]
    fn a_list_whose_encoding_cannot_be_told_is_not_read() {
        // e2guardian's Japanese list holds each phrase in UTF-8, EUC-JP and Shift_JIS.
        assert_eq!(
            decode_detected(fixture!("weighted_japanese_mixed")),
            Err(Undecided::Mixed)
        );
        // Bytes that are control characters in every encoding that could hold them.
        assert_eq!(
            decode_detected(b"<\x81\x8d\x8f\x90\x9d><40>\n"),
            Err(Undecided::Unknown)
        );
        // UTF-16 with a mark but an odd byte out.
        assert_eq!(decode_detected(b"\xFF\xFE<\x00a"), Err(Undecided::Unknown));
        // Five letters beyond ASCII are too few to tell (the detector guesses IBM866 here).
        assert_eq!(
            decode_detected(b"<\xc1\xcd\xcf\xd0\xdd><40>\n"),
            Err(Undecided::Unknown)
        );
        // Where every reading the detector could choose agrees, there is nothing to tell.
        assert_eq!(
            decode_detected(b"<p\xF3ker><40>\n").map(|d| d.text),
            Ok("<póker><40>\n".to_owned())
        );
        assert_eq!(
            Undecided::Unknown.to_string(),
            "not UTF-8 and its encoding could not be told"
        );
    }

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
