//! docs/CLI.md documents the JSON shape of every `--json` output as an
//! example block preceded by `<!-- shape: NAME -->`. This test runs each
//! command for real and checks the keys of its output against the documented
//! example, recursively, so the docs cannot drift from the binary.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::harness::{Kith, repo_root, run};

/// The documented examples, by shape name.
pub(crate) fn documented() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(repo_root().join("docs/CLI.md")).unwrap();
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- shape: ")
            .and_then(|s| s.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap();
        assert_eq!(
            fence.trim(),
            "```json",
            "shape {name}: expected a json block"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let v: Value =
            serde_json::from_str(&body.join("\n")).unwrap_or_else(|e| panic!("shape {name}: {e}"));
        assert!(
            out.insert(name.to_string(), v).is_none(),
            "shape {name} twice"
        );
    }
    out
}

fn is_ulid(k: &str) -> bool {
    k.len() == 26 && k.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Asserts `real` has the same keys as `doc`, recursively, and values of the
/// same JSON type (a documented null stands for any type; a documented
/// scalar may be null in the output). Objects keyed by ids (follow-ups) are
/// maps: each value is checked against the documented one.
pub(crate) fn same_shape(path: &str, doc: &Value, real: &Value) {
    match (doc, real) {
        // "..." stands for a large documented-elsewhere value (the insights report).
        (Value::String(s), _) if s == "..." => {}
        (Value::Object(d), Value::Object(r)) => {
            if !d.is_empty() && d.keys().all(|k| is_ulid(k)) {
                let example = d.values().next().unwrap();
                for (k, v) in r {
                    assert!(is_ulid(k), "{path}: map key {k} is not an id");
                    same_shape(&format!("{path}.{{id}}"), example, v);
                }
                return;
            }
            let dk: Vec<&String> = d.keys().collect();
            let rk: Vec<&String> = r.keys().collect();
            assert_eq!(
                dk, rk,
                "{path}: documented keys differ from the real output"
            );
            for (k, dv) in d {
                same_shape(&format!("{path}.{k}"), dv, &r[k]);
            }
        }
        (Value::Array(d), Value::Array(r)) => {
            if let Some(example) = d.first() {
                for (i, v) in r.iter().enumerate() {
                    same_shape(&format!("{path}[{i}]"), example, v);
                }
            }
        }
        // A documented null is an optional value shown unset: any kind.
        (Value::Null, _) => {}
        // An optional scalar shown set may be unset in the real output.
        (Value::String(_) | Value::Number(_) | Value::Bool(_), Value::Null) => {}
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        // Anything else is a different type: an object or array documented
        // where the output has a scalar or null, or scalars of other kinds.
        (d, r) => panic!(
            "{path}: documented {} but the output has {}",
            kind(d),
            kind(r)
        ),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[test]
fn every_documented_json_shape_matches_real_output() {
    let k = Kith::new();
    let zoe = k.add_contact(
        "Zoë Åberg",
        &[
            "--email",
            "zoe@x.org",
            "--circle",
            "strategic",
            "--tag",
            "pharmacy",
        ],
    );
    k.add_contact("Zoe Aberg", &["--email", "zoe@x.org"]);
    k.json(&["project", "add", "Formulary review"]);
    k.json(&["goal", "add", "Lead the formulary", "--contact", &zoe]);
    let iid = k.log(&[
        "Coffee",
        "--with",
        &zoe,
        "--gave",
        "feedback",
        "--got",
        "insight:zoë åberg",
        "--project",
        "formulary",
        "--follow-up",
        "Send deck",
        "--due",
        "yesterday",
        "--notes",
        "formulary plans",
    ]);
    let fid = k.json(&["followups"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("init", vec!["init"]),
        (
            "contact",
            vec!["contact", "edit", &zoe, "--role", "Chief Pharmacist"],
        ),
        ("contact-list", vec!["contact", "list"]),
        ("contact-show", vec!["contact", "show", &zoe]),
        ("interaction", vec!["interaction", "show", &iid]),
        ("timeline", vec!["timeline"]),
        ("search", vec!["search", "formulary"]),
        ("followups", vec!["followups"]),
        ("followup-done", vec!["followups", "--done", &fid]),
        ("duplicates", vec!["duplicates"]),
        ("project-list", vec!["project", "list"]),
        ("goal-list", vec!["goal", "list"]),
        ("settings", vec!["settings", "show"]),
        ("reindex", vec!["reindex"]),
        ("check", vec!["check"]),
        ("insights", vec!["insights"]),
    ];
    // A vCard file with a new card, a likely duplicate of Zoë (same email)
    // and a malformed line (a problem).
    let vcf = k.dir.path().join("in.vcf");
    std::fs::write(
        &vcf,
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ines Duarte\r\nORG:Royal Free\r\nthis line is malformed\r\nEND:VCARD\r\n\
         BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Z. Aberg\r\nEMAIL:zoe@x.org\r\nEND:VCARD\r\n",
    )
    .unwrap();
    let export_file = k.dir.path().join("export.json");
    let backup_file = k.dir.path().join("kith.bak");
    let (vcf_s, export_s, backup_s) = (
        vcf.to_str().unwrap().to_string(),
        export_file.to_str().unwrap().to_string(),
        backup_file.to_str().unwrap().to_string(),
    );
    let mut runs = runs;
    runs.push(("import", vec!["import", "vcard", &vcf_s]));
    runs.push(("export", vec!["export", "json", "-o", &export_s]));
    runs.push(("import-json", vec!["import", "json", &export_s]));
    runs.push((
        "backup",
        vec![
            "backup",
            &backup_s,
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
        ],
    ));
    let docs = documented();
    for (name, args) in &runs {
        let doc = docs
            .get(*name)
            .unwrap_or_else(|| panic!("docs/CLI.md lacks shape {name}"));
        let mut c = k.command();
        c.env("KITH_PASSPHRASE", "correct horse battery staple")
            .arg("--data")
            .arg(k.data())
            .args(args)
            .arg("--json");
        let real = run(c).json();
        if let (Value::Array(d), Value::Array(r)) = (doc, &real) {
            assert!(
                !d.is_empty() && !r.is_empty(),
                "{name}: example and output must be non-empty"
            );
        }
        same_shape(name, doc, &real);
    }
    let restored = Kith::empty();
    let mut c = restored.command();
    c.env("KITH_PASSPHRASE", "correct horse battery staple")
        .arg("--data")
        .arg(restored.data())
        .args(["restore", &backup_s, "--json"]);
    same_shape("restore", &docs["restore"], &run(c).json());
    let tested: Vec<&str> = runs
        .iter()
        .map(|(n, _)| *n)
        .chain(["demo", "report", "restore"])
        .collect();
    for name in docs.keys() {
        assert!(
            tested.contains(&name.as_str()),
            "documented shape {name} is not tested"
        );
    }
}
