//! init / pair / join / sync / devices / serve-peer against a real relay
//! (in-process on loopback) and a real peer server (a second `kith` process).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use kith_e2e::TestRelay;

use crate::harness::Kith;

/// `kith pair --relay ADDR --json --code-stdin` on `a` and `kith join` on a
/// new data directory, both running: the joiner shows its code, the script
/// hands that code to `pair`, which adds the device. Returns the new device.
pub(crate) fn pair_via_relay(a: &Kith, addr: &str, name: &str) -> Kith {
    let mut pair = Background::start(a, &["pair", "--relay", addr, "--json", "--code-stdin"]);
    let token = pair.json_line()["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("kith1-"));
    let b = Kith::empty();
    let mut join = Background::start(&b, &["join", &token, "--name", name, "--json"]);
    let code = join.json_line()["code"].as_str().unwrap().to_string();
    let req = pair.json_line();
    assert_eq!(req["request"]["code"], code.as_str(), "{req}");
    assert_eq!(req["request"]["name"], name);
    pair.write_line(&code);
    let added = pair.json_line();
    assert!(added["added"].is_string(), "{added}");
    assert!(pair.child.wait().unwrap().success());
    let joined = join.json_line();
    assert!(joined["device"].is_string(), "{joined}");
    assert!(join.child.wait().unwrap().success());
    b
}

#[test]
fn pair_join_sync_devices_through_a_relay() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let a = Kith::new();
    a.log(&["Coffee with Ana", "--with", "Ana Lima", "--create-missing"]);
    let b = pair_via_relay(&a, &addr, "phone");
    assert_eq!(b.json(&["timeline"]).as_array().unwrap().len(), 1);
    // Text mode shows the QR code, then waits for a device.
    let mut text = Background::start(&a, &["pair", "--relay", &addr]);
    let mut shown = String::new();
    while !shown.contains("Waiting for the new device") {
        let l = text.line();
        assert!(!l.is_empty(), "pair ended early: {shown}");
        shown.push_str(&l);
    }
    assert!(shown.contains("kith join kith1-"));
    assert!(shown.contains('█'), "QR code printed");
    drop(text);
    // A data directory with an account cannot join another one.
    let token = a_token(&a, &addr);
    let r = b.run(&["join", &token.0]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already belongs"), "{}", r.stderr);
    // Typos are caught before any network traffic.
    let c = Kith::empty();
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

/// A token shown by a running `kith pair` (killed when dropped).
fn a_token(a: &Kith, addr: &str) -> (String, Background) {
    let mut pair = Background::start(a, &["pair", "--relay", addr, "--json", "--code-stdin"]);
    let token = pair.json_line()["token"].as_str().unwrap().to_string();
    (token, pair)
}

/// A photographed token: another device posts first. The real joiner is
/// told someone else redeemed it; the inviter's script hands the code the
/// real device would show, which does not match, so nothing is added and
/// the other device is told it was refused.
#[test]
fn a_token_redeemed_by_another_device_is_refused_on_both_sides() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let a = Kith::new();
    let (token, mut pair) = a_token(&a, &addr);
    let thief = Kith::empty();
    let mut tj = Background::start(&thief, &["join", &token, "--name", "phone", "--json"]);
    let thief_code = tj.json_line()["code"].as_str().unwrap().to_string();
    let real = Kith::empty();
    let r = real.run(&["join", &token, "--name", "phone"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("someone else redeemed"), "{}", r.stderr);
    let req = pair.json_line();
    assert_eq!(req["request"]["code"], thief_code.as_str());
    let wrong = if thief_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    pair.write_line(wrong);
    let status = pair.child.wait().unwrap();
    assert_eq!(status.code(), Some(2));
    let status = tj.child.wait().unwrap();
    assert!(!status.success());
    assert_eq!(a.json(&["devices"]).as_array().unwrap().len(), 1);
}

#[test]
fn serve_peer_and_sync_peer_without_a_relay() {
    let a = Kith::new();
    let b = Kith::empty();
    // Same account: B joins A directly.
    let (mut pair, token, listen) = pair_peer(&a);
    join_peer(&mut pair, &b, &listen, &token);
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
            "--code-stdin",
        ],
    );
    let token = pair.json_line()["token"].as_str().unwrap().to_string();
    let listen = pair.json_line()["listening"].as_str().unwrap().to_string();
    (pair, token, listen)
}

