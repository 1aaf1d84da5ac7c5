//! Line formats of the lists Haven imports: squidGuard/UT1 `domains`, `urls` and `expressions`
//! files, hosts files, plain domain lists and IWF-style URL lists.
//!
//! Each function turns one line into zero or more entries, or says why the line is bad. Reading
//! files and counting bad lines is the importer's job; validation of each entry's address happens
//! when it is added to the [`crate::snapshot::SnapshotBuilder`].

use crate::snapshot::EntryKind;

/// The format of one list file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineFormat {
    /// One domain a line (squidGuard `domains`, plain lists); hosts-style lines are accepted too.
    Domains,
    /// `address name [name…]` lines, as in `/etc/hosts` blocklists.
    Hosts,
    /// One URL or `host/path` prefix a line (squidGuard `urls`, IWF-style lists).
    Urls,
    /// One regular expression a line (squidGuard `expressions`).
    Expressions,
}

impl LineFormat {
    /// The kind of entry lines of this format produce.
    pub fn entry_kind(self) -> EntryKind {
        match self {
            LineFormat::Domains | LineFormat::Hosts => EntryKind::Domain,
            LineFormat::Urls => EntryKind::Url,
            LineFormat::Expressions => EntryKind::Regex,
        }
    }
}

/// Why a line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// More than one token where one was expected.
    #[error("expected one entry, found {0} words")]
    ExtraWords(usize),
    /// A hosts line whose first word is not an address.
    #[error("hosts line does not start with an IP address")]
    NotHostsLine,
    /// A domain list entry that is a URL with a path.
    #[error("a URL in a domain list")]
    PathInDomainList,
}

/// Names that hosts files carry for the machine itself, never blocklist entries.
const HOSTS_BOILERPLATE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

fn strip_comment(line: &str) -> &str {
    let line = line.trim_start_matches('\u{feff}');
    let mut cut = line.len();
    for (i, c) in line.char_indices() {
        if c == '#' && (i == 0 || line[..i].ends_with(char::is_whitespace)) {
            cut = i;
            break;
        }
    }
    line[..cut].trim()
}

/// Parses one line into entries. Blank lines and comments give none.
pub fn parse_line(format: LineFormat, line: &str) -> Result<Vec<&str>, LineError> {
    if format == LineFormat::Expressions {
        let t = line.trim();
        return Ok(if t.is_empty() || t.starts_with('#') {
            vec![]
        } else {
            vec![t]
        });
    }
    let line = strip_comment(line);
    if line.is_empty() {
        return Ok(vec![]);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let hosts_like = words.len() >= 2 && is_ip(words[0]);
    match format {
        LineFormat::Hosts => {
            if !hosts_like {
                return Err(LineError::NotHostsLine);
            }
            Ok(words[1..]
                .iter()
                .copied()
                .filter(|w| !HOSTS_BOILERPLATE.contains(&w.to_ascii_lowercase().as_str()))
                .map(clean_domain)
                .collect())
        }
        LineFormat::Domains => {
            if hosts_like {
                return parse_line(LineFormat::Hosts, line);
            }
            if words.len() > 1 {
                return Err(LineError::ExtraWords(words.len()));
            }
            let d = clean_domain(words[0]);
            let after_scheme = d.split_once("://").map_or(d, |(_, r)| r);
            if after_scheme.trim_end_matches('/').contains('/') {
                return Err(LineError::PathInDomainList);
            }
            Ok(vec![d])
        }
        LineFormat::Urls => {
            if words.len() > 1 {
                return Err(LineError::ExtraWords(words.len()));
            }
            Ok(vec![words[0]])
        }
        LineFormat::Expressions => Ok(vec![]),
    }
}

/// Removes wildcard and adblock decorations: `*.example.com`, `.example.com`, `||example.com^`.
fn clean_domain(d: &str) -> &str {
    let d = d.strip_prefix("||").unwrap_or(d);
    let d = d.strip_suffix('^').unwrap_or(d);
    let d = d.strip_prefix("*.").unwrap_or(d);
    d.strip_prefix('.').unwrap_or(d)
}

fn is_ip(w: &str) -> bool {
    w.parse::<std::net::IpAddr>().is_ok()
}

/// Guesses the format of a single list file from its first meaningful lines.
pub fn sniff(sample: &str) -> LineFormat {
    let mut hosts = 0;
    let mut urls = 0;
    let mut domains = 0;
    for line in sample
        .lines()
        .map(strip_comment)
        .filter(|l| !l.is_empty())
        .take(200)
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() >= 2 && is_ip(words[0]) {
            hosts += 1;
        } else if line.contains('/') {
            urls += 1;
        } else {
            domains += 1;
        }
    }
    if hosts > urls && hosts >= domains {
        LineFormat::Hosts
    } else if urls > domains {
        LineFormat::Urls
    } else {
        LineFormat::Domains
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LineFormat::*;

    #[track_caller]
    fn check(format: LineFormat, line: &str, expected: &[&str]) {
        assert_eq!(parse_line(format, line), Ok(expected.to_vec()), "{line:?}");
    }

    #[test]
    fn domain_lines() {
        check(Domains, "example.com", &["example.com"]);
        check(Domains, "  example.com  ", &["example.com"]);
        check(Domains, "# comment", &[]);
        check(Domains, "", &[]);
        check(Domains, "example.com # trailing comment", &["example.com"]);
        check(Domains, "*.example.com", &["example.com"]);
        check(Domains, ".afshin.ir", &["afshin.ir"]);
        check(Domains, "||ads.example^", &["ads.example"]);
        check(Domains, "0.0.0.0 tracker.example", &["tracker.example"]);
        check(Domains, "\u{feff}bom.example", &["bom.example"]);
        check(Domains, "http://example.com/", &["http://example.com/"]);
        assert_eq!(
            parse_line(Domains, "a.com b.com"),
            Err(LineError::ExtraWords(2))
        );
        assert_eq!(
            parse_line(Domains, "example.com/path"),
            Err(LineError::PathInDomainList)
        );
    }

    #[test]
    fn hosts_lines() {
        check(Hosts, "0.0.0.0 ads.example", &["ads.example"]);
        check(Hosts, "127.0.0.1\tlocalhost", &[]);
        check(Hosts, "::1 ip6-localhost ip6-loopback", &[]);
        check(
            Hosts,
            "0.0.0.0 a.example b.example # two",
            &["a.example", "b.example"],
        );
        check(Hosts, "0.0.0.0 0.0.0.0", &[]);
        assert_eq!(
            parse_line(Hosts, "ads.example"),
            Err(LineError::NotHostsLine)
        );
    }

    #[test]
    fn url_and_expression_lines() {
        check(Urls, "example.com/path/", &["example.com/path/"]);
        check(
            Urls,
            "https://example.com/a#b",
            &["https://example.com/a#b"],
        );
        check(
            Expressions,
            r"(/banner/|/sponsor/)",
            &[r"(/banner/|/sponsor/)"],
        );
        check(Expressions, "  # not a rule", &[]);
        assert_eq!(parse_line(Urls, "a b"), Err(LineError::ExtraWords(2)));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff("# hosts\n0.0.0.0 a.com\n0.0.0.0 b.com\n"), Hosts);
        assert_eq!(sniff("a.com\nb.com\n"), Domains);
        assert_eq!(sniff("a.com/x\nb.com/y\nc.com\n"), Urls);
    }
}
