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
    let mut pair = a.command();
    pair.arg("--data")
        .arg(a.data())
        .args([
            "pair",
            "--peer",
            "--listen",
            "127.0.0.1:0",
            "--ttl-min",
            "1",
            "--json",
        ])
        .stdout(Stdio::piped());
    let mut child = pair.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    line.clear();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen = v["listening"].as_str().unwrap().to_string();
    b.json(&["join", "--peer", &listen, &token, "--name", "phone"]);
    // The pairing server stops by itself once the new device synced.
    assert!(child.wait().unwrap().success());

    a.log(&["Call with Cy", "--with", "Cy", "--create-missing"]);
    let mut serve = a.command();
    serve
        .arg("--data")
        .arg(a.data())
        .args(["serve-peer", "--listen", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = serve.spawn().unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen = v["listening"].as_str().unwrap().to_string();
    let r = b.json(&["sync", "--peer", &listen]);
    assert!(r["changes_received"].as_u64().unwrap() >= 1, "{r}");
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(b.json(&["timeline"]).as_array().unwrap().len(), 1);
    // A device of another account is refused.
    let x = Kith::new();
    let mut serve = x.command();
    serve
        .arg("--data")
        .arg(x.data())
        .args(["serve-peer", "--listen", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut server = serve.spawn().unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen = v["listening"].as_str().unwrap().to_string();
    let r = b.run(&["sync", "--peer", &listen]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("not a device of this account"),
        "{}",
        r.stderr
    );
}
