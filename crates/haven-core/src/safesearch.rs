//! Search engines whose safe search Haven enforces, recognised by host name.

use crate::policy::{SafeSearch, SafeSearchMode};

/// A search engine or video site with a safe-search mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchEngine {
    /// Google search, any country domain.
    Google,
    /// Microsoft Bing.
    Bing,
    /// DuckDuckGo.
    DuckDuckGo,
    /// YouTube (restricted mode).
    YouTube,
}

impl SearchEngine {
    /// Stable id used in policy files and events.
    pub fn id(self) -> &'static str {
        match self {
            SearchEngine::Google => "google",
            SearchEngine::Bing => "bing",
            SearchEngine::DuckDuckGo => "duckduckgo",
            SearchEngine::YouTube => "youtube",
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            SearchEngine::Google => "Google",
            SearchEngine::Bing => "Bing",
            SearchEngine::DuckDuckGo => "DuckDuckGo",
            SearchEngine::YouTube => "YouTube",
        }
    }

    /// The group's enforcement for this engine.
    pub fn mode_in(self, s: &SafeSearch) -> SafeSearchMode {
        match self {
            SearchEngine::Google => s.google,
            SearchEngine::Bing => s.bing,
            SearchEngine::DuckDuckGo => s.duckduckgo,
            SearchEngine::YouTube => s.youtube,
        }
    }

    /// The name the engine's own safe-search service answers on (used by DNS enforcement).
    pub fn safe_host(self, mode: SafeSearchMode) -> Option<&'static str> {
        match (self, mode) {
            (_, SafeSearchMode::Off) => None,
            (SearchEngine::Google, _) => Some("forcesafesearch.google.com"),
            (SearchEngine::Bing, _) => Some("strict.bing.com"),
            (SearchEngine::DuckDuckGo, _) => Some("safe.duckduckgo.com"),
            (SearchEngine::YouTube, SafeSearchMode::Moderate) => {
                Some("restrictmoderate.youtube.com")
            }
            (SearchEngine::YouTube, SafeSearchMode::Strict) => Some("restrict.youtube.com"),
        }
    }
}

const YOUTUBE_HOSTS: &[&[u8]] = &[
    b"youtube.com",
    b"m.youtube.com",
    b"youtubei.googleapis.com",
    b"youtube.googleapis.com",
    b"youtube-nocookie.com",
];

/// DuckDuckGo's search hosts, canonical (`www.` dropped): the names DuckDuckGo's help page on
/// enforcing safe search for a network says to point at `safe.duckduckgo.com`
/// (`duckduckgo.com`, `www.duckduckgo.com`, `start.duckduckgo.com`), and the no-JavaScript
/// search page (`html.duckduckgo.com`).
const DUCKDUCKGO_HOSTS: &[&[u8]] = &[
    b"duckduckgo.com",
    b"start.duckduckgo.com",
    b"html.duckduckgo.com",
];

/// The engine a canonical host belongs to, if any (`google.co.uk`, `bing.com`, `m.youtube.com`…).
pub fn engine_for(host: &[u8]) -> Option<SearchEngine> {
    if YOUTUBE_HOSTS.contains(&host) {
        return Some(SearchEngine::YouTube);
    }
    if host == b"bing.com" {
        return Some(SearchEngine::Bing);
    }
    if DUCKDUCKGO_HOSTS.contains(&host) {
        return Some(SearchEngine::DuckDuckGo);
    }
    // google.<tld>, google.co.<cc>, google.com.<cc>
    let rest = host.strip_prefix(b"google.")?;
    let mut labels = rest.split(|&c| c == b'.');
    let ok = match (labels.next(), labels.next(), labels.next()) {
        (Some(tld), None, None) => tld.len() >= 2 && tld.iter().all(u8::is_ascii_lowercase),
        (Some(sld), Some(cc), None) => (sld == b"co" || sld == b"com") && cc.len() == 2,
        _ => false,
    };
    ok.then_some(SearchEngine::Google)
}

