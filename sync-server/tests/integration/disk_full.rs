//! The relay on a full disk (a small tmpfs mounted for the test; the tests
//! run as root): writes fail with a retryable error and `/health` says 503
//! while the store cannot write, nothing acknowledged is lost, and once
//! space is freed writes resume and `/health` is 200 again, without a
//! restart (the store reopens itself after the I/O error).

use std::io::Write;
use std::path::{Path, PathBuf};

use kith_relay::client::{RelayClient, client_endpoint};

use crate::common::{Account, RelayProcess, http_get};

/// A tmpfs of `size_mb` mounted on a fresh directory, unmounted on drop.
pub(crate) struct SmallDisk {
    pub(crate) path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(size_mb: u32) -> SmallDisk {
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

/// Fills the file system holding `dir` with `filler` until ENOSPC.
pub(crate) fn fill(dir: &Path, filler: &Path) {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0xAB; 64 * 1024];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    // Also the last partial blocks.
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stalls_writes_only_until_space_is_freed() {
    let disk = SmallDisk::mount(16);
    let data = disk.path.join("relay");
    let mut p = RelayProcess::spawn(&data, &[]);
    let a = Account::new();
    let d = a.device("laptop");
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    assert_eq!(http_get(p.metrics, "/health").0, "HTTP/1.1 200 OK");

    // Push 16 KiB entries until the disk is full.
    let payload = vec![0x5A; 16 * 1024];
    let filler = disk.path.join("filler");
    fill(&disk.path, &filler);
    let mut acked = 0u64;
    let mut refused = None;
    for seq in 1..=2_000u64 {
        match c.push(vec![d.entry(seq, &payload)]).await {
            Ok(head) => acked = head,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    assert_eq!(
        refused.code(),
        Some(&kith_protocol::ErrorCode::Internal),
        "{refused}"
    );
    let (status, body) = http_get(p.metrics, "/health");
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable", "{body}");
    // Reads still work, and every acknowledged entry is there.
    let stored = c.pull_all(vec![]).await.unwrap();
    assert_eq!(stored.len() as u64, acked);

    // Free the space: health recovers by itself, writes resume, same process.
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(http_get(p.metrics, "/health").0, "HTTP/1.1 200 OK");
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    let head = c
        .push(d.entries(acked + 1, acked + 3))
        .await
        .expect("writes resume without a restart");
    assert_eq!(head, acked + 3);
    let other = Account::new().device("other");
    let mut c2 = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    assert!(
        c2.auth(&other.key, other.account, other.membership(), None)
            .await
            .unwrap(),
        "registration resumes"
    );
    assert_eq!(c.pull_all(vec![]).await.unwrap().len() as u64, acked + 3);
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the relay never exited"
    );
    p.sigterm();
    assert!(p.wait_exit(std::time::Duration::from_secs(15)).success());
}
