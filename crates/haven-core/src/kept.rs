//! The lists Haven keeps itself, shipped in `config/lists/` and compiled in: the support,
//! health and online-safety services every pupil must always reach (`always-reachable.txt`),
//! and bypass services beyond UT1 with their categories (`bypass.txt`). Every entry has a
//! comment saying what it is and where it comes from.
//!
//! The always-reachable list is applied by the engine (after the illegal lists, a deny
//! override and a blocked file type; before everything else). The bypass list is a source of
//! every snapshot built (`haven-lists` adds it to each rebuild), so its entries take their
//! category's action in each group like any list's.

use crate::category;
use crate::normalise::{NormaliseError, Target};
use crate::policy::PatternSet;

/// `config/lists/always-reachable.txt`.
pub const ALWAYS_REACHABLE: &str = include_str!("../../../config/lists/always-reachable.txt");

/// `config/lists/bypass.txt`.
pub const BYPASS: &str = include_str!("../../../config/lists/bypass.txt");

/// The name of the snapshot source the bypass list becomes, per category
/// (`haven-bypass/vpn-proxy`, …).
pub const BYPASS_SOURCE: &str = "haven-bypass";

/// A line of a kept list that cannot be used (a test proves the shipped ones have none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeptError {
    /// Not a host name.
    #[error("line {line}: {entry:?} is not a site: {source}")]
    Site {
        /// 1-based line number.
        line: usize,
        /// The entry.
        entry: String,
        /// Why.
        source: NormaliseError,
    },
    /// A category id Haven does not have.
    #[error("line {line}: unknown category {category:?}")]
    Category {
        /// 1-based line number.
        line: usize,
        /// The category id given.
        category: String,
    },
    /// A line with too few or too many fields.
    #[error("line {line}: expected {expected}")]
    Shape {
        /// 1-based line number.
        line: usize,
        /// What a line holds.
        expected: &'static str,
    },
}

/// The fields of each entry line of a kept list (comments and blank lines skipped), with its
/// 1-based line number.
fn entry_lines(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(n, raw)| {
        let line = raw.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then(|| (n + 1, line.split_whitespace().collect()))
    })
}

/// The always-reachable sites of `text` (one domain a line), each entry's index its rule
/// number, with their names.
pub fn parse_always_reachable(text: &str) -> Result<(PatternSet, Vec<String>), KeptError> {
    let mut set = PatternSet::default();
    let mut names = Vec::new();
    for (line, fields) in entry_lines(text) {
        let [entry] = fields.as_slice() else {
            return Err(KeptError::Shape {
                line,
                expected: "one domain",
            });
        };
        let t = Target::parse(entry).map_err(|source| KeptError::Site {
            line,
            entry: (*entry).to_owned(),
            source,
        })?;
        set.insert(&t, names.len() as u32);
        names.push((*entry).to_owned());
    }
    Ok((set, names))
}

/// The bypass entries of `text` (`CATEGORY DOMAIN` a line): (category id, domain).
pub fn parse_bypass(text: &str) -> Result<Vec<(&str, &str)>, KeptError> {
    let mut out = Vec::new();
    for (line, fields) in entry_lines(text) {
        let [cat, entry] = fields.as_slice() else {
            return Err(KeptError::Shape {
                line,
                expected: "a category id and a domain",
            });
        };
        if category::by_id(cat).is_none() || category::is_illegal(cat) {
            return Err(KeptError::Category {
                line,
                category: (*cat).to_owned(),
            });
        }
        Target::parse(entry).map_err(|source| KeptError::Site {
            line,
            entry: (*entry).to_owned(),
            source,
        })?;
        out.push((*cat, *entry));
    }
    Ok(out)
}

/// The shipped always-reachable list, compiled (empty if it failed to parse, which a test
/// rules out for the file compiled in).
pub fn always_reachable() -> (PatternSet, Vec<String>) {
    parse_always_reachable(ALWAYS_REACHABLE).unwrap_or_default()
}

/// The shipped bypass list (empty if it failed to parse, which a test rules out).
pub fn bypass() -> Vec<(&'static str, &'static str)> {
    parse_bypass(BYPASS).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_lists_parse_and_every_entry_says_what_it_is() {
        let (set, names) = parse_always_reachable(ALWAYS_REACHABLE).expect("always-reachable");
        assert!(names.len() >= 50, "{}", names.len());
        let bypass = parse_bypass(BYPASS).expect("bypass");
        for kind in ["vpn-proxy", "remote-access", "dynamic-dns", "doh"] {
            assert!(
                bypass.iter().filter(|(c, _)| *c == kind).count() >= 10,
                "{kind}"
            );
        }
        // Every entry line carries its comment (the service and its source).
        for text in [ALWAYS_REACHABLE, BYPASS] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                assert!(line.contains('#'), "no comment: {line}");
            }
        }
        // No bypass entry is also always reachable.
        for (_, d) in &bypass {
            let t = Target::parse(d).expect("parsed above");
            assert!(set.find(&t).is_none(), "{d} is in both lists");
        }
        let t = Target::parse("https://www.internetmatters.org/resources/").expect("t");
        assert!(set.find(&t).is_some());
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(
            parse_bypass("vpn-proxy\n").map(|_| ()),
            Err(KeptError::Shape {
                line: 1,
                expected: "a category id and a domain"
            })
        );
        assert_eq!(
            parse_bypass("# c\nvpn-proxyy nordvpn.com # x\n").map(|_| ()),
            Err(KeptError::Category {
                line: 2,
                category: "vpn-proxyy".to_owned()
            })
        );
        // Nothing can put a name on the illegal lists from here.
        assert!(matches!(
            parse_bypass("iwf example.com\n"),
            Err(KeptError::Category { .. })
        ));
        assert!(parse_always_reachable("two words\n").is_err());
    }
}
