//! The file type of a response, from its `Content-Disposition` file name or its `Content-Type`,
//! as the extension a policy's `block_file_types` names (`exe`, `zip`…). The URL's own extension
//! is checked by the policy engine before the request leaves; this catches downloads whose URL
//! does not say what they are.

use hyper::header::{HeaderMap, CONTENT_DISPOSITION, CONTENT_TYPE};

/// MIME types of executables, installers and archives, with the extension they stand for.
const MIME: &[(&str, &str)] = &[
    ("application/x-msdownload", "exe"),
    ("application/x-dosexec", "exe"),
    ("application/vnd.microsoft.portable-executable", "exe"),
    ("application/x-msdos-program", "exe"),
    ("application/x-msi", "msi"),
    ("application/x-ms-installer", "msi"),
    ("application/msix", "msix"),
    ("application/vnd.android.package-archive", "apk"),
    ("application/x-apple-diskimage", "dmg"),
    ("application/java-archive", "jar"),
    ("application/x-java-archive", "jar"),
    ("application/x-debian-package", "deb"),
    ("application/vnd.debian.binary-package", "deb"),
    ("application/x-rpm", "rpm"),
    ("application/x-redhat-package-manager", "rpm"),
    ("application/x-iso9660-image", "iso"),
    ("application/zip", "zip"),
    ("application/x-zip-compressed", "zip"),
    ("application/vnd.rar", "rar"),
    ("application/x-rar-compressed", "rar"),
    ("application/x-7z-compressed", "7z"),
    ("application/x-bat", "bat"),
    ("application/x-sh", "sh"),
];

/// Whether a response is a download, to be scanned for groups with `scan_downloads`: an
/// attachment, or content a browser does not just show (not text, images, sound, video, fonts,
/// JSON, JavaScript or XML); a response that does not say what it is counts as one.
pub fn is_download(headers: &HeaderMap) -> bool {
    let attachment = headers
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("attachment")
        });
    if attachment {
        return true;
    }
    let Some(mime) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    const SHOWN: &[&str] = &["text/", "image/", "audio/", "video/", "font/"];
    const SHOWN_APPLICATION: &[&str] = &[
        "application/json",
        "application/javascript",
        "application/ecmascript",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/manifest+json",
        "application/ld+json",
        "application/wasm",
    ];
    !(SHOWN.iter().any(|p| essence.starts_with(p)) || SHOWN_APPLICATION.contains(&essence.as_str()))
}

/// The file types a response carries: the extension of its attachment's file name, and the
/// one its MIME type stands for.
pub fn of_response(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(name) = headers
        .get(CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(filename)
    {
        if let Some((_, ext)) = name.rsplit_once('.') {
            out.push(ext.to_ascii_lowercase());
        }
    }
    if let Some(mime) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if let Some((_, ext)) = MIME.iter().find(|(m, _)| *m == essence) {
            out.push((*ext).to_owned());
        }
    }
    out
}

/// The file name in a `Content-Disposition` value (`filename*=` or `filename=`).
fn filename(v: &str) -> Option<String> {
    let mut plain = None;
    for part in v.split(';') {
        let Some((k, val)) = part.trim().split_once('=') else {
            continue;
        };
        let val = val.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            // RFC 5987: charset'lang'percent-encoded; the extension is plain ASCII anyway.
            "filename*" => return Some(val.rsplit('\'').next().unwrap_or(val).to_owned()),
            "filename" => plain = Some(val.to_owned()),
            _ => {}
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn types(ct: Option<&str>, cd: Option<&str>) -> Vec<String> {
        let mut h = HeaderMap::new();
        if let Some(v) = ct {
            h.insert(CONTENT_TYPE, HeaderValue::from_str(v).expect("v"));
        }
        if let Some(v) = cd {
            h.insert(CONTENT_DISPOSITION, HeaderValue::from_str(v).expect("v"));
        }
        of_response(&h)
    }

    #[test]
    fn downloads_are_told_from_pages() {
        let download = |ct: Option<&str>, cd: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = ct {
                h.insert(CONTENT_TYPE, HeaderValue::from_str(v).expect("v"));
            }
            if let Some(v) = cd {
                h.insert(CONTENT_DISPOSITION, HeaderValue::from_str(v).expect("v"));
            }
            is_download(&h)
        };
        assert!(download(Some("application/octet-stream"), None));
        assert!(download(Some("application/pdf"), None));
        assert!(download(None, None));
        assert!(download(
            Some("text/plain"),
            Some("attachment; filename=a.txt")
        ));
        assert!(!download(Some("text/html; charset=utf-8"), None));
        assert!(!download(Some("image/png"), None));
        assert!(!download(Some("application/json"), Some("inline")));
    }

    #[test]
    fn by_name_and_by_type() {
        assert_eq!(types(Some("application/x-msdownload"), None), ["exe"]);
        assert_eq!(
            types(Some("Application/ZIP; charset=binary"), None),
            ["zip"]
        );
        assert_eq!(
            types(
                Some("application/octet-stream"),
                Some("attachment; filename=\"Setup.EXE\"")
            ),
            ["exe"]
        );
        assert_eq!(
            types(
                None,
                Some("attachment; filename*=UTF-8''game%20installer.msi")
            ),
            ["msi"]
        );
        assert!(types(Some("text/html; charset=utf-8"), None).is_empty());
        assert!(types(Some("application/octet-stream"), Some("inline")).is_empty());
    }
}
