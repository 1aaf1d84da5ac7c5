//! Search terms in search and video-site URLs: what a pupil typed, for the record and for
//! monitoring. Pure: a URL's parts in, a term out.

use crate::safesearch::{engine_for, SearchEngine};

/// A search someone made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm {
    /// The site searched (`google`, `bing`, `duckduckgo`, `youtube`, `yahoo`, `ecosia`,
    /// `wikipedia`).
    pub engine: &'static str,
    /// The words, decoded, with runs of white space made one space.
    pub term: String,
}

/// Longest term kept, in characters.
const MAX_TERM: usize = 500;

/// The search in a request to `host` (lower case) for `path` with `query` (the part after `?`,
/// still percent-encoded), if it is one.
pub fn search_term(host: &str, path: &str, query: &str) -> Option<SearchTerm> {
    let host = host.strip_prefix("www.").unwrap_or(host);
    let (engine, param) = match engine_for(host.as_bytes()) {
        Some(SearchEngine::Google) if path == "/search" || path == "/complete/search" => {
            ("google", "q")
        }
        Some(SearchEngine::Bing) if path == "/search" => ("bing", "q"),
        Some(SearchEngine::DuckDuckGo) if matches!(path, "/" | "/html" | "/html/" | "") => {
            ("duckduckgo", "q")
        }
        Some(SearchEngine::YouTube) if path == "/results" => ("youtube", "search_query"),
        Some(_) => return None,
        None if is_yahoo_search(host) && path == "/search" => ("yahoo", "p"),
        None if host == "ecosia.org" && path == "/search" => ("ecosia", "q"),
        None if host.ends_with(".wikipedia.org")
            && (path == "/w/index.php" || path == "/wiki/Special:Search") =>
        {
            ("wikipedia", "search")
        }
        None => return None,
    };
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(param)?.strip_prefix('='))?;
    let decoded = form_decode(raw);
    let term: String = decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TERM)
        .collect();
    (!term.is_empty()).then_some(SearchTerm { engine, term })
}

fn is_yahoo_search(host: &str) -> bool {
    host == "search.yahoo.com" || host.ends_with(".search.yahoo.com")
}

/// Form decoding (`application/x-www-form-urlencoded`): `+` is a space, `%XX` a byte; bad
/// escapes are kept as they are; bytes that are not UTF-8 become U+FFFD.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Option<(&str, &str)>) {
        let rest = url
            .strip_prefix("http://")
            .or(url.strip_prefix("https://"))
            .expect("scheme");
        let (host, pq) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
        let pq = format!("/{}", pq.trim_start_matches('/'));
        let (path, query) = pq.split_once('?').unwrap_or((&pq, ""));
        let got = search_term(host, path, query);
        assert_eq!(
            got.as_ref().map(|t| (t.engine, t.term.as_str())),
            expected,
            "{url}"
        );
    }

    #[test]
    fn terms_from_each_engine() {
        check(
            "https://www.google.co.uk/search?q=how+to+draw+a+cat&hl=en",
            Some(("google", "how to draw a cat")),
        );
        check(
            "https://www.google.com/search?hl=en&q=caf%C3%A9%20near%20me",
            Some(("google", "café near me")),
        );
        check(
            "https://www.bing.com/search?q=volcano+facts",
            Some(("bing", "volcano facts")),
        );
        check(
            "https://duckduckgo.com/?q=rainforest&ia=web",
            Some(("duckduckgo", "rainforest")),
        );
        check(
            "https://html.duckduckgo.com/html?q=rivers",
            Some(("duckduckgo", "rivers")),
        );
        check(
            "https://www.youtube.com/results?search_query=minecraft+tips",
            Some(("youtube", "minecraft tips")),
        );
        check(
            "https://uk.search.yahoo.com/search?p=roman+army",
            Some(("yahoo", "roman army")),
        );
        check(
            "https://www.ecosia.org/search?method=index&q=tree+planting",
            Some(("ecosia", "tree planting")),
        );
        check(
            "https://en.wikipedia.org/w/index.php?search=Ancient+Egypt&title=Special%3ASearch",
            Some(("wikipedia", "Ancient Egypt")),
        );
        check(
            "https://cy.wikipedia.org/wiki/Special:Search?search=Cymru",
            Some(("wikipedia", "Cymru")),
        );
    }

    #[test]
    fn not_searches() {
        check("https://www.google.com/maps?q=london", None);
        check("https://www.google.com/search?hl=en", None);
        check("https://www.google.com/search?q=+++", None);
        check("https://www.bing.com/images?q=x", None);
        check("https://example.com/search?q=hello", None);
        check("https://www.youtube.com/watch?v=abc", None);
        // `aq=` is not `q=`.
        check("https://www.google.com/search?aq=1", None);
    }

    #[test]
    fn bad_escapes_and_long_terms() {
        check(
            "https://www.bing.com/search?q=100%+sure%2",
            Some(("bing", "100% sure%2")),
        );
        let long = "a+".repeat(2000);
        let t = search_term("bing.com", "/search", &format!("q={long}")).expect("term");
        assert_eq!(t.term.chars().count(), MAX_TERM);
    }
}
