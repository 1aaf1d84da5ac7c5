//! Every configuration Haven ships or shows is parsed here, and every table in it is shown to
//! refuse a key it does not know, naming the key (after hickory-dns's
//! `bin/tests/integration/config_tests.rs`). A new example goes in `examples()`.

use haven_app::Config;
use serde::Deserialize as _;

/// Tables whose keys are the school's own names (a map, not settings): any key is allowed.
const FREE_FORM: &[&str] = &[
    "events.retention_days",
    "proxy.hosts",
    "monitor.blocked",
    "monitor.alert_grade_by_category",
];

/// A key no table has.
const BOGUS: &str = "no_such_setting";

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped configuration, and every whole `haven.toml` the benchmark scripts write (their
/// shell substitutions replaced by a number).
fn examples() -> Vec<(String, String)> {
    let mut found = vec![(
        "config/haven.toml".to_owned(),
        haven_app::config::DEFAULT_CONFIG.to_owned(),
    )];
    let mut scripts: Vec<_> = std::fs::read_dir(root().join("bench"))
        .expect("bench/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scripts.sort();
    for script in scripts {
        let text = std::fs::read_to_string(&script).expect("script");
        let mut lines = text.lines().enumerate();
        while let Some((at, line)) = lines.next() {
            let Some((_, marker)) = line.split_once("<<") else {
                continue;
            };
            if !line.contains("haven.toml") {
                continue;
            }
            let marker = marker.trim().trim_matches(['\'', '"']);
            let body: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != marker)
                .collect();
            let name = format!(
                "{}:{}",
                script.strip_prefix(root()).unwrap_or(&script).display(),
                at + 1
            );
            found.push((name, substitute(&body.join("\n"))));
        }
    }
    assert!(
        found.len() >= 5,
        "the bench scripts' configurations: {found:?}"
    );
    found
}

/// `$(...)`, `${...}` and `$NAME` replaced by `1`.
fn substitute(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('(') | Some('{') => {
                let close = if chars.next() == Some('(') { ')' } else { '}' };
                let mut depth = 1;
                for c in chars.by_ref() {
                    if c == '(' || c == '{' {
                        depth += 1;
                    } else if c == close || c == ')' || c == '}' {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                }
            }
            _ => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
            }
        }
        out.push('1');
    }
    out
}

fn parse(value: toml::Table) -> Result<Config, toml::de::Error> {
    Config::deserialize(toml::Value::Table(value))
}

/// Every table's path in `t` (tables in arrays of tables by their array's path and index).
fn tables(t: &toml::Table, path: &str, out: &mut Vec<String>) {
    for (k, v) in t {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match v {
            toml::Value::Table(inner) => {
                out.push(p.clone());
                tables(inner, &p, out);
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(inner) = item {
                        let p = format!("{p}[{i}]");
                        out.push(p.clone());
                        tables(inner, &p, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The table at `path` in `t`.
fn table_at<'a>(t: &'a mut toml::Table, path: &str) -> &'a mut toml::Table {
    let mut here = t;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (
                k,
                Some(i.trim_end_matches(']').parse::<usize>().expect("i")),
            ),
            None => (part, None),
        };
        let v = here.get_mut(key).expect("the path exists");
        here = match (v, index) {
            (toml::Value::Table(t), None) => t,
            (toml::Value::Array(a), Some(i)) => match &mut a[i] {
                toml::Value::Table(t) => t,
                _ => panic!("{path}: not a table"),
            },
            _ => panic!("{path}: not a table"),
        };
    }
    here
}

#[test]
fn every_shipped_configuration_parses_and_passes_its_checks() {
    for (name, text) in examples() {
        let mut config = Config::parse(&text, &name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        config
            .check(&name)
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
}

#[test]
fn every_table_refuses_an_unknown_key_and_names_it() {
    for (name, text) in examples() {
        let mut doc: toml::Table = toml::from_str(&text).expect("TOML");
        // Every kind of table appears at least once: a device too.
        doc.entry("devices").or_insert_with(|| {
            toml::Value::Array(vec![toml::Value::Table(
                toml::from_str("name = \"laptop\"\naddress = \"10.0.0.9\"\ngroup = \"ks2\"\n")
                    .expect("device"),
            )])
        });
        parse(doc.clone()).unwrap_or_else(|e| panic!("{name} with a device: {e}"));
        let mut paths = vec![String::new()];
        tables(&doc, "", &mut paths);
        let mut tried = 0;
        for path in paths {
            let generic = path
                .split('.')
                .map(|p| p.split('[').next().unwrap_or(p))
                .collect::<Vec<_>>()
                .join(".");
            if FREE_FORM.contains(&generic.as_str()) {
                continue;
            }
            let mut changed = doc.clone();
            let table = if path.is_empty() {
                &mut changed
            } else {
                table_at(&mut changed, &path)
            };
            table.insert(BOGUS.to_owned(), toml::Value::Integer(1));
            let err = parse(changed)
                .map(|_| ())
                .expect_err(&format!("{name}: [{path}] took an unknown key"));
            assert!(
                err.to_string()
                    .contains(&format!("unknown field `{BOGUS}`")),
                "{name}: [{path}]: {err}"
            );
            tried += 1;
        }
        assert!(tried >= 3, "{name}: {tried} tables");
    }
}

#[test]
fn the_shipped_configuration_has_every_section() {
    let doc: toml::Table = toml::from_str(haven_app::config::DEFAULT_CONFIG).expect("TOML");
    for section in [
        "dns", "proxy", "metrics", "events", "console", "monitor", "alerts", "log", "store",
        "networks",
    ] {
        assert!(
            doc.contains_key(section),
            "config/haven.toml has no [{section}]"
        );
    }
}
