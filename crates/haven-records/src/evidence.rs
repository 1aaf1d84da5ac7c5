//! What evidence a record accepts: a file's type told by its first bytes (never by the name or
//! the type the browser claims), and its size. Anything else is refused with the reason.

/// Largest attachment kept: a phone photo or a scanned page fits; a video does not.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;

/// Longest file name kept (characters).
pub const MAX_NAME: usize = 120;

/// Why a file is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// Nothing in it.
    #[error("the file {0:?} is empty")]
    Empty(String),
    /// Too big.
    #[error("the file {name:?} is {size} bytes; at most {max} are kept (10 MiB)")]
    TooBig {
        /// Its name.
        name: String,
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A type Haven does not keep.
    #[error("the file {0:?} is not a photo (PNG, JPEG, GIF, WebP), a PDF or plain text, so it is not kept")]
    Type(String),
}

/// A file name fit to keep and show: the last part of a path, control characters dropped,
/// clipped; `attachment` when nothing is left.
pub fn clean_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "attachment".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// The file's media type, from its first bytes; an error unless it is a kind Haven keeps and
/// of a size it keeps.
pub fn check(name: &str, bytes: &[u8]) -> Result<&'static str, EvidenceError> {
    if bytes.is_empty() {
        return Err(EvidenceError::Empty(clean_name(name)));
    }
    if bytes.len() > MAX_BYTES {
        return Err(EvidenceError::TooBig {
            name: clean_name(name),
            size: bytes.len(),
            max: MAX_BYTES,
        });
    }
    let t = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        "image/gif"
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else if std::str::from_utf8(bytes).is_ok_and(|s| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    }) {
        "text/plain"
    } else {
        return Err(EvidenceError::Type(clean_name(name)));
    };
    Ok(t)
}

/// Whether a media type is a picture (a possible nude image is only ever a picture).
pub fn is_image(media_type: &str) -> bool {
    media_type.starts_with("image/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_type_comes_from_its_bytes_and_anything_else_is_refused() {
        assert_eq!(check("a.png", b"\x89PNG\r\n\x1a\n...."), Ok("image/png"));
        assert_eq!(
            check("note.txt", "Ava's note: “see you”\n".as_bytes()),
            Ok("text/plain")
        );
        assert_eq!(check("x.pdf", b"%PDF-1.7 ..."), Ok("application/pdf"));
        assert_eq!(
            check("riff.webp", b"RIFF\0\0\0\0WEBPVP8 "),
            Ok("image/webp")
        );
        // A program named as a photo is still a program.
        assert_eq!(
            check("photo.jpg", b"MZ\x90\x00\x03\x00\x00\x00"),
            Err(EvidenceError::Type("photo.jpg".into()))
        );
        assert!(matches!(check("e", b""), Err(EvidenceError::Empty(_))));
        let big = vec![b'a'; MAX_BYTES + 1];
        assert!(matches!(
            check("big.txt", &big),
            Err(EvidenceError::TooBig { .. })
        ));
        assert!(is_image("image/png") && !is_image("application/pdf"));
    }

    #[test]
    fn a_file_name_is_its_last_part_without_control_characters() {
        assert_eq!(clean_name("C:\\Users\\me\\shot 1.png"), "shot 1.png");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{7}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".."), "attachment");
        assert_eq!(clean_name(""), "attachment");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_NAME);
    }
}
