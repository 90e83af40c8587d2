//! Throwaway PostgreSQL servers for tests (feature `test-support`): the
//! relay's PostgreSQL backend is tested against the real server, never a
//! stand-in.
//!
//! [`PgServer::start`] runs `initdb` and `postgres` from the Debian packages
//! (`/usr/lib/postgresql/<version>/bin`, or `$KITH_PG_BIN`) in a fresh temp
//! directory, listening on 127.0.0.1 only, on a free port, with its unix
//! socket in that directory. When the tests run as root (CI), both run as
//! the `postgres` user, which owns the directory. If the binaries are
//! missing and we are root, `apt-get install -y postgresql` installs them;
//! otherwise the start panics saying what to install: a PostgreSQL test never
//! skips silently.
//!
//! Lifetime: the server runs under a small `sh` watchdog that waits for EOF
//! on its stdin, a pipe from this process; when the [`PgServer`] is dropped
//! OR this process dies (also by SIGKILL), the pipe closes and the watchdog
//! stops postgres (fast shutdown). [`PgServer::shared`] gives every test of
//! a binary one server; its temp directory is removed by the next run (the
//! directory names the owning pid; directories of dead pids are deleted).
//! [`PgServer::database`] makes a fresh database per test, dropped with it.
//!
//! Test-only code: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after starting.
const START_TIMEOUT_MS: u64 = 60_000;
/// Prefix of the servers' temp directories (stale ones are removed).
const DIR_PREFIX: &str = "kith-pg-";

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PgServer {
    /// The directory holding `data/`, the socket and `server.log`.
    pub dir: PathBuf,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The directory of `initdb`, `postgres`, `pg_basebackup`.
    pub bin: PathBuf,
    watchdog: Option<Child>,
}

/// A fresh database on a [`PgServer`], dropped (with its connections) when
/// this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    /// Its `postgres://` URL.
    pub url: String,
    name: String,
    admin_url: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The directory of the newest installed PostgreSQL's binaries.
fn find_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KITH_PG_BIN") {
        return Some(PathBuf::from(p));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

/// The binaries, installing Debian's `postgresql` package when missing (as root).
pub fn postgres_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(b) = find_bin() {
            return b;
        }
        assert!(
            is_root(),
            "PostgreSQL is not installed and the tests do not run as root: install it \
             (apt-get install postgresql) or point KITH_PG_BIN at its bin directory"
        );
        for args in [&["update"][..], &["install", "-y", "postgresql"][..]] {
            let st = Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .expect("running apt-get");
            assert!(st.success(), "apt-get {args:?} failed");
        }
        find_bin().expect("postgresql installed but no /usr/lib/postgresql/*/bin/postgres")
    })
    .clone()
}

/// Runs `cmd` (a program of `bin`) as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Removes the directories of servers whose test process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn log_tail(dir: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(dir.join("server.log")) {
        let _ = f.read_to_string(&mut s);
    }
    let mut start = s.len().saturating_sub(4000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_owned()
}

