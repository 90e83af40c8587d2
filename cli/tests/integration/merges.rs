//! Contact merges made on devices that were offline from each other, end to
//! end with the `kith` binary: a real relay on loopback (in-process), real
//! QUIC, real peer-to-peer sync (`kith serve-peer`), real store files.

use serde_json::Value;

use kith_e2e::TestRelay;

use crate::harness::Kith;
use crate::sync::serve_peer;

/// A new device of `first`'s account, joined through the relay at `addr`.
fn join(first: &Kith, addr: &str, name: &str) -> Kith {
    crate::sync::pair_via_relay(first, addr, name)
}

fn sync(k: &Kith) {
    k.json(&["sync"]);
}

/// Live (listed) contacts: (id, name).
fn listed(k: &Kith) -> Vec<(String, String)> {
    k.json(&["contact", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// (summary, participant names) of the whole timeline, newest first.
fn timeline(k: &Kith, args: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut all = vec!["timeline"];
    all.extend_from_slice(args);
    k.json(&all)
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let names = i["participant_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_string())
                .collect();
            (i["summary"].as_str().unwrap().to_string(), names)
        })
        .collect()
}

fn show(k: &Kith, id: &str) -> Value {
    k.json(&["contact", "show", id])
}

/// Checks what the laptop and phone of the first scenario must both show.
fn assert_one_ada(k: &Kith, survivor: &str, other: &str) {
    let names: Vec<(String, String)> = listed(k)
        .into_iter()
        .filter(|(_, n)| n.starts_with("Ada"))
        .collect();
    assert_eq!(names, vec![(survivor.to_string(), "Ada Lovelace".into())]);
    let v = show(k, survivor);
    assert_eq!(v["stats"]["interaction_count"], 2, "{v}");
    assert_eq!(v["contact"]["merged_from"][0], other);
    let mine = timeline(k, &[survivor]);
    assert_eq!(mine.len(), 2);
    for (summary, names) in mine {
        assert_eq!(names, vec!["Ada Lovelace"], "{summary}");
    }
    let text = k.run(&["contact", "list"]).ok().stdout;
    assert_eq!(text.matches("Ada").count(), 1, "{text}");
}

/// Scenario 1 of issue 20: the laptop merges Lovelace into King while the
/// phone merges King into Lovelace; after syncing through the relay both
/// show one Ada (the earlier-created record), with both interactions.
#[test]
fn opposite_merges_through_the_relay_keep_one_ada() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let laptop = Kith::new();
    let lovelace = laptop.add_contact("Ada Lovelace", &[]);
    let king = laptop.add_contact("Ada King", &[]);
    laptop.log(&["Letter", "--with", &lovelace]);
    laptop.log(&["Talk about engines", "--with", &king]);
    let phone = join(&laptop, &addr, "phone");

    laptop.json(&["contact", "merge", &lovelace, "--into", &king]);
    phone.json(&["contact", "merge", &king, "--into", &lovelace]);
    sync(&laptop);
    sync(&phone);
    sync(&laptop);

    for k in [&laptop, &phone] {
        assert_one_ada(k, &lovelace, &king);
    }
    assert_eq!(laptop.snapshot(), phone.snapshot());
}

/// Scenario 2 of issue 20: the laptop merges G. Hopper into Grace Hopper;
/// the phone, offline, logs a call with G. Hopper and edits her organisation
/// and role. After sync both devices show the call on Grace's timeline, in
/// her stats and insights, the organisation filled in and the role as a
/// conflict; an edit settles it; unmerge on the phone reaches the laptop.
#[test]
fn a_call_logged_with_the_duplicate_offline_follows_the_merge_through_the_relay() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let laptop = Kith::new();
    let grace = laptop.add_contact("Grace Hopper", &["--role", "Admiral"]);
    let g = laptop.add_contact("G. Hopper", &[]);
    let phone = join(&laptop, &addr, "phone");

    laptop.json(&["contact", "merge", "G. Hopper", "--into", "Grace Hopper"]);
    phone.log(&[
        "Offline call with the duplicate",
        "--with",
        "G. Hopper",
        "--kind",
        "call",
    ]);
    phone.json(&[
        "contact",
        "edit",
        "G. Hopper",
        "--org",
        "US Navy",
        "--role",
        "Rear Admiral",
    ]);
    sync(&phone);
    sync(&laptop);
    sync(&phone);

    for k in [&laptop, &phone] {
        let names: Vec<String> = listed(k).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, vec!["Grace Hopper"]);
        let v = show(k, &grace);
        assert_eq!(v["stats"]["interaction_count"], 1, "{v}");
        assert!(v["stats"]["last_interaction_ms"].is_i64(), "{v}");
        assert_eq!(v["recent"][0]["summary"], "Offline call with the duplicate");
        assert_eq!(v["contact"]["organisation"], "US Navy");
        assert_eq!(v["contact"]["role"], "Admiral");
        assert_eq!(v["contact"]["conflicts"][0]["field"], "role");
        assert_eq!(v["contact"]["conflicts"][0]["value"], "Rear Admiral");
        let text = k.run(&["contact", "show", "Grace Hopper"]).ok().stdout;
        assert!(
            text.contains("role is also 'Rear Admiral' on G. Hopper"),
            "{text}"
        );
        assert!(text.contains("interactions  1"), "{text}");
        assert_eq!(
            timeline(k, &["Grace Hopper"]),
            vec![(
                "Offline call with the duplicate".to_string(),
                vec!["Grace Hopper".to_string()]
            )]
        );
        let insights = k.json(&["insights"]);
        assert_eq!(insights["report"]["totals"]["contacts_live"], 1);
        let report = insights.to_string();
        assert!(report.contains(&grace) && !report.contains(&g), "{report}");
        let found = k.json(&["search", "navy"]);
        assert_eq!(found["contacts"][0]["id"], grace.as_str(), "{found}");
    }

    // The user settles the role on the laptop; the phone sees it settled.
    laptop.json(&["contact", "edit", "Grace Hopper", "--role", "Admiral"]);
    sync(&laptop);
    sync(&phone);
    for k in [&laptop, &phone] {
        let v = show(k, &grace);
        assert_eq!(v["contact"]["role"], "Admiral");
        assert_eq!(v["contact"]["conflicts"], Value::Array(vec![]), "{v}");
    }

    // Unmerge on the phone: G. Hopper is back, with her call and organisation.
    let back = phone.json(&["contact", "unmerge", "G. Hopper"]);
    assert_eq!(back["id"], g.as_str());
    sync(&phone);
    sync(&laptop);
    for k in [&laptop, &phone] {
        assert_eq!(listed(k).len(), 2);
        let v = show(k, &g);
        assert_eq!(v["stats"]["interaction_count"], 1, "{v}");
        assert_eq!(v["contact"]["organisation"], "US Navy");
        let v = show(k, &grace);
        assert_eq!(v["stats"]["interaction_count"], 0, "{v}");
        assert_eq!(v["contact"]["organisation"], Value::Null);
    }
    assert_eq!(laptop.snapshot(), phone.snapshot());
    // Nothing left to unmerge: a clear input error.
    phone.input_error(&["contact", "unmerge", &g], "not merged");
}

