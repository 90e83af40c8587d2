//! `kith timeline`, `kith search`, `kith followups`, `kith duplicates`.

use crate::harness::Kith;

fn network() -> Kith {
    let k = Kith::new();
    k.add_contact(
        "Zoë Åberg",
        &["--org", "St Mary's Hospital", "--email", "zoe@stmarys.org"],
    );
    k.add_contact("Bruno Lima", &["--phone", "+44 7700 900123"]);
    k.add_contact("B. Lima", &["--phone", "7700 900123"]);
    k.log(&[
        "Formulary coffee",
        "--with",
        "zoe",
        "--at",
        "-3d",
        "--notes",
        "Talked antimicrobial stewardship",
        "--follow-up",
        "Send audit deck",
        "--due",
        "yesterday",
    ]);
    k.log(&[
        "Budget call",
        "--with",
        "Bruno Lima",
        "--kind",
        "call",
        "--at",
        "-1d",
        "--follow-up",
        "Share the spreadsheet",
        "--due",
        "+7d",
    ]);
    k.log(&[
        "Ward round",
        "--with",
        "zoe",
        "--with",
        "Bruno Lima",
        "--at",
        "-2h",
    ]);
    k
}

#[test]
fn timeline_is_newest_first_and_per_contact() {
    let k = network();
    let all = k.json(&["timeline"]);
    let s: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["summary"].as_str().unwrap())
        .collect();
    assert_eq!(s, ["Ward round", "Budget call", "Formulary coffee"]);
    let zoe = k.json(&["timeline", "zoe"]);
    let s: Vec<&str> = zoe
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["summary"].as_str().unwrap())
        .collect();
    assert_eq!(s, ["Ward round", "Formulary coffee"]);
    assert_eq!(
        k.json(&["timeline", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let human = k.run(&["timeline", "zoe"]).ok().stdout;
    assert!(human.starts_with("Timeline of Zoë Åberg\nWHEN"), "{human}");
    assert!(human.contains("2 hours ago"), "{human}");
    assert!(human.contains("3 days ago"), "{human}");
    let empty = Kith::new();
    assert!(
        empty
            .run(&["timeline"])
            .ok()
            .stdout
            .contains("No interactions yet")
    );
}

#[test]
fn search_is_prefix_and_accent_insensitive() {
    let k = network();
    let v = k.json(&["search", "zoe"]);
    assert_eq!(v["contacts"][0]["name"], "Zoë Åberg");
    let v = k.json(&["search", "ANTIMICRO"]);
    assert_eq!(v["interactions"][0]["summary"], "Formulary coffee");
    assert_eq!(v["interactions"][0]["participant_names"][0], "Zoë Åberg");
    let v = k.json(&["search", "st mary"]);
    assert_eq!(v["contacts"].as_array().unwrap().len(), 1);
    let v = k.json(&["search", "xylophone"]);
    assert_eq!(v["contacts"].as_array().unwrap().len(), 0);
    assert!(
        k.run(&["search", "xylophone"])
            .ok()
            .stdout
            .contains("Nothing matches")
    );
    k.input_error(&["search", "  "], "search text must not be empty");
}

#[test]
fn followups_list_overdue_done_reopen() {
    let k = network();
    let open = k.json(&["followups"]);
    let open = open.as_array().unwrap();
    assert_eq!(open.len(), 2);
    assert_eq!(open[0]["text"], "Send audit deck");
    assert_eq!(open[0]["overdue"], true);
    assert_eq!(open[1]["overdue"], false);
    // Due by tomorrow: the overdue one (yesterday), not the one in 7 days.
    let soon = k.json(&["followups", "--due-by", "tomorrow"]);
    assert_eq!(soon.as_array().unwrap().len(), 1);
    assert_eq!(
        k.json(&["followups", "--due-by", "+7d"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    k.input_error(&["followups", "--due-by", "soonish"], "bad date 'soonish'");
    let overdue = k.json(&["followups", "--overdue"]);
    assert_eq!(overdue.as_array().unwrap().len(), 1);
    let human = k.run(&["followups"]).ok().stdout;
    assert!(human.contains("1 day overdue"), "{human}");
    assert!(human.contains("in 7 days"), "{human}");

    let fid = open[0]["id"].as_str().unwrap().to_string();
    let done = k.json(&["followups", "--done", &fid]);
    assert!(done["follow_up"]["done_ms"].is_i64());
    assert_eq!(k.json(&["followups"]).as_array().unwrap().len(), 1);
    k.json(&["followups", "--reopen", &fid]);
    assert_eq!(k.json(&["followups"]).as_array().unwrap().len(), 2);
    k.input_error(
        &["followups", "--done", "01ARZ3NDEKTSV4RRFFQ69G5FAV"],
        "unknown follow-up",
    );
    k.input_error(&["followups", "--done", "x"], "invalid follow-up id 'x'");
    k.input_error(
        &["followups", "--done", &fid, "--reopen", &fid],
        "cannot be used with",
    );
}

#[test]
fn duplicates_by_phone_suffix() {
    let k = network();
    let d = k.json(&["duplicates"]);
    let d = d.as_array().unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["reasons"][0]["kind"], "same_phone");
    let mut names = [
        d[0]["a_name"].as_str().unwrap(),
        d[0]["b_name"].as_str().unwrap(),
    ];
    names.sort();
    assert_eq!(names, ["B. Lima", "Bruno Lima"]);
    assert!(
        k.run(&["duplicates"])
            .ok()
            .stdout
            .contains("kith contact merge")
    );
}

#[test]
fn contact_list_sorts_by_recent_interaction() {
    let k = network();
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(k.json(&["contact", "list"])),
        ["B. Lima", "Bruno Lima", "Zoë Åberg"]
    );
    // Ward round (-2h) had both; Bruno's budget call (-1d) is later than Zoë's coffee (-3d),
    // so the tie on the last interaction is broken by name; never-met contacts come last.
    let recent = names(k.json(&["contact", "list", "--sort", "recent"]));
    assert_eq!(recent.last().map(String::as_str), Some("B. Lima"));
    let human = k.run(&["contact", "list", "--sort", "recent"]).ok().stdout;
    assert!(human.contains("2 hours ago"), "{human}");
    assert!(human.contains("never"), "{human}");
}

#[test]
fn search_finds_emails_and_organisations() {
    let k = network();
    assert_eq!(
        k.json(&["search", "stmarys"])["contacts"][0]["name"],
        "Zoë Åberg"
    );
    assert_eq!(
        k.json(&["search", "hospital"])["contacts"][0]["name"],
        "Zoë Åberg"
    );
    let human = k.run(&["search", "zoe"]).ok().stdout;
    assert!(human.starts_with("Contacts (1)"), "{human}");
}
