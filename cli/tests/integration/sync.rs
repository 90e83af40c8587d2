//! init / pair / join / sync / devices / serve-peer against a real relay
//! (in-process on loopback) and a real peer server (a second `kith` process).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use kith_e2e::TestRelay;

use crate::harness::Kith;

#[test]
fn pair_join_sync_devices_through_a_relay() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let a = Kith::new();
    a.log(&["Coffee with Ana", "--with", "Ana Lima", "--create-missing"]);
    let inv = a.json(&["pair", "--relay", &addr]);
    let token = inv["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kith1-"));
    // Text mode shows the QR code.
    let text = a.run(&["pair", "--relay", &addr]).ok();
    assert!(text.stdout.contains("kith join kith1-"));
    assert!(text.stdout.contains('█'), "QR code printed");

    let b = Kith::empty();
    let joined = b.json(&["join", &token, "--name", "phone"]);
    assert!(joined["device"].is_string());
    assert_eq!(b.json(&["timeline"]).as_array().unwrap().len(), 1);
    // The token works once.
    let c = Kith::empty();
    let r = c.run(&["join", &token]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
    // A data directory with an account cannot join another one.
    let r = b.run(&["join", &token]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already belongs"), "{}", r.stderr);
    // Typos are caught before any network traffic.
    let r = c.run(&["join", "kith1-notatoken"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("not a valid pairing token"),
        "{}",
        r.stderr
    );

    b.log(&["Lunch with Bo", "--with", "Bo Chen", "--create-missing"]);
    let moved = b.json(&["sync"]);
    assert!(moved["pushed_entries"].as_u64().unwrap() >= 1);
    let moved = a.json(&["sync"]);
    assert_eq!(moved["interactions_changed"], 1);
    assert_eq!(a.json(&["timeline"]).as_array().unwrap().len(), 2);
    let text = a.run(&["sync"]).ok();
    assert!(
        text.stdout.contains("Synced with kith://"),
        "{}",
        text.stdout
    );

    let devices = a.json(&["devices"]);
    let list = devices.as_array().unwrap();
    assert_eq!(list.len(), 2, "{devices}");
    let phone = list.iter().find(|d| d["name"] == "phone").unwrap();
    let phone_id = phone["id"].as_str().unwrap().to_string();
    let r = a.json(&["devices", "revoke", &phone_id[..12]]);
    assert_eq!(r["revoked"], phone_id);
    let r = b.run(&["sync"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("device_revoked"), "{}", r.stderr);
}

#[test]
fn serve_peer_and_sync_peer_without_a_relay() {
    let a = Kith::new();
    let b = Kith::empty();
    // Same account: B joins A directly.
    let (mut pair, token, listen) = pair_peer(&a);
    b.json(&["join", "--peer", &listen, &token, "--name", "phone"]);
    // The pairing server stops by itself once the new device synced.
    assert!(pair.child.wait().unwrap().success());

    a.log(&["Call with Cy", "--with", "Cy", "--create-missing"]);
    let (server, listen) = serve_peer(&a);
    let r = b.json(&["sync", "--peer", &listen]);
    assert!(r["changes_received"].as_u64().unwrap() >= 1, "{r}");
    drop(server);
    assert_eq!(b.json(&["timeline"]).as_array().unwrap().len(), 1);
    // A device of another account is refused.
    let x = Kith::new();
    let (server, listen) = serve_peer(&x);
    let r = b.run(&["sync", "--peer", &listen]);
    drop(server);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not a device of this account"),
        "{}",
        r.stderr
    );
}

/// `kith pair --peer` on a free loopback port (one-minute token): the
/// process, the token and the address it serves on.
pub(crate) fn pair_peer(k: &Kith) -> (Background, String, String) {
    let mut pair = Background::start(
        k,
        &[
            "pair",
            "--peer",
            "--listen",
            "127.0.0.1:0",
            "--ttl-min",
            "1",
            "--json",
        ],
    );
    let token = pair.json_line()["token"].as_str().unwrap().to_string();
    let listen = pair.json_line()["listening"].as_str().unwrap().to_string();
    (pair, token, listen)
}

/// `kith serve-peer` on a free loopback port, and the address it serves on.
pub(crate) fn serve_peer(k: &Kith) -> (Background, String) {
    let mut server = Background::start(k, &["serve-peer", "--listen", "127.0.0.1:0", "--json"]);
    let listen = server.json_line()["listening"]
        .as_str()
        .unwrap()
        .to_string();
    (server, listen)
}

/// A long-running `kith` process, killed when the test ends (or fails).
pub(crate) struct Background {
    child: std::process::Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Background {
    fn start(k: &Kith, args: &[&str]) -> Background {
        let mut c = k.command();
        c.arg("--data")
            .arg(k.data())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Background { child, stdout }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    fn json_line(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.line()).unwrap()
    }
}

fn summaries(k: &Kith) -> Vec<String> {
    // Runs while the same data directory is being watched or served.
    k.json(&["timeline"])
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["summary"].as_str().unwrap().to_string())
        .collect()
}

#[track_caller]
fn eventually_has(k: &Kith, summary: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if summaries(k).iter().any(|s| s == summary) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "'{summary}' never arrived: {:?}",
            summaries(k)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn watching_through_a_relay_leaves_the_store_to_other_commands_and_pushes_their_changes() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let a = Kith::new();
    a.log(&["Before pairing", "--with", "Ana Lima", "--create-missing"]);
    let inv = a.json(&["pair", "--relay", &addr]);
    let b = Kith::empty();
    b.json(&["join", inv["token"].as_str().unwrap(), "--name", "phone"]);

    let mut wa = Background::start(&a, &["sync", "--watch"]);
    assert!(wa.line().starts_with("Watching"));
    let mut wb = Background::start(&b, &["sync", "--watch"]);
    assert!(wb.line().starts_with("Watching"));
    // `kith log` in another terminal works while the watcher runs (no
    // "store locked"), and the watcher pushes it without a manual sync.
    a.log(&["Logged while watching", "--with", "Ana Lima"]);
    eventually_has(&b, "Logged while watching");
    b.log(&["Phone call", "--with", "Bo Chen", "--create-missing"]);
    eventually_has(&a, "Phone call");
    // Reads and edits keep working in both directories.
    a.add_contact("Cy Dias", &[]);
    b.log(&["Second call", "--with", "Bo Chen"]);
    eventually_has(&a, "Second call");
    drop((wa, wb));
    let mut sa = summaries(&a);
    let mut sb = summaries(&b);
    sa.sort();
    sb.sort();
    assert_eq!(sa, sb);
}

#[test]
fn serve_peer_and_a_watching_peer_sync_live_while_other_commands_run() {
    let a = Kith::new();
    a.log(&["Before pairing", "--with", "Ana Lima", "--create-missing"]);
    let b = Kith::empty();
    let (mut pair, token, listen) = pair_peer(&a);
    // While the pairing server runs, the inviting device's store is free.
    a.log(&["During pairing", "--with", "Ana Lima"]);
    b.json(&["join", "--peer", &listen, &token, "--name", "phone"]);
    assert!(pair.child.wait().unwrap().success());
    eventually_has(&b, "Before pairing");

    let (server, listen) = serve_peer(&a);
    a.log(&["Logged while serving", "--with", "Ana Lima"]);
    let mut watcher = Background::start(&b, &["sync", "--peer", &listen, "--watch"]);
    assert!(watcher.line().starts_with("Watching peer"));
    eventually_has(&b, "Logged while serving");
    eventually_has(&b, "During pairing");
    // Both directions, live, with `kith log` on both devices meanwhile.
    b.log(&["From the phone", "--with", "Bo Chen", "--create-missing"]);
    eventually_has(&a, "From the phone");
    a.log(&["From the laptop", "--with", "Ana Lima"]);
    eventually_has(&b, "From the laptop");
    drop((server, watcher));
    let mut sa = summaries(&a);
    let mut sb = summaries(&b);
    sa.sort();
    sb.sort();
    assert_eq!(sa, sb);
}

/// A relay that registers accounts only with a token: `kith sync` without
/// one is refused saying so; `kith init --registration-token` keeps it
/// (in an owner-only sync.json) and the first sync registers with it.
#[test]
fn a_token_relay_registers_with_the_token_given_to_init() {
    let relay = TestRelay::temp(kith_relay::RelayConfig {
        registration: kith_relay::RegistrationPolicy::Token,
        ..kith_relay::RelayConfig::default()
    });
    let addr = relay.address().to_string();
    let token = kith_relay::create_token(relay.store().as_ref()).unwrap();

    let without = Kith::new();
    without.log(&["Coffee", "--with", "Ana", "--create-missing"]);
    let r = without.run(&["sync", "--relay", &addr]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("token"), "{}", r.stderr);

    let with = Kith::empty();
    with.run(&["init", "--registration-token", &token]).ok();
    with.log(&["Lunch", "--with", "Bo", "--create-missing"]);
    let moved = with.json(&["sync", "--relay", &addr]);
    assert!(moved["pushed_entries"].as_u64().unwrap() >= 1, "{moved}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(with.data().join("sync.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "sync.json holds the token");
    }
    // The token was single-use: a third account cannot reuse it.
    let again = Kith::empty();
    again.run(&["init", "--registration-token", &token]).ok();
    again.log(&["Tea", "--with", "Cy", "--create-missing"]);
    let r = again.run(&["sync", "--relay", &addr]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("token"), "{}", r.stderr);
}
