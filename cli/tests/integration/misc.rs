//! Data directory, init, projects, goals, settings, reindex, usage errors.

use crate::harness::{Kith, run};

#[test]
fn data_dir_comes_from_flag_then_kith_home() {
    let k = Kith::empty();
    let home = k.dir.path().join("home");
    let mut c = k.command();
    c.env("KITH_HOME", &home).arg("init");
    run(c).ok();
    assert!(home.join("kith.redb").exists());
    // --data wins over KITH_HOME.
    let mut c = k.command();
    c.env("KITH_HOME", &home)
        .arg("--data")
        .arg(k.data())
        .args(["contact", "list"]);
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no Kith store in"), "{}", r.stderr);
    let mut c = k.command();
    c.env("KITH_HOME", &home)
        .args(["contact", "add", "Ana", "--json"]);
    run(c).ok();
    let mut c = k.command();
    c.env("KITH_HOME", &home)
        .args(["contact", "list", "--json"]);
    assert_eq!(run(c).json().as_array().unwrap().len(), 1);
}

#[test]
fn init_is_idempotent_and_commands_need_a_store() {
    let k = Kith::empty();
    let r = k.run(&["timeline"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1);
    assert!(
        !k.data().exists(),
        "a read command created the data directory"
    );
    let v = k.json(&["init"]);
    assert_eq!(v["created"], true);
    k.add_contact("Ana", &[]);
    let v = k.json(&["init"]);
    assert_eq!(v["created"], false);
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 1);
    // A file where the data directory should be.
    let file = k.dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let mut c = k.command();
    c.arg("--data").arg(&file).arg("init");
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not a directory"), "{}", r.stderr);
}

#[test]
fn a_damaged_store_is_a_failure_not_a_panic() {
    let k = Kith::new();
    let path = k.data().join("kith.redb");
    std::fs::write(&path, b"this is not a redb file at all, just some bytes").unwrap();
    let before = std::fs::read(&path).unwrap();
    let r = k.run(&["contact", "list"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(
        before,
        std::fs::read(&path).unwrap(),
        "the damaged file was modified"
    );
}

#[test]
fn projects_goals_settings_reindex() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &[]);
    k.add_contact("Bruno Lima", &[]);
    let p = k.json(&[
        "project",
        "add",
        "Formulary review",
        "--description",
        "Q1 work",
    ]);
    assert_eq!(p["status"], "active");
    let p2 = k.json(&[
        "project",
        "edit",
        "formulary",
        "--status",
        "done",
        "--name",
        "Formulary review 2026",
    ]);
    assert_eq!(p2["status"], "done");
    assert_eq!(p2["id"], p["id"]);
    assert_eq!(
        k.json(&["project", "list"])[0]["name"],
        "Formulary review 2026"
    );
    assert!(
        k.run(&["project", "list"])
            .ok()
            .stdout
            .contains("Formulary review 2026")
    );
    k.input_error(&["project", "add", ""], "project name must not be empty");
    k.input_error(
        &["project", "add", "X", "--status", "late"],
        "unknown project status 'late'",
    );
    k.input_error(
        &["project", "edit", "nope", "--status", "done"],
        "unknown project 'nope'",
    );

    let g = k.json(&[
        "goal",
        "add",
        "Become clinical director",
        "--priority",
        "1",
        "--contact",
        "zoe",
    ]);
    assert_eq!(g["priority"], 1);
    assert_eq!(g["contact_names"], serde_json::json!(["Zoë Åberg"]));
    let g2 = k.json(&[
        "goal",
        "edit",
        "become",
        "--contact",
        "bruno",
        "--remove-contact",
        "zoe",
        "--status",
        "achieved",
    ]);
    assert_eq!(g2["contact_names"], serde_json::json!(["Bruno Lima"]));
    assert_eq!(g2["status"], "achieved");
    assert_eq!(k.json(&["goal", "list"]).as_array().unwrap().len(), 1);
    assert!(
        k.run(&["goal", "list"])
            .ok()
            .stdout
            .contains("Become clinical director")
    );
    k.input_error(
        &["goal", "add", "X", "--priority", "4"],
        "priority must be 1, 2 or 3",
    );
    k.input_error(
        &["goal", "add", "X", "--contact", "nobody"],
        "unknown contact 'nobody'",
    );
    k.input_error(&["goal", "add", ""], "goal title must not be empty");
    k.input_error(
        &["goal", "edit", "become", "--remove-contact", "zoe"],
        "is not linked",
    );
    k.input_error(
        &["goal", "edit", "become", "--status", "won"],
        "unknown goal status 'won'",
    );

    let s = k.json(&["settings", "set", "my-organisation", "St Mary's"]);
    assert_eq!(s["my_organisation"], "St Mary's");
    let s = k.json(&["settings", "set", "cadence.strategic", "45"]);
    assert_eq!(s["cadence_days"]["strategic"], 45);
    assert_eq!(
        k.json(&["settings", "show"])["cadence_days"]["strategic"],
        45
    );
    assert!(k.run(&["settings", "show"]).ok().stdout.contains("45 days"));
    k.input_error(
        &["settings", "set", "colour", "blue"],
        "unknown setting 'colour'",
    );
    k.input_error(
        &["settings", "set", "strategic-target", "2"],
        "expected a number between 0 and 1",
    );
    k.input_error(
        &["settings", "set", "cadence.family", "10"],
        "unknown circle 'family'",
    );

    k.log(&["Coffee", "--with", "zoe"]);
    let before = k.snapshot();
    let v = k.json(&["reindex"]);
    assert_eq!(v["contacts"], 2);
    assert_eq!(v["interactions"], 1);
    assert_eq!(before, k.snapshot(), "reindex changed what queries return");
}