impl PgServer {
    /// One server for every test of this process (started on first use).
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| PgServer::start(&[]))
    }

    /// Initialises and starts a new server with extra `postgresql.conf`
    /// settings (`name = value` lines).
    pub fn start(settings: &[&str]) -> PgServer {
        let (bin, dir) = Self::init(settings);
        Self::run(bin, dir)
    }

    /// Like [`start`](Self::start), with TLS on (certificate and key in PEM)
    /// and every TCP connection but the harness's own to the `postgres`
    /// database required to use it (`hostnossl ... reject` in `pg_hba.conf`).
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> PgServer {
        let (bin, dir) = Self::init(&["ssl = on"]);
        let data = dir.join("data");
        std::fs::write(data.join("server.crt"), cert_pem).expect("server.crt");
        std::fs::write(data.join("server.key"), key_pem).expect("server.key");
        let hba = data.join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "hostnossl postgres postgres 127.0.0.1/32 trust\n\
                 hostnossl all all 127.0.0.1/32 reject\n{rest}"
            ),
        )
        .expect("writing pg_hba.conf");
        // postgres refuses a key others can read, and must own what it reads.
        for f in ["server.crt", "server.key", "pg_hba.conf"] {
            let path = data.join(f);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            if is_root() {
                let st = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .expect("chown");
                assert!(st.success(), "chown of {} failed", path.display());
            }
        }
        Self::run(bin, dir)
    }

    fn init(settings: &[&str]) -> (PathBuf, PathBuf) {
        let bin = postgres_bin();
        remove_stale_dirs();
        let dir = Self::make_dir();
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut conf = String::from("\n# kith tests\n");
        for s in settings {
            conf.push_str(s);
            conf.push('\n');
        }
        let conf_path = dir.join("data").join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("writing postgresql.conf");
        (bin, dir)
    }

    /// A streaming-replication standby of `primary`, named `name`
    /// (`application_name`, for `synchronous_standby_names`), made with
    /// `pg_basebackup -R` (the primary needs `wal_level = replica`, the default).
    pub fn standby_of(primary: &PgServer, name: &str) -> PgServer {
        let bin = primary.bin.clone();
        let dir = Self::make_dir();
        let out = as_postgres(&bin.join("pg_basebackup"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres", "-R", "-X", "stream", "--no-sync"])
            .arg(format!("--dbname=application_name={name}"))
            .output()
            .expect("running pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::run(bin, dir)
    }

    fn make_dir() -> PathBuf {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
            .tempdir()
            .expect("temp dir")
            .keep();
        if is_root() {
            let st = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
            assert!(st.success(), "chown of {} failed", dir.display());
        }
        dir
    }

    fn run(bin: PathBuf, dir: PathBuf) -> PgServer {
        let port = free_port();
        // The watchdog: postgres in the background, then wait for EOF on
        // stdin (our end closes when we drop it or die), then fast shutdown.
        let script = r#"data="$1"; shift; "$@" -D "$data" </dev/null >>"$(dirname "$data")/server.log" 2>&1 & pg=$!; cat >/dev/null; kill -INT $pg 2>/dev/null; wait $pg"#;
        let watchdog = as_postgres(Path::new("sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(dir.join("data"))
            .arg(bin.join("postgres"))
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting postgres");
        let server = PgServer {
            dir,
            port,
            bin,
            watchdog: Some(watchdog),
        };
        server.wait_ready();
        server
    }

    /// Waits until the server accepts connections (it may be a standby
    /// replaying, which still accepts read connections).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            match postgres::Client::connect(&self.url("postgres"), postgres::NoTls) {
                Ok(_) => return,
                Err(e) if Instant::now() >= deadline => panic!(
                    "postgres on port {} did not start: {e}\n{}",
                    self.port,
                    log_tail(&self.dir)
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to the `postgres` database.
    pub fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to postgres: {e}\n{}", log_tail(&self.dir)))
    }

    /// A fresh, empty database.
    pub fn database(&self) -> PgDatabase {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "kith_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PgDatabase {
            url: self.url(&name),
            name,
            admin_url: self.url("postgres"),
        }
    }

    /// The postmaster's pid (from `postmaster.pid`).
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILLs the postmaster (a crash, not a shutdown) and waits for the
    /// watchdog to see it gone.
    pub fn kill_hard(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if let Some(mut w) = self.watchdog.take() {
            drop(w.stdin.take());
            let _ = w.wait();
        }
    }

    /// Promotes a standby to primary and waits until it accepts writes.
    pub fn promote(&self) {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("promote")
            .arg("-w")
            .arg("-D")
            .arg(self.dir.join("data"))
            .output()
            .expect("running pg_ctl promote");
        assert!(
            out.status.success(),
            "pg_ctl promote failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // EOF on the watchdog's stdin: it stops postgres and exits.
            drop(w.stdin.take());
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A relay node on a PostgreSQL store, running `run` on its own runtime
/// thread on 127.0.0.1 (as [`crate::testkit::TestRelay`] does for redb):
/// several of them on one database with one key are one relay.
#[derive(Debug)]
pub struct PgRelayNode {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The relay's identity key (shared by every node of the relay).
    pub key: ed25519_dalek::SigningKey,
    /// Its store (its own connections).
    pub store: std::sync::Arc<crate::PgStore>,
    /// Its counters.
    pub metrics: std::sync::Arc<crate::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    endpoint: OnceLock<quinn::Endpoint>,
}

impl PgRelayNode {
    /// Starts a node on the shards `urls` with identity `key`.
    pub fn start(
        urls: &[String],
        key: &ed25519_dalek::SigningKey,
        config: crate::RelayConfig,
    ) -> PgRelayNode {
        let store = std::sync::Arc::new(crate::PgStore::connect(urls).expect("PgStore::connect"));
        let metrics = std::sync::Arc::new(crate::Metrics::default());
        let relay = crate::Relay {
            config,
            identity: key.clone(),
            store: store.clone(),
            metrics: metrics.clone(),
        };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("local addr");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                crate::run(relay, socket, async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("relay run");
            });
        });
        PgRelayNode {
            addr,
            key: key.clone(),
            store,
            metrics,
            stop: Some(stop),
            thread: Some(thread),
            endpoint: OnceLock::new(),
        }
    }

    /// The relay's key (the same on every node).
    pub fn relay_key(&self) -> kith_protocol::RelayKey {
        kith_protocol::RelayKey::from(self.key.verifying_key())
    }

    /// The `kith://` address of this node.
    pub fn address(&self) -> kith_protocol::RelayAddress {
        kith_protocol::RelayAddress {
            key: self.relay_key(),
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
        }
    }

    /// A client that completed the handshake (call from a tokio runtime).
    pub async fn hello(&self) -> crate::client::RelayClient {
        let endpoint = self.endpoint.get_or_init(|| {
            crate::client::client_endpoint("127.0.0.1:0".parse().unwrap()).unwrap()
        });
        crate::client::RelayClient::connect(endpoint, self.addr, self.relay_key())
            .await
            .expect("connect")
    }

    /// A client authenticated as `device_key` of `account`.
    pub async fn connect_as(
        &self,
        device_key: &ed25519_dalek::SigningKey,
        account: kith_protocol::AccountId,
        membership: Vec<kith_protocol::MembershipOp>,
    ) -> crate::client::RelayClient {
        let mut c = self.hello().await;
        c.auth(device_key, account, membership, None)
            .await
            .expect("auth");
        c
    }

    /// Stops the node gracefully and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PgRelayNode {
    fn drop(&mut self) {
        self.shutdown();
    }
}
