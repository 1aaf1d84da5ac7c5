//! Safe search enforced on a visible request: the engine's own safe-search parameter added to
//! the query (replacing any the user set), and YouTube's restriction header.

use haven_core::policy::SafeSearchMode;
use haven_core::safesearch::SearchEngine;

/// The parameter each engine reads, with its strictest value.
fn param(engine: SearchEngine) -> Option<(&'static str, &'static str)> {
    match engine {
        SearchEngine::Google => Some(("safe", "active")),
        SearchEngine::Bing => Some(("adlt", "strict")),
        SearchEngine::DuckDuckGo => Some(("kp", "1")),
        SearchEngine::YouTube => None,
    }
}

/// The path and query with the engine's safe-search parameter forced on.
pub fn rewrite_query(engine: SearchEngine, path_and_query: &str) -> String {
    let Some((name, value)) = param(engine) else {
        return path_and_query.to_owned();
    };
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut parts: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .collect();
    let forced = format!("{name}={value}");
    parts.push(&forced);
    format!("{path}?{}", parts.join("&"))
}

/// The `YouTube-Restrict` header value for a mode (YouTube only).
pub fn youtube_restrict(engine: SearchEngine, mode: SafeSearchMode) -> Option<&'static str> {
    match (engine, mode) {
        (SearchEngine::YouTube, SafeSearchMode::Strict) => Some("Strict"),
        (SearchEngine::YouTube, SafeSearchMode::Moderate) => Some("Moderate"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forces_the_engines_parameter() {
        assert_eq!(
            rewrite_query(SearchEngine::Google, "/search?q=cats&safe=off"),
            "/search?q=cats&safe=active"
        );
        assert_eq!(
            rewrite_query(SearchEngine::Bing, "/search?q=x"),
            "/search?q=x&adlt=strict"
        );
        assert_eq!(rewrite_query(SearchEngine::DuckDuckGo, "/"), "/?kp=1");
        assert_eq!(
            rewrite_query(SearchEngine::YouTube, "/results?search_query=a"),
            "/results?search_query=a"
        );
        assert_eq!(
            youtube_restrict(SearchEngine::YouTube, SafeSearchMode::Strict),
            Some("Strict")
        );
        assert_eq!(
            youtube_restrict(SearchEngine::Google, SafeSearchMode::Strict),
            None
        );
    }
}
