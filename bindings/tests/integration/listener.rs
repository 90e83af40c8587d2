use std::sync::{Arc, Mutex};

use kith_ffi::{ChangeSummary, Kith, KithError, KithListener, SyncState};

use crate::{contact, met, open};

#[derive(Default)]
struct Recorder {
    changes: Mutex<Vec<ChangeSummary>>,
    states: Mutex<Vec<SyncState>>,
    /// When set, reads back into Kith from inside the callback.
    kith: Mutex<Option<Arc<Kith>>>,
    reads: Mutex<Vec<String>>,
    panics: bool,
    /// When set, fails as a listener whose foreign code threw does (uniffi hands
    /// the exception back as an error, never as a panic).
    fails: bool,
}

impl KithListener for Recorder {
    fn on_change(&self, summary: ChangeSummary) -> Result<(), KithError> {
        let kith = self.kith.lock().unwrap().clone();
        if let (Some(k), Some(id)) = (kith, summary.contact_ids.first()) {
            let name = k.get_contact(id.clone()).unwrap().name;
            self.reads.lock().unwrap().push(name);
        }
        self.changes.lock().unwrap().push(summary);
        if self.panics {
            panic!("listener panic (deliberate)");
        }
        if self.fails {
            return Err(KithError::Internal {
                reason: "an app callback failed: listener exception (deliberate)".into(),
            });
        }
        Ok(())
    }

    fn on_sync_state(&self, state: SyncState) -> Result<(), KithError> {
        self.states.lock().unwrap().push(state);
        Ok(())
    }
}

#[test]
fn listeners_hear_writes_and_may_call_back_in() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let rec = Arc::new(Recorder::default());
    *rec.kith.lock().unwrap() = Some(Arc::clone(&kith));
    let handle = kith.add_listener(rec.clone()).unwrap();
    assert_eq!(*rec.states.lock().unwrap(), vec![SyncState::Disabled]);

    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    let id = kith.log_interaction(met("Coffee", &[&ana.id])).unwrap();
    {
        let changes = rec.changes.lock().unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].contact_ids, vec![ana.id.clone()]);
        assert_eq!(changes[1].interaction_ids, vec![id]);
    }
    assert_eq!(*rec.reads.lock().unwrap(), vec!["Ana Lima", "Ana Lima"]);

    assert!(kith.remove_listener(handle));
    kith.add_contact(contact("Bo")).unwrap();
    assert_eq!(rec.changes.lock().unwrap().len(), 2);
    // Break the Kith <-> listener cycle this test made on purpose.
    *rec.kith.lock().unwrap() = None;
}

#[test]
fn a_panicking_listener_neither_fails_the_write_nor_starves_others() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let bad = Arc::new(Recorder {
        panics: true,
        ..Recorder::default()
    });
    let good = Arc::new(Recorder::default());
    kith.add_listener(bad.clone()).unwrap();
    kith.add_listener(good.clone()).unwrap();
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    assert_eq!(kith.get_contact(ana.id).unwrap().name, "Ana Lima");
    assert_eq!(bad.changes.lock().unwrap().len(), 1);
    assert_eq!(good.changes.lock().unwrap().len(), 1);
}

/// What a Kotlin/Swift/Python listener that throws becomes: an error, logged and
/// ignored. It must not be a panic: the phone build aborts on panics.
#[test]
fn a_failing_listener_neither_fails_the_write_nor_starves_others() {
    let dir = tempfile::tempdir().unwrap();
    let kith = open(&dir);
    let bad = Arc::new(Recorder {
        fails: true,
        ..Recorder::default()
    });
    let good = Arc::new(Recorder::default());
    kith.add_listener(bad.clone()).unwrap();
    kith.add_listener(good.clone()).unwrap();
    let ana = kith.add_contact(contact("Ana Lima")).unwrap();
    kith.log_interaction(met("Coffee", &[&ana.id])).unwrap();
    assert_eq!(kith.get_contact(ana.id).unwrap().name, "Ana Lima");
    assert_eq!(bad.changes.lock().unwrap().len(), 2);
    assert_eq!(good.changes.lock().unwrap().len(), 2);
}
