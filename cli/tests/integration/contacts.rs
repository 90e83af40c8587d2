//! `kith contact ...`: every subcommand's happy path and its error cases.

use crate::harness::{Kith, keys};

#[test]
fn add_show_edit_list_archive() {
    let k = Kith::new();
    let id = k.add_contact(
        "Zoë Åberg",
        &[
            "--org",
            "St Mary's",
            "--role",
            "Head of Pharmacy",
            "--discipline",
            "pharmacy",
            "--seniority",
            "senior",
            "--inside",
            "--circle",
            "strategic",
            "--tag",
            "formulary",
            "--email",
            "zoe@example.org",
            "--phone",
            "+44 20 7946 0000",
            "--how-we-met",
            "ward round",
            "--notes",
            "Knows the CFO",
            "--cadence",
            "45",
        ],
    );
    let shown = k.json(&["contact", "show", "zoe"]);
    let c = &shown["contact"];
    assert_eq!(c["id"], id.as_str());
    assert_eq!(c["organisation"], "St Mary's");
    assert_eq!(c["seniority"], "senior");
    assert_eq!(c["inside_org"], true);
    assert_eq!(c["circles"][0], "strategic");
    assert_eq!(c["emails"][0]["value"], "zoe@example.org");
    assert_eq!(c["cadence_days"], 45);
    assert_eq!(shown["stats"]["interaction_count"], 0);

    // Accent- and case-insensitive name; add and remove set members.
    let edited = k.json(&[
        "contact",
        "edit",
        "ZOE ABERG",
        "--role",
        "Chief Pharmacist",
        "--circle",
        "operational",
        "--remove-circle",
        "strategic",
        "--remove-tag",
        "formulary",
        "--tag",
        "board",
        "--outside",
        "--org",
        "",
    ]);
    assert_eq!(edited["role"], "Chief Pharmacist");
    assert_eq!(edited["circles"], serde_json::json!(["operational"]));
    assert_eq!(edited["tags"], serde_json::json!(["board"]));
    assert_eq!(edited["inside_org"], false);
    assert_eq!(edited["organisation"], serde_json::Value::Null);

    let human = k.run(&["contact", "show", &id]).ok().stdout;
    assert!(human.starts_with("Zoë Åberg\n"), "{human}");
    assert!(human.contains("Chief Pharmacist"), "{human}");

    k.add_contact("Bruno Lima", &[]);
    let list = k.json(&["contact", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Bruno Lima", "Zoë Åberg"]);
    assert!(keys(&list[0]).contains(&"interaction_count".to_string()));
    let table = k.run(&["contact", "list"]).ok().stdout;
    assert!(table.lines().next().unwrap().starts_with("NAME"), "{table}");
    assert_eq!(table.lines().count(), 3);

    let archived = k.json(&["contact", "archive", "bruno"]);
    assert_eq!(archived["archived"], true);
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(
        k.json(&["contact", "list", "--all"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // An archived contact is still found by name when no active one matches.
    let back = k.json(&["contact", "archive", "bruno", "--undo"]);
    assert_eq!(back["archived"], false);
}

#[test]
fn merge_moves_history_to_the_kept_contact() {
    let k = Kith::new();
    let keep = k.add_contact("Ana Silva", &["--email", "ana@x.org"]);
    let dup = k.add_contact("Ana  SILVA", &["--phone", "+351 912 345 678"]);
    k.log(&["Chat", "--with", &dup]);
    let dups = k.json(&["duplicates"]);
    assert_eq!(dups.as_array().unwrap().len(), 1);
    assert_eq!(dups[0]["reasons"][0]["kind"], "same_name");
    let merged = k.json(&["contact", "merge", &dup, "--into", &keep]);
    assert_eq!(merged["id"], keep.as_str());
    assert_eq!(merged["phones"][0]["value"], "+351 912 345 678");
    let tl = k.json(&["timeline", &keep]);
    assert_eq!(tl.as_array().unwrap().len(), 1);
    let loser = k.json(&["contact", "show", &dup]);
    assert_eq!(loser["contact"]["merged_into"], keep.as_str());
    assert_eq!(loser["merged_into_name"], "Ana Silva");
    assert_eq!(k.json(&["duplicates"]).as_array().unwrap().len(), 0);
    // Logging with the merged id lands on the survivor.
    let i = k.json(&["log", "Follow-up chat", "--with", &dup]);
    assert_eq!(i["participants"][0], keep.as_str());
}

#[test]
fn contact_errors_name_the_problem_and_change_nothing() {
    let k = Kith::new();
    k.add_contact("Ana Silva", &["--org", "Royal Free"]);
    k.add_contact("Ana Sousa", &[]);
    k.input_error(&["contact", "add", "  "], "name must not be empty");
    k.input_error(
        &["contact", "add", "X", "--circle", "family"],
        "unknown circle 'family'",
    );
    k.input_error(
        &["contact", "add", "X", "--seniority", "boss"],
        "unknown seniority 'boss'",
    );
    k.input_error(
        &["contact", "add", "X", "--inside", "--outside"],
        "cannot be used with",
    );
    k.input_error(&["contact", "show", "Quentin"], "unknown contact 'Quentin'");
    let msg = k.input_error(&["contact", "show", "ana"], "'ana' matches 2 contacts");
    assert!(msg.contains("Ana Silva (Royal Free, "), "{msg}");
    k.input_error(
        &["contact", "edit", "Ana Silva", "--remove-tag", "nope"],
        "has no tag 'nope'",
    );
    k.input_error(
        &["contact", "edit", "Ana Silva", "--remove-email", "a@b"],
        "has no email 'a@b'",
    );
    k.input_error(
        &["contact", "edit", "Ana Silva", "--name", ""],
        "name must not be empty",
    );
    k.input_error(
        &["contact", "merge", "Ana Silva", "--into", "Ana Silva"],
        "into itself",
    );
    k.input_error(
        &["contact", "archive", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        "unknown contact",
    );
    k.input_error(&["contact", "list", "--sort", "age"], "invalid value 'age'");
}

#[test]
fn adding_a_likely_duplicate_says_so() {
    let k = Kith::new();
    let ana = k.add_contact("Ana Silva", &["--email", "Ana@Example.org"]);
    let out = k
        .run(&["contact", "add", "A. Silva", "--email", "ana@example.org"])
        .ok()
        .stdout;
    assert!(out.starts_with("Added A. Silva ("), "{out}");
    assert!(
        out.contains(&format!(
            "looks like Ana Silva ({ana}): same email ana@example.org"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("--into {ana}`")), "{out}");
    let out = k.run(&["contact", "add", "Bruno Lima"]).ok().stdout;
    assert_eq!(out.lines().count(), 1, "{out}");
}
