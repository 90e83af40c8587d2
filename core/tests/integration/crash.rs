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
/// Upper bound on creation rounds while waiting for enough kills inside it.
const CREATION_ROUNDS_MAX: usize = 300;

/// Lines the child prints around the phases the parent counts kills in.
const OPENED: &str = "opened";
const COMPACTING: &str = "compacting";
const COMPACTED: &str = "compacted";
/// Every this many writes the writer also compacts every document, between
/// `COMPACTING` and `COMPACTED` lines, so kills can be seen to land inside.
const COMPACT_EVERY: usize = 4;
/// Kills that must land in each phase for the tests to count as exercised.
const PHASE_KILLS_MIN: usize = 3;

/// The writer loop: what the child runs. Reports its progress through
/// `say`: `OPENED` once the store is open, each acknowledged id after the
/// call returned, and the compaction markers.
fn writer(dir: &std::path::Path, writes_max: usize, mut say: impl FnMut(&str)) {
    let mut store = Store::open(dir).unwrap();
    say(OPENED);
    // Compact often so kills also land inside compactions.
    store.set_compaction_policy(CompactionPolicy {
        chunks_max: 6,
        incremental_bytes_min: 0,
        write_chunks_max: 6,
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
        say(&i.id.to_string());
        if n % COMPACT_EVERY == COMPACT_EVERY - 1 {
            say(COMPACTING);
            for doc in store.doc_ids().unwrap() {
                store.compact(doc).unwrap();
            }
            say(COMPACTED);
        }
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
        out.flush().unwrap();
        writer(std::path::Path::new(&dir), usize::MAX, |line| {
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        });
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    writer(dir.path(), 10, |line| {
        acked.extend(line.parse::<InteractionId>().ok());
    });
    let s = Store::open(dir.path()).unwrap();
    for id in acked {
        s.interaction(id).unwrap();
    }
}

/// Kills a writer child in a fresh directory shortly after it starts
/// opening (and creating) the store, and counts where each kill landed:
/// before any file existed, during creation (a file exists but the child
/// never said `OPENED`), or after. Rounds go on until `PHASE_KILLS_MIN`
/// kills landed during creation (bounded); every store opens afterwards.
#[test]
fn sigkill_during_store_creation_leaves_an_openable_store() {
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let (mut before, mut during, mut after) = (0usize, 0usize, 0usize);
    let mut delay_us_max: u64 = 15_000;
    for round in 0..CREATION_ROUNDS_MAX {
        if round >= CREATION_KILLS && during >= PHASE_KILLS_MIN {
            break;
        }
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
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..delay_us_max)));
        child.kill().unwrap();
        child.wait().unwrap();
        // What the child said before it died (the pipe holds it until read).
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut rest);
        let opened = rest.lines().any(|l| l.trim_end().ends_with(OPENED));
        let any_file = std::fs::read_dir(dir.path()).unwrap().next().is_some();
        match (opened, any_file) {
            (true, _) => {
                after += 1;
                // Mostly too late: aim earlier.
                delay_us_max = (delay_us_max * 3 / 4).max(500);
            }
            (false, true) => during += 1,
            (false, false) => before += 1,
        }
        let s = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: open after a kill at creation failed: {e}"));
        s.all_contacts().unwrap();
        s.close().unwrap();
    }
    eprintln!("creation kills: {before} before, {during} during, {after} after");
    assert!(
        during >= PHASE_KILLS_MIN,
        "only {during} kills landed during creation ({before} before, {after} after)"
    );
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked: Vec<InteractionId> = Vec::new();
    let started = Instant::now();
    let (mut compacting, mut compaction_kills) = (false, 0usize);
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
        for line in rx.try_iter() {
            if line == COMPACTING {
                compacting = true;
            } else if line == COMPACTED {
                compacting = false;
            } else if let Ok(id) = line.parse::<InteractionId>() {
                acked.push(id);
            }
        }
        // The last marker was COMPACTING: the kill landed inside a compaction.
        compaction_kills += usize::from(compacting);
        compacting = false;
        let s = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("round {round}: reopen after SIGKILL failed: {e}"));
        for id in &acked {
            s.interaction(*id)
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {id} lost: {e}"));
        }
        s.close().unwrap();
    }
    assert!(!acked.is_empty(), "the children never acknowledged a write");
    assert!(
        compaction_kills >= PHASE_KILLS_MIN,
        "only {compaction_kills} of {KILLS} kills landed inside a compaction"
    );
    // The documents agree with the index after all those kills.
    let mut s = Store::open(dir.path()).unwrap();
    let dump = s.index_dump().unwrap();
    s.reindex().unwrap();
    assert_eq!(dump, s.index_dump().unwrap());
    assert!(s.all_interactions().unwrap().len() >= acked.len());
    eprintln!(
        "{} acknowledged writes over {KILLS} kills ({compaction_kills} inside a compaction) in {:?}",
        acked.len(),
        started.elapsed()
    );
}
