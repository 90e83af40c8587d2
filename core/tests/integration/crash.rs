//! Crash safety: a child process (this test binary re-executed with
//! `KITH_CRASH_WRITER_DIR` set) logs interactions in a loop and prints each
//! id after the call returned; the parent SIGKILLs it at random moments,
//! reopens the store, and checks that every acknowledged id is there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kith_core::{
    CompactionPolicy, InteractionId, NewContact, NewInteraction, ParticipantRef, Store,
};
use rand::Rng;

const ENV_DIR: &str = "KITH_CRASH_WRITER_DIR";
const KILLS: usize = 60;
const CREATION_KILLS: usize = 30;

/// The writer loop: what the child runs. Returns the ids it acknowledged.
fn writer(dir: &std::path::Path, writes_max: usize, mut ack: impl FnMut(InteractionId)) {
    let mut store = Store::open(dir).unwrap();
    // Compact often so kills also land inside compactions.
    store.set_compaction_policy(CompactionPolicy {
        chunks_max: 6,
        incremental_bytes_min: 0,
    });
    let name = "Crash Test Dummy";
    let who = match store.contacts_named(name).unwrap().first() {
        Some(c) => c.id,
        None => store.add_contact(NewContact::named(name)).unwrap().id,
    };
    for n in 0..writes_max {
        let i = store
            .log_interaction(NewInteraction {
                summary: format!("write {n}"),
                notes: "x".repeat(n % 300),
                participants: vec![ParticipantRef::Id(who)],
                ..NewInteraction::default()
            })
            .unwrap();
        ack(i.id);
    }
}

/// In the child: run the writer, printing acknowledgements. In a normal test
/// run: run a short writer loop in-process and check its acknowledgements.
#[test]
fn crash_writer_child() {
    if let Ok(dir) = std::env::var(ENV_DIR) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        writer(std::path::Path::new(&dir), usize::MAX, |id| {
            writeln!(out, "{id}").unwrap();
            out.flush().unwrap();
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    writer(dir.path(), 10, |id| acked.push(id));
    let s = Store::open(dir.path()).unwrap();
    for id in acked {
        s.interaction(id).unwrap();
    }
}

/// Kills a writer child in a fresh directory within `delay_ms_max` of its
/// start, so some kills land while the store file is being created.
#[test]
fn sigkill_during_store_creation_leaves_an_openable_store() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    for round in 0..CREATION_KILLS {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // "ready" is printed just before the store is opened (and created).
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 && !line.trim_end().ends_with("ready") {
            line.clear();
        }
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..15_000)));
        child.kill().unwrap();
        child.wait().unwrap();
        let s = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: open after a kill at creation failed: {e}"));
        s.all_contacts().unwrap();
        s.close().unwrap();
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<InteractionId> = Vec::new();
    let started = Instant::now();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the child is writing, then kill it after a random delay.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.ends_with("ready") => break,
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..80)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        // A line cut by the kill does not parse and was not acknowledged.
        acked.extend(
            rx.try_iter()
                .filter_map(|line| line.parse::<InteractionId>().ok()),
        );
        let s = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        for id in &acked {
            s.interaction(*id)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {id} lost: {e}"));
        }
        s.close().unwrap();
    }
    assert!(!acked.is_empty(), "the children never acknowledged a write");
    // The documents agree with the index after all those kills.
    let mut s = Store::open(dir.path()).unwrap();
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
    assert!(s.all_interactions().unwrap().len() >= acked.len());
    eprintln!(
        "{} acknowledged writes over {KILLS} kills in {:?}",
        acked.len(),
        started.elapsed()
    );
}
