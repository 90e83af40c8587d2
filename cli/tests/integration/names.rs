//! Names from every language through the `kith` binary (issue 21): the
//! shared table `core/tests/data/names.tsv` imported as a vCard, every query
//! of the table through `kith search`, and every look-alike pair through
//! `kith import` (likely duplicates) and `kith duplicates`.

use std::collections::BTreeSet;

use crate::harness::{Kith, repo_root};

struct Table {
    /// (name, queries)
    people: Vec<(String, Vec<String>)>,
    dups: Vec<(String, String)>,
}

fn table() -> Table {
    let text = std::fs::read_to_string(repo_root().join("core/tests/data/names.tsv")).unwrap();
    let mut t = Table {
        people: Vec::new(),
        dups: Vec::new(),
    };
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["person", _language, name, queries] => t.people.push((
                name.to_string(),
                queries.split('|').map(String::from).collect(),
            )),
            ["dup", a, b] => t.dups.push((a.to_string(), b.to_string())),
            _ => panic!("bad line in names.tsv: {line:?}"),
        }
    }
    t
}

/// Writes a vCard file of `names` into the test's directory.
fn vcard<'a>(k: &Kith, file: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let mut vcf = String::new();
    for n in names {
        vcf.push_str(&format!(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{n}\r\nEND:VCARD\r\n"
        ));
    }
    let path = k.dir.path().join(file);
    std::fs::write(&path, vcf).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn every_query_of_the_names_table_finds_its_person() {
    let t = table();
    let k = Kith::new();
    let file = vcard(&k, "people.vcf", t.people.iter().map(|(n, _)| n));
    let v = k.json(&["import", "vcard", &file]);
    assert_eq!(
        v["created"].as_array().unwrap().len(),
        t.people.len(),
        "{v}"
    );
    assert_eq!(v["likely_duplicates"].as_array().unwrap().len(), 0, "{v}");
    let mut missed = Vec::new();
    for (name, queries) in &t.people {
        for q in queries {
            let v = k.json(&["search", q, "--limit", "100"]);
            let found = v["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["name"] == name.as_str());
            if !found {
                missed.push(format!("{q:?} -> {name}"));
            }
        }
    }
    assert!(missed.is_empty(), "not found:\n{}", missed.join("\n"));
    assert_eq!(k.json(&["duplicates"]), serde_json::json!([]));
}

#[test]
fn every_look_alike_pair_is_reported_by_import_and_duplicates() {
    let t = table();
    let k = Kith::new();
    let firsts: BTreeSet<&String> = t.dups.iter().map(|(a, _)| a).collect();
    let seconds: Vec<&String> = t.dups.iter().map(|(_, b)| b).collect();
    // Typed in by hand (an import would record content hashes, and a card
    // differing only by accents would count as already imported).
    for a in &firsts {
        k.add_contact(a, &[]);
    }
    // The other spellings, as a phone's address book sends them: each is a
    // likely duplicate of its pair, none is created.
    let b_file = vcard(&k, "b.vcf", seconds.iter().copied());
    let v = k.json(&["import", "vcard", &b_file]);
    assert_eq!(v["created"].as_array().unwrap().len(), 0, "{v}");
    let reported: BTreeSet<(String, String)> = v["likely_duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["merge_into_name"].as_str().unwrap().to_string(),
                d["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for pair in &t.dups {
        assert!(reported.contains(pair), "import missed {pair:?}: {v}");
    }
    // Created anyway, `kith duplicates` lists exactly the pairs of the table.
    k.json(&["import", "vcard", &b_file, "--create-duplicates"]);
    let d = k.json(&["duplicates"]);
    let pairs: BTreeSet<(String, String)> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["reasons"][0]["kind"], "same_name", "{p}");
            let (a, b) = (p["a_name"].as_str().unwrap(), p["b_name"].as_str().unwrap());
            (a.min(b).to_string(), a.max(b).to_string())
        })
        .collect();
    let expected: BTreeSet<(String, String)> = t
        .dups
        .iter()
        .map(|(a, b)| (a.clone().min(b.clone()), a.clone().max(b.clone())))
        .collect();
    assert_eq!(pairs, expected);
}
