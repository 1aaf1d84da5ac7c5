//! The crate edges docs/ARCHITECTURE.md states as invariants, read from the manifests: each
//! crate depends only on crates in the layers below it, only haven-app wires services (and
//! depends on the console), and the pure core depends on no crate of ours.

use std::collections::BTreeMap;
use std::path::Path;

/// The layers of docs/ARCHITECTURE.md ("The crates, in layers"), top first.
const LAYERS: &[&[&str]] = &[
    &["haven"],
    &["haven-app"],
    &["haven-console"],
    &["haven-monitor"],
    &["haven-dns", "haven-proxy", "haven-store", "haven-lists"],
    &["haven-notify"],
    &["haven-runtime", "haven-tls", "haven-vault"],
    &[
        "haven-core",
        "haven-model",
        "haven-records",
        "haven-registers",
    ],
];

/// Each workspace crate and the crates of ours it depends on (normal dependencies).
fn edges() -> BTreeMap<String, Vec<String>> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut edges = BTreeMap::new();
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let toml: toml::Table = toml::from_str(&text).expect("a manifest parses");
        let name = toml["package"]["name"].as_str().expect("name").to_owned();
        let ours = toml
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|d| {
                d.keys()
                    .filter(|k| k.starts_with("haven"))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        edges.insert(name, ours);
    }
    edges
}

fn layer(name: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name} is in no layer: add it to ARCHITECTURE.md and LAYERS"))
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let edges = edges();
    assert!(edges.len() >= 12, "{edges:?}");
    let mut wrong = Vec::new();
    for (name, deps) in &edges {
        for d in deps {
            if layer(d) <= layer(name) {
                wrong.push(format!("{name} -> {d}"));
            }
        }
    }
    assert!(wrong.is_empty(), "edges against the layers: {wrong:?}");
}

#[test]
fn only_haven_app_depends_on_the_console_and_the_core_on_nothing_of_ours() {
    let edges = edges();
    let on_console: Vec<&String> = edges
        .iter()
        .filter(|(_, deps)| deps.iter().any(|d| d == "haven-console"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(on_console, ["haven-app"]);
    assert_eq!(edges["haven-core"], Vec::<String>::new());
    assert_eq!(
        edges["haven-model"],
        Vec::<String>::new(),
        "the model is pure too"
    );
    assert_eq!(
        edges["haven-records"],
        Vec::<String>::new(),
        "the records' rules are pure too"
    );
    assert_eq!(
        edges["haven-registers"],
        Vec::<String>::new(),
        "the registers' rules are pure too"
    );
    // The core holds no runtime plumbing: no channels' crates, no arc-swap, no metrics.
    let core = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../haven-core/Cargo.toml"),
    )
    .expect("core manifest");
    let records = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../haven-records/Cargo.toml"),
    )
    .expect("records manifest");
    let registers = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../haven-registers/Cargo.toml"),
    )
    .expect("registers manifest");
    for plumbing in ["tokio", "arc-swap", "prometheus-client", "tracing", "sqlx"] {
        assert!(
            !core.lines().any(|l| l.starts_with(plumbing)),
            "haven-core depends on {plumbing}"
        );
        assert!(
            !records.lines().any(|l| l.starts_with(plumbing)),
            "haven-records depends on {plumbing}"
        );
        assert!(
            !registers.lines().any(|l| l.starts_with(plumbing)),
            "haven-registers depends on {plumbing}"
        );
    }
}