/// The search engine whose image results `t` asks for, if it does: Google's Images tab
/// (`tbm=isch`, `udm=2`), `images.google.*` and `/imghp`; Bing's `/images/…`; DuckDuckGo's
/// `ia=images` and `iax=images`.
pub fn image_search(t: &crate::Target) -> Option<SearchEngine> {
    let host = t.host_bytes();
    let path = t.path();
    let (route, query) = match path.iter().position(|&b| b == b'?') {
        Some(q) => (&path[..q], &path[q + 1..]),
        None => (path, &b""[..]),
    };
    let param = |name: &[u8], value: &[u8]| {
        query.split(|&b| b == b'&').any(|kv| {
            kv.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(b"="))
                .is_some_and(|v| v == value)
        })
    };
    match engine_for(host) {
        Some(SearchEngine::Google) => {
            let tab = param(b"tbm", b"isch") || param(b"udm", b"2");
            (tab || route.starts_with(b"/imghp")).then_some(SearchEngine::Google)
        }
        Some(SearchEngine::Bing) => {
            (route == b"/images" || route.starts_with(b"/images/")).then_some(SearchEngine::Bing)
        }
        Some(SearchEngine::DuckDuckGo) => (param(b"ia", b"images") || param(b"iax", b"images"))
            .then_some(SearchEngine::DuckDuckGo),
        Some(SearchEngine::YouTube) => None,
        None => host
            .strip_prefix(b"images.")
            .is_some_and(|rest| engine_for(rest) == Some(SearchEngine::Google))
            .then_some(SearchEngine::Google),
    }
}

/// Whether a canonical host is one of Google's own (`accounts.google.com`, `mail.google.co.uk`,
/// `google.de`): where the Workspace sign-in restriction header applies.
pub fn is_google(host: &[u8]) -> bool {
    let mut rest = host;
    loop {
        if engine_for(rest) == Some(SearchEngine::Google) {
            return true;
        }
        match rest.iter().position(|&c| c == b'.') {
            Some(dot) => rest = &rest[dot + 1..],
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_engines() {
        for (host, expected) in [
            ("google.com", Some(SearchEngine::Google)),
            ("google.co.uk", Some(SearchEngine::Google)),
            ("google.com.au", Some(SearchEngine::Google)),
            ("google.de", Some(SearchEngine::Google)),
            ("mail.google.com", None),
            ("google.evil.example", None),
            ("bing.com", Some(SearchEngine::Bing)),
            ("duckduckgo.com", Some(SearchEngine::DuckDuckGo)),
            ("start.duckduckgo.com", Some(SearchEngine::DuckDuckGo)),
            ("html.duckduckgo.com", Some(SearchEngine::DuckDuckGo)),
            ("safe.duckduckgo.com", None),
            ("m.youtube.com", Some(SearchEngine::YouTube)),
            ("youtube.com", Some(SearchEngine::YouTube)),
            ("notyoutube.com", None),
        ] {
            assert_eq!(engine_for(host.as_bytes()), expected, "{host}");
        }
    }

    #[test]
    fn recognises_image_searches() {
        use SearchEngine::{Bing, DuckDuckGo, Google};
        for (url, expected) in [
            (
                "https://www.google.com/search?q=cats&tbm=isch",
                Some(Google),
            ),
            (
                "https://www.google.co.uk/search?q=cats&udm=2&hl=en",
                Some(Google),
            ),
            ("https://images.google.com/", Some(Google)),
            ("https://images.google.co.uk/search?q=cats", Some(Google)),
            ("https://www.google.com/imghp?hl=en", Some(Google)),
            ("https://www.bing.com/images/search?q=cats", Some(Bing)),
            ("https://www.bing.com/images", Some(Bing)),
            ("https://duckduckgo.com/?q=cats&ia=images", Some(DuckDuckGo)),
            (
                "https://duckduckgo.com/?q=cats&iax=images&ia=images",
                Some(DuckDuckGo),
            ),
            ("https://www.google.com/search?q=cats", None),
            ("https://www.google.com/search?q=tbm%3Disch", None),
            ("https://www.google.com/search?q=cats&udm=14", None),
            ("https://www.bing.com/search?q=images", None),
            ("https://www.bing.com/imagesearch-help", None),
            ("https://duckduckgo.com/?q=images&ia=web", None),
            ("https://images.example.com/?tbm=isch", None),
            (
                "https://www.youtube.com/results?search_query=cats&ia=images",
                None,
            ),
        ] {
            let t = crate::Target::parse(url).expect("url");
            assert_eq!(image_search(&t), expected, "{url}");
        }
    }

    #[test]
    fn recognises_googles_own_hosts() {
        for (host, expected) in [
            ("accounts.google.com", true),
            ("mail.google.co.uk", true),
            ("google.de", true),
            ("google.evil.example", false),
            ("notgoogle.com", false),
            ("googleusercontent.example", false),
            ("", false),
        ] {
            assert_eq!(is_google(host.as_bytes()), expected, "{host}");
        }
    }
}
