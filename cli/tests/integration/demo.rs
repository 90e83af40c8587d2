//! `kith demo`, `kith insights`, `kith report --html`.

use crate::docs_shapes::{documented, same_shape};
use crate::harness::{Kith, run};

#[test]
fn demo_in_a_temporary_directory_walks_the_flows_and_cleans_up() {
    let k = Kith::empty();
    let mut c = k.command();
    c.arg("demo");
    let r = run(c).ok();
    let out = &r.stdout;
    for needle in [
        "== Right after a meeting",
        "$ kith log 'Coffee: the formulary business case' --with",
        "Logged meal with",
        "Timeline of",
        "== Search is prefix",
        "Coffee: the formulary business case",
        "== Follow-ups past their due date",
        "overdue",
        "== Likely duplicates",
        "same email",
        "Merged ",
        "== The shape of the network",
        "now gone",
    ] {
        assert!(out.contains(needle), "demo output lacks {needle:?}:\n{out}");
    }
    let dir = out
        .lines()
        .find_map(|l| l.split(", in ").nth(1)?.strip_suffix(" (temporary)."))
        .unwrap_or_else(|| panic!("no temp dir in:\n{out}"));
    assert!(!std::path::Path::new(dir).exists(), "{dir} left behind");
}

#[test]
fn demo_into_a_data_dir_keeps_a_usable_store() {
    let k = Kith::empty();
    let summary = k.run(&["demo", "--json"]).json();
    same_shape("demo", &documented()["demo"], &summary);
    assert_eq!(summary["contacts"], 60);
    assert_eq!(summary["interactions"], 400);
    assert_eq!(
        summary["steps"][0].as_str().unwrap().split(' ').nth(1),
        Some("log")
    );
    assert!(!summary["headlines"].as_array().unwrap().is_empty());
    // 60 generated + the duplicate the tour created and merged.
    assert_eq!(
        k.json(&["contact", "list", "--all", "--limit", "1000"])
            .as_array()
            .unwrap()
            .len(),
        61
    );
    let logged = summary["logged_interaction"].as_str().unwrap();
    let i = k.json(&["interaction", "show", logged]);
    assert_eq!(i["summary"], "Coffee: the formulary business case");
    assert_eq!(i["follow_ups"].as_object().unwrap().len(), 2);
    k.input_error(&["demo"], "already holds a Kith store");
    let other = Kith::empty();
    other.failure_without_store(
        &["demo", "--contacts", "2"],
        "--contacts must be between 5 and",
    );
}

#[test]
fn insights_and_html_report() {
    let k = Kith::empty();
    k.run(&["demo", "--json"]).json();
    let v = k.json(&["insights"]);
    assert!(v["headlines"][0]["message"].is_string());
    assert!(v["report"]["totals"]["contacts_live"].as_u64().unwrap() >= 50);
    let human = k.run(&["insights"]).ok().stdout;
    assert!(human.starts_with("HEADLINES\n"), "{human}");
    assert!(human.contains("CIRCLE BALANCE"), "{human}");
    let file = k.dir.path().join("report.html");
    let r = k.json(&["report", "--html", file.to_str().unwrap()]);
    assert!(r["size_bytes"].as_u64().unwrap() > 1000);
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.contains("<svg"), "no chart");
    assert!(!html.contains("src=\"http"), "external resource");
    // An unwritable target is a failure (exit 1), not a panic.
    let bad = k.dir.path().join("no/such/dir/report.html");
    let r = k.run(&["report", "--html", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: writing "), "{}", r.stderr);
}
