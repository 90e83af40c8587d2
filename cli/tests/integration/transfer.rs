//! `kith import`, `kith export`, `kith backup`, `kith restore`.

use std::path::PathBuf;

use crate::harness::{Kith, run};

/// The repository's vCard fixtures (tests/fixtures/vcard, with their licence).
fn fixtures() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/vcard")
}

const LINKEDIN: &str = "Notes:\n\"When exporting your connection data, you may notice that some of the email addresses are missing.\"\n\nFirst Name,Last Name,URL,Email Address,Company,Position,Connected On\nZoë,Åberg,https://www.linkedin.com/in/zoe-aberg,zoe@stmarys.org,St Mary's,Chief Pharmacist,07 Dec 2025\nBruno,Lima,https://www.linkedin.com/in/bruno-lima,,Royal Free,Finance Lead,01 Feb 2024\n";

#[test]
fn vcard_import_is_idempotent_and_dry_run_writes_nothing() {
    let k = Kith::new();
    let gmail = fixtures().join("gmail-single.vcf");
    let rfc = fixtures().join("rfc6350-example.vcf");
    let (g, r) = (gmail.to_str().unwrap(), rfc.to_str().unwrap());
    let before = k.snapshot();
    let dry = k.json(&["import", "vcard", g, r, "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["created"].as_array().unwrap().len(), 2);
    assert_eq!(before, k.snapshot(), "--dry-run wrote");
    let real = k.json(&["import", "vcard", g, r]);
    assert_eq!(real["created"].as_array().unwrap().len(), 2);
    let names: Vec<String> = k
        .json(&["contact", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"Greg Dartmouth".to_string()), "{names:?}");
    let again = k.json(&["import", "vcard", g, r]);
    assert_eq!(again["created"].as_array().unwrap().len(), 0);
    assert_eq!(again["already_imported"], 2);
    assert!(
        k.run(&["import", "vcard", g])
            .ok()
            .stdout
            .starts_with("Created 0 contacts; 1 already imported")
    );
}

#[test]
fn linkedin_import_reports_likely_duplicates() {
    let k = Kith::new();
    k.add_contact("Bruno Lima", &[]);
    let csv = k.dir.path().join("Connections.csv");
    std::fs::write(&csv, LINKEDIN).unwrap();
    let v = k.json(&["import", "linkedin", csv.to_str().unwrap()]);
    assert_eq!(v["created"].as_array().unwrap().len(), 1);
    assert_eq!(v["created"][0]["name"], "Zoë Åberg");
    assert_eq!(v["likely_duplicates"][0]["name"], "Bruno Lima");
    assert_eq!(v["likely_duplicates"][0]["merge_into_name"], "Bruno Lima");
    let zoe = k.json(&["contact", "show", "zoe"]);
    assert_eq!(zoe["contact"]["organisation"], "St Mary's");
    assert_eq!(zoe["contact"]["first_met"], "2025-12-07");
    // Asked explicitly, the duplicate is created too.
    let v = k.json(&[
        "import",
        "linkedin",
        csv.to_str().unwrap(),
        "--create-duplicates",
    ]);
    assert_eq!(v["created"].as_array().unwrap().len(), 1);
    assert_eq!(k.json(&["duplicates"]).as_array().unwrap().len(), 1);
}

/// One person exported by Evolution, Gmail and Mac Address Book, imported in
/// one call: the first card is created, the others are reported as likely
/// duplicates of it (by line in a dry run, by the created id otherwise), and
/// a second import creates nothing.
#[test]
fn look_alike_cards_of_one_import_are_reported_not_doubled() {
    let k = Kith::new();
    let files: Vec<String> = [
        "John_Doe_EVOLUTION.vcf",
        "John_Doe_GMAIL.vcf",
        "John_Doe_MAC_ADDRESS_BOOK.vcf",
    ]
    .iter()
    .map(|f| fixtures().join(f).to_str().unwrap().to_string())
    .collect();
    let mut args = vec!["import", "vcard"];
    args.extend(files.iter().map(String::as_str));
    let dry_args = [args.clone(), vec!["--dry-run"]].concat();

    let before = k.snapshot();
    let dry = k.json(&dry_args);
    assert_eq!(before, k.snapshot(), "--dry-run wrote");
    assert_eq!(dry["created"].as_array().unwrap().len(), 1, "{dry}");
    assert_eq!(dry["created"][0]["source_line"], 1);
    let dups = dry["likely_duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 2, "{dry}");
    for d in dups {
        assert_eq!(d["merge_into"], serde_json::Value::Null, "{d}");
        assert_eq!(d["same_as_line"], 1);
        assert_eq!(d["merge_into_name"], "Mr. John Richter, James Doe Sr.");
        assert!(
            d["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "same email john.doe@ibm.com"),
            "{d}"
        );
    }
    let text = k.run(&dry_args).ok().stdout;
    assert!(
        text.starts_with(
            "Would create 1 contact; 0 already imported; 2 likely duplicates (left out)"
        ),
        "{text}"
    );

    let real = k.json(&args);
    assert_eq!(real["created"].as_array().unwrap().len(), 1);
    let list = k.json(&["contact", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_str().unwrap();
    for d in real["likely_duplicates"].as_array().unwrap() {
        assert_eq!(d["merge_into"], id, "{d}");
        assert_eq!(d["same_as_line"], 1);
    }

    // Again: nothing new; the look-alikes now point at the stored contact.
    let again = k.json(&args);
    assert_eq!(again["created"].as_array().unwrap().len(), 0, "{again}");
    assert_eq!(again["already_imported"], 1);
    for d in again["likely_duplicates"].as_array().unwrap() {
        assert_eq!(d["merge_into"], id, "{d}");
        assert_eq!(d["same_as_line"], serde_json::Value::Null);
    }
    assert_eq!(k.json(&["contact", "list"]).as_array().unwrap().len(), 1);
}

#[test]
fn import_errors() {
    let k = Kith::new();
    let missing = k.dir.path().join("missing.vcf");
    k.input_error(
        &["import", "vcard", missing.to_str().unwrap()],
        "cannot read",
    );
    let not_csv = k.dir.path().join("x.csv");
    std::fs::write(&not_csv, "a,b\n1,2\n").unwrap();
    k.input_error(
        &["import", "linkedin", not_csv.to_str().unwrap()],
        "is this LinkedIn's Connections.csv?",
    );
    k.input_error(&["import", "vcard"], "required arguments were not provided");
}

#[test]
fn exports_in_every_format() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &["--email", "zoe@x.org", "--org", "St Mary's"]);
    k.log(&["Coffee", "--with", "zoe", "--notes", "a, \"quoted\" note"]);
    let vcf = k.run(&["export", "vcard"]).ok().stdout;
    assert!(vcf.starts_with("BEGIN:VCARD\r\nVERSION:4.0"), "{vcf}");
    assert!(vcf.contains("FN:Zoë Åberg"), "{vcf}");
    let csv = k.run(&["export", "csv"]).ok().stdout;
    assert!(csv.lines().next().unwrap().starts_with("id,name,"), "{csv}");
    let csv = k.run(&["export", "csv", "--interactions"]).ok().stdout;
    assert!(csv.contains("Coffee"), "{csv}");
    let file = k.dir.path().join("all.json");
    let v = k.json(&["export", "json", "-o", file.to_str().unwrap()]);
    assert_eq!(v["records"], 2);
    let all: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(all["format"], "kith-export");
    assert_eq!(all["contacts"][0]["name"], "Zoë Åberg");
    // Never overwrite an earlier export.
    k.input_error(
        &["export", "json", "-o", file.to_str().unwrap()],
        "already exists",
    );
    k.input_error(
        &["export", "vcard", "--interactions"],
        "--interactions goes with",
    );
    k.input_error(&["export", "yaml"], "invalid value 'yaml'");
}

#[test]
fn backup_then_restore_gives_the_same_network() {
    let k = Kith::new();
    k.add_contact("Zoë Åberg", &["--circle", "strategic"]);
    k.json(&["project", "add", "Formulary review"]);
    k.log(&[
        "Coffee",
        "--with",
        "zoe",
        "--project",
        "formulary",
        "--follow-up",
        "Send deck",
        "--due",
        "friday",
    ]);
    k.json(&["goal", "add", "Lead the formulary", "--contact", "zoe"]);
    let file = k.dir.path().join("kith.bak");
    let fast = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"];
    let mut c = k.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(k.data())
        .arg("backup")
        .arg(&file)
        .args(fast)
        .arg("--json");
    let v = run(c).json();
    assert!(v["size_bytes"].as_u64().unwrap() > 100);

    let restored = Kith::empty();
    // Wrong passphrase (from stdin): exit 2, nothing written.
    let mut c = restored.command();
    c.arg("--data")
        .arg(restored.data())
        .arg("restore")
        .arg(&file)
        .stdin(std::process::Stdio::piped());
    let out = {
        use std::io::Write;
        let mut child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"wrong horse\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "error: wrong passphrase"
    );
    assert!(!restored.data().join("kith.redb").exists());

    let mut c = restored.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(restored.data())
        .args(["restore", file.to_str().unwrap(), "--json"]);
    let v = run(c).json();
    assert_eq!(v["contacts"], 1);
    assert_eq!(v["interactions"], 1);
    assert_eq!(v["keys"], true);
    assert_eq!(k.snapshot(), restored.snapshot(), "restored store differs");
    // The device's keys came back byte for byte, owner-only.
    let key_file = restored.data().join("keys.json");
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        std::fs::read(k.data().join("keys.json")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // --no-keys: the file restores the store and no key file.
    let bare = k.dir.path().join("bare.bak");
    let mut c = k.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(k.data())
        .arg("backup")
        .arg(&bare)
        .arg("--no-keys")
        .args(fast)
        .arg("--json");
    assert_eq!(run(c).json()["keys"], false);
    let payload = kith_core::backup::open("correct horse", &std::fs::read(&bare).unwrap()).unwrap();
    assert!(
        !payload
            .windows(b"device_key".len())
            .any(|w| w == b"device_key"),
        "key material in a --no-keys backup"
    );
    let keyless = Kith::empty();
    let mut c = keyless.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(keyless.data())
        .args(["restore", bare.to_str().unwrap(), "--json"]);
    assert_eq!(run(c).json()["keys"], false);
    assert!(!keyless.data().join("keys.json").exists());
    assert_eq!(k.snapshot(), keyless.snapshot());

    // Restoring over an existing store, a damaged file, an existing backup target.
    let mut c = restored.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(restored.data())
        .args(["restore", file.to_str().unwrap()]);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("already holds a Kith store"),
        "{}",
        r.stderr
    );
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let damaged = k.dir.path().join("damaged.bak");
    std::fs::write(&damaged, &bytes).unwrap();
    let fresh = Kith::empty();
    let mut c = fresh.command();
    c.env("KITH_PASSPHRASE", "correct horse")
        .arg("--data")
        .arg(fresh.data())
        .args(["restore", damaged.to_str().unwrap()]);
    let r = run(c);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(!fresh.data().join("kith.redb").exists());
    let mut c = k.command();
    c.env("KITH_PASSPHRASE", "x")
        .arg("--data")
        .arg(k.data())
        .arg("backup")
        .arg(&file)
        .args(fast);
    let r = run(c);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

#[test]
fn json_export_loads_into_a_new_store_unchanged() {
    let k = Kith::new();
    k.add_contact(
        "Zoë Åberg",
        &["--circle", "strategic", "--notes", "line 1\nline 2"],
    );
    k.json(&["project", "add", "Formulary review"]);
    k.json(&["goal", "add", "Lead the formulary", "--contact", "zoe"]);
    k.json(&["settings", "set", "my-organisation", "St Mary's"]);
    let id = k.log(&[
        "Coffee",
        "--with",
        "zoe",
        "--project",
        "formulary",
        "--gave",
        "support",
        "--follow-up",
        "Send deck",
        "--due",
        "friday",
    ]);
    k.log(&["Gone", "--with", "zoe"]);
    let gone = k.json(&["timeline", "--limit", "1"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    k.json(&["interaction", "delete", &gone]);
    let file = k.dir.path().join("all.json");
    k.json(&["export", "json", "-o", file.to_str().unwrap()]);
    let f = file.to_str().unwrap();

    let other = Kith::new();
    let dry = other.json(&["import", "json", f, "--dry-run"]);
    assert_eq!(dry["interactions"], 2);
    assert_eq!(
        other.json(&["contact", "list"]).as_array().unwrap().len(),
        0,
        "--dry-run wrote"
    );
    let v = other.json(&["import", "json", f]);
    assert_eq!(v["contacts"], 1);
    assert_eq!(k.snapshot(), other.snapshot(), "the loaded store differs");
    assert_eq!(
        other.json(&["interaction", "show", &id])["summary"],
        "Coffee"
    );
    // Loading it again changes nothing.
    other.json(&["import", "json", f]);
    assert_eq!(k.snapshot(), other.snapshot());

    let bad = k.dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"format": "something-else", "version": 1}"#).unwrap();
    other.input_error(
        &["import", "json", bad.to_str().unwrap()],
        "not a Kith export",
    );
    std::fs::write(&bad, br#"{"format": "kith-export", "version": 99}"#).unwrap();
    other.input_error(&["import", "json", bad.to_str().unwrap()], "newer than");
    std::fs::write(&bad, b"{ truncated").unwrap();
    other.input_error(&["import", "json", bad.to_str().unwrap()], "not JSON");
}

/// A device restored from its backup (keys included) into a new data
/// directory is still that device: it syncs through the relay with the rest of
/// the account, both ways, continuing its own entry sequence.
#[test]
fn a_restored_device_keeps_syncing() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = kith_e2e::TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let a = Kith::new();
    a.log(&["Coffee with Ana", "--with", "Ana Lima", "--create-missing"]);
    let b = crate::sync::pair_via_relay(&a, &addr, "phone");
    b.log(&["Lunch with Bo", "--with", "Bo Chen", "--create-missing"]);
    b.json(&["sync"]);

    let file = b.dir.path().join("phone.bak");
    let mut c = b.command();
    c.env("KITH_PASSPHRASE", "phone horse battery staple")
        .arg("--data")
        .arg(b.data())
        .arg("backup")
        .arg(&file)
        .args([
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
            "--json",
        ]);
    assert_eq!(run(c).json()["keys"], true);

    let restored = Kith::empty();
    let mut c = restored.command();
    c.env("KITH_PASSPHRASE", "phone horse battery staple")
        .arg("--data")
        .arg(restored.data())
        .args(["restore", file.to_str().unwrap(), "--json"]);
    assert_eq!(run(c).json()["keys"], true);

    restored.log(&["Call with Cy", "--with", "Cy", "--create-missing"]);
    let moved = restored.json(&["sync", "--relay", &addr]);
    assert!(moved["pushed_entries"].as_u64().unwrap() >= 1, "{moved}");
    a.log(&["Walk with Di", "--with", "Di", "--create-missing"]);
    a.json(&["sync"]);
    restored.json(&["sync", "--relay", &addr]);
    a.json(&["sync"]);
    assert_eq!(a.json(&["timeline"]).as_array().unwrap().len(), 4);
    assert_eq!(restored.json(&["timeline"]).as_array().unwrap().len(), 4);
}

/// A new backup's passphrase must not be easy to guess (`kith_core::strength`): refused
/// as an input error with advice, and no file is written.
#[test]
fn a_weak_backup_passphrase_is_refused_and_nothing_is_written() {
    let k = Kith::new();
    k.log(&["Coffee", "--with", "Ana", "--create-missing"]);
    let file = k.dir.path().join("weak.bak");
    for weak in ["x", "pass", "phone pass"] {
        let mut c = k.command();
        c.env("KITH_PASSPHRASE", weak)
            .arg("--data")
            .arg(k.data())
            .arg("backup")
            .arg(&file);
        let r = run(c);
        assert_eq!(r.code, 2, "{weak}: {}", r.stderr);
        assert!(r.stderr.contains("too easy to guess"), "{}", r.stderr);
        assert!(!file.exists());
    }
}

/// `kith check` on a sound store: exit 0, says so; `--json` reports clean.
#[test]
fn check_verifies_a_sound_store() {
    let k = Kith::new();
    k.log(&["Coffee", "--with", "Ana", "--create-missing"]);
    let out = k.run(&["check"]).ok();
    assert!(out.stdout.contains("The store is sound"), "{}", out.stdout);
    let j = k.json(&["check"]);
    assert_eq!(j["clean"], true);
    assert!(j["documents"].as_u64().unwrap() >= 2);
}