#[test]
fn usage_errors_are_one_line_with_exit_code_2() {
    let k = Kith::new();
    k.input_error(&["frobnicate"], "unrecognized subcommand 'frobnicate'");
    k.input_error(&["contact", "add"], "required arguments were not provided");
    k.input_error(&["timeline", "--limit", "many"], "invalid value 'many'");
    let help = k.run(&["--help"]).ok().stdout;
    assert!(help.contains("Log an interaction"), "{help}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let k = Kith::empty();
    k.run(&["demo", "--json"]).json();
    // ~400 interactions as JSON is far more than a pipe buffer, so the
    // binary is still writing when the reader goes away.
    let mut c = k.command();
    c.arg("--data")
        .arg(k.data())
        .args(["timeline", "--limit", "1000", "--json"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn json_contact_lists_are_not_cut_at_the_table_default() {
    let k = Kith::empty();
    k.run(&[
        "demo",
        "--json",
        "--contacts",
        "250",
        "--interactions",
        "300",
    ])
    .json();
    assert!(k.json(&["contact", "list"]).as_array().unwrap().len() > 200);
    assert_eq!(k.run(&["contact", "list"]).ok().stdout.lines().count(), 201);
    assert_eq!(
        k.json(&["contact", "list", "--limit", "7"])
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn while_another_process_holds_the_store_reads_work_and_writes_fail_cleanly() {
    let k = Kith::new();
    k.add_contact("Ana", &[]);
    let held = kith_core::Store::open(k.data()).unwrap();
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 1);
    let r = k.run(&["log", "from the cli", "--with", "ana"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // One notice that it waits, then one error line once the wait is over.
    let lines: Vec<&str> = r.stderr.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    assert!(lines[0].contains("waiting for it"), "{}", r.stderr);
    assert!(lines[1].contains("open elsewhere"), "{}", r.stderr);
    held.close().unwrap();
    assert_eq!(k.json(&["timeline"]).as_array().unwrap().len(), 0);
    k.log(&["from the cli", "--with", "ana"]);
}

#[test]
fn a_write_waits_briefly_for_a_store_another_process_is_holding() {
    let k = Kith::new();
    k.add_contact("Ana", &[]);
    let held = kith_core::Store::open(k.data()).unwrap();
    let mut c = k.command();
    c.arg("--data")
        .arg(k.data())
        .args(["log", "waited", "--with", "ana", "--json"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    // Released only once the child says it is waiting: the wait path is what is tested, on a
    // machine of any speed.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("waiting for it") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the CLI says it waits for the store");
    held.close().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"], "waited");
    assert_eq!(k.json(&["timeline"]).as_array().unwrap().len(), 1);
}