/// Both scenarios at once with three devices: laptop and phone sync through
/// the relay, the tablet only peer to peer with the phone until the end.
#[test]
fn three_devices_with_peer_sync_in_between_converge() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let laptop = Kith::new();
    let lovelace = laptop.add_contact("Ada Lovelace", &[]);
    let king = laptop.add_contact("Ada King", &[]);
    let grace = laptop.add_contact("Grace Hopper", &[]);
    let g = laptop.add_contact("G. Hopper", &[]);
    laptop.log(&["Letter", "--with", &lovelace]);
    laptop.log(&["Talk about engines", "--with", &king]);
    let phone = join(&laptop, &addr, "phone");
    let tablet = join(&laptop, &addr, "tablet");

    // Offline from each other.
    laptop.json(&["contact", "merge", &lovelace, "--into", &king]);
    laptop.json(&["contact", "merge", &g, "--into", &grace]);
    phone.json(&["contact", "merge", &king, "--into", &lovelace]);
    tablet.log(&["Offline call with the duplicate", "--with", &g]);
    tablet.json(&["contact", "edit", &g, "--org", "US Navy"]);

    // Tablet <-> phone directly, then phone <-> relay <-> laptop.
    let (server, listen) = serve_peer(&phone);
    tablet.json(&["sync", "--peer", &listen]);
    drop(server);
    sync(&phone);
    sync(&laptop);
    // The tablet learns the laptop's merges from the phone, peer to peer.
    let (server, listen) = serve_peer(&phone);
    tablet.json(&["sync", "--peer", &listen]);
    drop(server);
    // Each device pushes its own changes to the relay: the tablet's reach
    // the laptop once the tablet itself syncs with the relay.
    sync(&tablet);
    sync(&laptop);
    sync(&phone);

    for k in [&laptop, &phone, &tablet] {
        assert_one_ada(k, &lovelace, &king);
        let v = show(k, &grace);
        assert_eq!(v["stats"]["interaction_count"], 1, "{v}");
        assert_eq!(v["contact"]["organisation"], "US Navy");
        let names: Vec<String> = listed(k).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, vec!["Ada Lovelace", "Grace Hopper"]);
    }
    assert_eq!(laptop.snapshot(), phone.snapshot());
    assert_eq!(laptop.snapshot(), tablet.snapshot());
}
