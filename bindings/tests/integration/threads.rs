use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use crate::{contact, met, open};

#[test]
fn threads_writing_and_reading_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let ids: Vec<String> = (0..3)
        .map(|n| {
            kith.add_contact(contact(&format!("Person {n}")))
                .unwrap()
                .id
        })
        .collect();
    let threads_n = 6;
    let per_thread = 15;
    let barrier = Arc::new(Barrier::new(threads_n));
    let workers: Vec<_> = (0..threads_n)
        .map(|t| {
            let kith = Arc::clone(&kith);
            let ids = ids.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..per_thread {
                    let who = &ids[(t + n) % ids.len()];
                    kith.log_interaction(met(&format!("t{t} n{n}"), &[who]))
                        .unwrap();
                    kith.search("person".into(), 5).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let all = kith.timeline(None, 0, 1000, false).unwrap();
    let summaries: BTreeSet<String> = all.iter().map(|i| i.summary.clone()).collect();
    assert_eq!(all.len(), threads_n * per_thread);
    assert_eq!(summaries.len(), threads_n * per_thread);
}
