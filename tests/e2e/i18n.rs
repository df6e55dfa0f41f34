//! Every string the web UI shows goes through its i18n table, in English and Spanish.

use std::{collections::BTreeMap, fs, path::Path};

fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(fs::read_to_string(&p).unwrap());
        }
    }
}

/// Every `t("key")` / `tf("key", …)` and every key passed through a `("…", "key")` table.
fn keys_used(src: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for (i, _) in src.match_indices("t(\"") {
        let before = src[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() && c != 'f' || c == '_') {
            continue;
        }
        let rest = &src[i + 3..];
        if let Some(end) = rest.find('"') {
            let k = &rest[..end];
            if !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                keys.push(k.to_string());
            }
        }
    }
    keys
}

#[test]
fn every_ui_string_has_english_and_spanish() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src");
    let table = fs::read_to_string(ui.join("i18n.tsv")).unwrap();
    let mut entries = BTreeMap::new();
    for (n, line) in table.lines().enumerate().filter(|(_, l)| !l.is_empty() && !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 3, "i18n.tsv line {}: key, English, Spanish separated by tabs", n + 1);
        assert!(cols.iter().all(|c| !c.trim().is_empty()), "i18n.tsv line {}: an empty text", n + 1);
        assert_eq!(
            cols[1].matches("{}").count(),
            cols[2].matches("{}").count(),
            "i18n.tsv line {}: both languages take the same arguments",
            n + 1
        );
        assert!(entries.insert(cols[0].to_string(), ()).is_none(), "i18n.tsv: {} twice", cols[0]);
    }
    let mut sources = Vec::new();
    rust_files(&ui, &mut sources);
    let mut missing: Vec<String> =
        sources.iter().flat_map(|s| keys_used(s)).filter(|k| !entries.contains_key(k)).collect();
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "keys used in ui/src but missing from ui/src/i18n.tsv: {missing:?}");
}
