//! Operating the binary: defaults, token command, config file, health and
//! metrics, graceful shutdown on SIGTERM.

use std::time::Duration;

use kith_protocol::ErrorCode;
use kith_relay::client::{RelayClient, client_endpoint};

use crate::common::{Account, RelayProcess, code_of, http_get, metric};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = RelayProcess::spawn(dir.path(), &[]);
    let (status, body) = http_get(p.metrics, "/health");
    assert!(status.contains("200"), "{status}");
    assert_eq!(body, "ok\n");
    let (status, _) = http_get(p.metrics, "/nope");
    assert!(status.contains("404"));

    let a = Account::new();
    let d = a.device("laptop");
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    c.auth(&d.key, d.account, d.membership(), None)
        .await
        .unwrap();
    c.push(d.entries(1, 3)).await.unwrap();
    let mut bad = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    bad.challenge = [0; 32];
    let _ = bad.auth(&d.key, d.account, d.membership(), None).await;
    bad.connection().close(0u32.into(), b"done");
    // The refused connection goes away; the good one stays.
    let mut m = String::new();
    for _ in 0..100 {
        m = http_get(p.metrics, "/metrics").1;
        if metric(&m, "kith_relay_connections") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&m, "kith_relay_entries"), 3);
    assert_eq!(metric(&m, "kith_relay_accounts"), 1);
    assert_eq!(metric(&m, "kith_relay_connections"), 1);
    assert_eq!(metric(&m, "kith_relay_auth_failures_total"), 1);
    assert!(metric(&m, "kith_relay_stored_bytes") > 0);
    assert!(metric(&m, "kith_relay_errors_total") >= 1);
    assert!(metric(&m, "kith_relay_commit_ops_total") >= 2);
    assert!(m.contains("kith_relay_commit_duration_seconds_bucket{le=\"+Inf\"}"));

    p.sigterm();
    // The connected client is told the relay is going away.
    let e = tokio::time::timeout(Duration::from_secs(10), c.read_msg())
        .await
        .unwrap();
    assert!(
        matches!(
            e.as_ref().map_err(|e| e.code()),
            Err(Some(ErrorCode::ShuttingDown))
        ),
        "{e:?}"
    );
    let status = p.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_and_token_policy() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["token", "create"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.len() >= 32);
    let p = RelayProcess::spawn(dir.path(), &["--registration", "token"]);
    let a = Account::new();
    let d = a.device("laptop");
    let ep = client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    assert_eq!(
        code_of(c.auth(&d.key, d.account, d.membership(), None).await),
        ErrorCode::RegistrationRequired
    );
    let mut c = RelayClient::connect(&ep, p.addr, p.key).await.unwrap();
    assert!(
        c.auth(&d.key, d.account, d.membership(), Some(token))
            .await
            .unwrap()
    );
}

/// The packaged /etc/kith-relay/relay.toml documents its settings as
/// commented `#key = value` lines: with every one of them uncommented (the
/// first of each key, the rest are alternatives) the relay must accept the
/// file, so the example never names a key the relay refuses.
#[test]
fn every_setting_the_packaged_config_documents_is_accepted() {
    let text = include_str!("../../debian/relay.toml");
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let Some(setting) = line.strip_prefix('#') else {
            lines.push(line.to_owned());
            continue;
        };
        let Some((key, _)) = setting.split_once(" = ") else {
            continue;
        };
        if !key.is_empty()
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && seen.insert(key.to_owned())
        {
            lines.push(setting.to_owned());
        }
    }
    assert!(seen.len() >= 15, "documented settings found: {seen:?}");
    let cfg = dir.path().join("relay.toml");
    let data = dir.path().join("data");
    let body = lines
        .join("\n")
        .replace("/var/lib/kith-relay", &data.display().to_string());
    std::fs::write(&cfg, body).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--config")
        .arg(&cfg)
        .arg("address")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the packaged config's settings, uncommented, were refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_file_env_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("relay.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:9123\"\npublic_host = \"relay.example.org\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--config")
        .arg(&cfg)
        .env("KITH_RELAY_DATA_DIR", dir.path().join("data"))
        .arg("address")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let addr: kith_protocol::RelayAddress = line.trim().parse().unwrap();
    assert_eq!((addr.host.as_str(), addr.port), ("relay.example.org", 9123));
    assert!(dir.path().join("data/relay.key").exists());

    std::fs::write(&cfg, "listen_typo = 1\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kith-relay"))
        .arg("--config")
        .arg(&cfg)
        .arg("address")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config"));
}

/// The relay's data directory is 0700 and `relay.redb` / `relay.key` are
/// 0600 when the relay runs under umask 022 (the common default, which
/// would give 0755/0644), and a data directory left open is tightened.
#[cfg(unix)]
#[test]
fn data_dir_and_files_are_owner_only_under_umask_022() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("relay-data");
    let run = || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask 022 && exec \"$0\" --data-dir \"$1\" token create")
            .arg(env!("CARGO_BIN_EXE_kith-relay"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    run();
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&dir.join("relay.redb")), 0o600, "relay.redb");
    assert_eq!(mode(&dir.join("relay.key")), 0o600, "relay.key");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        dir.join("relay.redb"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    run();
    assert_eq!(mode(&dir), 0o700, "data directory tightened");
    assert_eq!(mode(&dir.join("relay.redb")), 0o600, "relay.redb tightened");
}
