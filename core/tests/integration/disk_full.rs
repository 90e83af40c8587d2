//! A `kith` store on a full disk (a small tmpfs mounted for the test; the
//! tests run as root): a write that cannot be stored fails with an error and
//! leaves nothing half-written, every write that returned is still there,
//! and once space is freed the same open store writes again (no restart).

use std::io::Write;
use std::path::PathBuf;

use kith_core::{NewInteraction, ParticipantRef, Store};

/// A tmpfs of `size_mb` mounted on a fresh directory, unmounted on drop.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size_mb: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700")])
            .arg("tmpfs")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

fn log(store: &mut Store, i: usize) -> Result<kith_core::InteractionId, kith_core::StoreError> {
    store
        .log_interaction(NewInteraction {
            summary: format!("meeting {i}"),
            notes: "n".repeat(8 * 1024),
            participants: vec![ParticipantRef::Name(format!("Person {}", i % 50))],
            create_missing: true,
            ..NewInteraction::default()
        })
        .map(|r| r.id)
        .map_err(|e| match e {
            kith_core::OpError::Store(s) => s,
            other => panic!("not a storage error: {other}"),
        })
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_they_resume_when_space_is_freed() {
    let disk = SmallDisk::mount(16);
    let dir = disk.path.join("kith");
    let mut store = Store::open(&dir).unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        acked.push(log(&mut store, i).unwrap());
    }
    // Fill the rest of the disk.
    let filler = disk.path.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xAB; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(&[0u8; 512]).is_ok() {}
    }
    let mut failed = None;
    for i in 20..2_000 {
        match log(&mut store, i) {
            Ok(id) => acked.push(id),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = failed.expect("the disk never filled");
    assert!(!e.to_string().is_empty());
    // Reads still answer, with every acknowledged write.
    assert_eq!(store.all_interactions().unwrap().len(), acked.len());

    std::fs::remove_file(&filler).unwrap();
    let more = log(&mut store, 5_000).expect("writes resume on the same open store");
    acked.push(more);
    assert_eq!(store.all_interactions().unwrap().len(), acked.len());
    store.close().unwrap();
    let mut again = Store::open(&dir).unwrap();
    let ids: std::collections::HashSet<_> = again
        .all_interactions()
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    for id in &acked {
        assert!(ids.contains(id), "acknowledged {id} lost");
    }
    // The index kept through the failure equals one rebuilt from the documents.
    let kept = again.index_dump().unwrap();
    again.reindex().unwrap();
    assert_eq!(again.index_dump().unwrap(), kept);
}