/// `kith join --peer` on `b` while `pair` (from [`pair_peer`]) waits: the
/// joiner's code is handed to `pair`, which adds it; the joiner syncs.
fn join_peer(pair: &mut Background, b: &Kith, listen: &str, token: &str) {
    let mut join = Background::start(
        b,
        &["join", "--peer", listen, token, "--name", "phone", "--json"],
    );
    let code = join.json_line()["code"].as_str().unwrap().to_string();
    let req = pair.json_line();
    assert_eq!(req["request"]["code"], code.as_str(), "{req}");
    pair.write_line(&code);
    let joined = join.json_line();
    assert!(joined["device"].is_string(), "{joined}");
    assert!(join.child.wait().unwrap().success());
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
    pub(crate) fn start(k: &Kith, args: &[&str]) -> Background {
        Self::start_with_stderr(k, args, Stdio::null())
    }

    /// Like [`Background::start`], its stderr going to `stderr` (a file the
    /// test reads after the command ended).
    pub(crate) fn start_with_stderr(k: &Kith, args: &[&str], stderr: Stdio) -> Background {
        let mut c = k.command();
        c.arg("--data")
            .arg(k.data())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = c.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Background { child, stdout }
    }

    /// Waits (bounded) for the command to exit on its own.
    pub(crate) fn exited_within(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn write_line(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn line(&mut self) -> String {
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
pub(crate) fn eventually_has(k: &Kith, summary: &str) {
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
    let b = pair_via_relay(&a, &addr, "phone");

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
    join_peer(&mut pair, &b, &listen, &token);
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

/// `kith init` on a new data directory; returns it and the recovery code
/// it showed (once).
fn init_with_code() -> (Kith, String) {
    let k = Kith::empty();
    let r = k.run(&["init"]).ok();
    let code = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Recovery code: "))
        .unwrap_or_else(|| panic!("no recovery code shown: {}", r.stdout))
        .trim()
        .to_string();
    assert!(code.starts_with("kithr1-"), "{code}");
    (k, code)
}

/// A stolen phone revokes the laptop first; the owner wins the account
/// back with `kith recover` and the code written down at `kith init`: the
/// phone is revoked, nothing written before by either device is lost, and
/// wrong codes, another account's code and an unreachable relay get clear
/// errors that change nothing.
#[test]
fn a_stolen_phone_revokes_the_laptop_and_kith_recover_wins_the_account_back() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let (laptop, code) = init_with_code();
    laptop.log(&["Coffee with Ana", "--with", "Ana Lima", "--create-missing"]);
    laptop.json(&["sync", "--relay", &addr]);
    let phone = pair_via_relay(&laptop, &addr, "phone");
    phone.log(&["Lunch with Bo", "--with", "Bo Chen", "--create-missing"]);
    phone.json(&["sync"]);
    laptop.json(&["sync"]);
    assert_eq!(laptop.json(&["timeline"]).as_array().unwrap().len(), 2);

    // The thief revokes the laptop, which is then shut out.
    let laptop_id = laptop
        .json(&["devices"])
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["this_device"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    phone.json(&["devices", "revoke", &laptop_id]);
    let r = laptop.run(&["sync"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("device_revoked"), "{}", r.stderr);

    // Bad input changes nothing and says what to do.
    let r = laptop.run_stdin(&["recover", "--code-stdin"], "kithr1-abcd-efgh\n");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a valid recovery code"),
        "{}",
        r.stderr
    );
    let mut typo = code.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });
    let r = laptop.run_stdin(&["recover", "--code-stdin"], &format!("{typo}\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("checksum"), "{}", r.stderr);
    let (_other, other_code) = init_with_code();
    let r = laptop.run_stdin(&["recover", "--code-stdin"], &format!("{other_code}\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("use the code written down"),
        "{}",
        r.stderr
    );
    let dead = unreachable_twin(&addr);
    let r = laptop.run_stdin(
        &["recover", "--code-stdin", "--relay", &dead],
        &format!("{code}\n"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("unreachable"), "{}", r.stderr);
    // Without --code-stdin and no terminal, the code is not read from a pipe.
    let r = laptop.run_stdin(&["recover"], &format!("{code}\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--code-stdin"), "{}", r.stderr);

    // The code wins the account back: the phone is revoked, keys rotate.
    let r = laptop.run_stdin(&["recover", "--code-stdin", "--json"], &format!("{code}\n"));
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    assert_eq!(v["members"], serde_json::json!([laptop_id]), "{v}");
    let revoked = v["revoked"].as_array().unwrap();
    assert_eq!(revoked.len(), 1, "{v}");
    assert!(v["epoch"].as_u64().unwrap() >= 3, "{v}");
    let r = phone.run(&["sync"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("device_revoked"), "{}", r.stderr);
    // The phone cannot revoke the laptop again.
    let r = phone.run(&["devices", "revoke", &laptop_id]);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // Nothing written before the theft is lost, and the laptop syncs on.
    laptop.log(&["Call with Cy", "--with", "Cy", "--create-missing"]);
    laptop.json(&["sync"]);
    let summaries = summaries(&laptop);
    for s in ["Coffee with Ana", "Lunch with Bo", "Call with Cy"] {
        assert!(
            summaries.iter().any(|x| x == s),
            "{s} missing: {summaries:?}"
        );
    }
}

/// Every device lost: a new device restores a backup, then `kith recover`
/// with the code gives it new keys, makes it the only member (the lost
/// devices, whose keys the backup also held, are revoked) and it reads
/// everything: what the backup held and what the lost devices wrote to the
/// relay after the backup.
#[test]
fn every_device_lost_a_backup_and_the_code_bring_the_account_back() {
    let relay_dir = tempfile::tempdir().unwrap();
    let relay = TestRelay::start(relay_dir.path());
    let addr = relay.address().to_string();
    let (laptop, code) = init_with_code();
    laptop.log(&["Coffee with Ana", "--with", "Ana Lima", "--create-missing"]);
    laptop.json(&["sync", "--relay", &addr]);
    let phone = pair_via_relay(&laptop, &addr, "phone");
    let file = laptop.dir.path().join("kith.bak");
    let mut c = laptop.command();
    c.env("KITH_PASSPHRASE", "correct horse battery staple")
        .arg("--data")
        .arg(laptop.data())
        .args(["backup", file.to_str().unwrap()])
        .args([
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
            "--json",
        ]);
    crate::harness::run(c).json();
    // Written after the backup: only the relay holds it.
    phone.log(&["Lunch with Bo", "--with", "Bo Chen", "--create-missing"]);
    phone.json(&["sync"]);
    let lost_laptop_keys = std::fs::read(laptop.data().join("keys.json")).unwrap();

    let fresh = Kith::empty();
    let mut c = fresh.command();
    c.env("KITH_PASSPHRASE", "correct horse battery staple")
        .arg("--data")
        .arg(fresh.data())
        .args(["restore", file.to_str().unwrap(), "--json"]);
    assert_eq!(crate::harness::run(c).json()["keys"], true);
    // A first attempt at an unreachable relay changes nothing that matters:
    // the restored keys wait aside and the next attempt still carries them.
    let dead = unreachable_twin(&addr);
    let r = fresh.run_stdin(
        &["recover", "--code-stdin", "--relay", &dead],
        &format!("{code}\n"),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(fresh.data().join("keys.restored.json").exists());
    let r = fresh.run_stdin(
        &[
            "recover",
            "--code-stdin",
            "--relay",
            &addr,
            "--name",
            "new laptop",
            "--json",
        ],
        &format!("{code}\n"),
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok().stdout).unwrap();
    let me = v["device"].as_str().unwrap().to_string();
    assert_eq!(v["members"], serde_json::json!([me]), "{v}");
    assert_eq!(v["revoked"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["epochs_carried"].as_u64().unwrap() >= 1, "{v}");
    // New keys: the restored (lost) ones are gone from the directory.
    assert_ne!(
        std::fs::read(fresh.data().join("keys.json")).unwrap(),
        lost_laptop_keys
    );
    assert!(!fresh.data().join("keys.restored.json").exists());
    let summaries = summaries(&fresh);
    for s in ["Coffee with Ana", "Lunch with Bo"] {
        assert!(
            summaries.iter().any(|x| x == s),
            "{s} missing: {summaries:?}"
        );
    }
    // The lost devices, should someone find them, are out.
    for lost in [&laptop, &phone] {
        let r = lost.run(&["sync"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("device_revoked"), "{}", r.stderr);
    }
    // The new device writes and syncs under the new epoch.
    fresh.log(&["Call with Cy", "--with", "Cy", "--create-missing"]);
    assert!(fresh.json(&["sync"])["pushed_entries"].as_u64().unwrap() >= 1);
}

/// The address of relay `addr`'s key at a loopback port nothing listens on
/// (bound once, then closed): the same relay, unreachable.
fn unreachable_twin(addr: &str) -> String {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let key = addr
        .trim_start_matches("kith://")
        .split('@')
        .next()
        .unwrap();
    format!("kith://{key}@{}", closed.local_addr().unwrap())
}
