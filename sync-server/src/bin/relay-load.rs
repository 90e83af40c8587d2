//! relay-load: load figures for kith-relay on loopback, on one node or a
//! cluster of nodes.
//!
//! Spawns `--nodes N` `kith-relay` processes sharing one identity key file:
//! on redb (one node, a fresh data directory under the system temp dir) or
//! on the PostgreSQL shards given with `--store postgres://...` (repeatable,
//! passed to every node). Opens concurrent authenticated device connections
//! (pairs of devices per account) spread over the nodes so that the two
//! devices of an account sit on different nodes whenever N > 1: what one
//! pushes reaches the other through the cluster's fan-out. Then for each
//! requested active count M it runs M/2 pushers and M/2 subscribed partners
//! for a fixed time: pushers push `--entries-per-push` entries per interval
//! (or back to back with `--push-interval-ms 0`) and pull every 10th round;
//! subscribers time each entry from push to arrival.
//!
//! Reports, per phase: entries/s acknowledged, push-to-subscriber latency
//! p50/p99, each node's CPU, RSS and connections held (its `/metrics`), the
//! commit-duration histogram, and the longest gap between acknowledged pushes
//! (all pushers together and the worst single pusher). With
//! `--failover-cmd CMD` the first phase runs CMD (e.g. kill -9 of the
//! PostgreSQL primary and promotion of a standby) `--failover-after-s` into
//! its measured window; pushers re-send a push whose answer was an error or
//! lost (reconnecting as needed; re-sends are idempotent), and the gaps and
//! error counts around CMD are the write outage. `--verify` finally pulls
//! every pusher's log through another node and checks that every
//! acknowledged entry is there exactly once and in order.
//!
//! Bounded: connection count, duration, retries (each push is abandoned
//! after `PUSH_RETRY_MS`) and concurrency are flags or constants.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ed25519_dalek::SigningKey;
use kith_protocol::{AccountId, Event, MembershipOp, RelayAddress, RelayKey, Request, SealedEntry};
use kith_relay::client::{ClientError, RelayClient, client_endpoint};
use rand::RngCore;
use tokio::sync::Mutex;

/// How long one push may keep failing (re-sent, reconnecting) before the
/// pusher gives up: longer than any failover we measure.
const PUSH_RETRY_MS: u64 = 60_000;
/// Pause between attempts of a failing push.
const RETRY_PAUSE_MS: u64 = 20;
/// Acknowledgement times kept per phase (bounds memory at high rates).
const ACK_TIMES_MAX: usize = 4_000_000;

#[derive(Debug, Parser)]
#[command(name = "relay-load")]
struct Args {
    /// Path of the kith-relay binary (default: next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// The nodes' store: `redb` (default, one node) or a `postgres://` URL
    /// per shard (repeatable; every node gets the same list).
    #[arg(long = "store")]
    stores: Vec<String>,
    /// Relay nodes to run on the store (more than one needs PostgreSQL).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Concurrent device connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Active device counts to measure, one phase each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    active: Vec<usize>,
    /// Length of each active phase, seconds.
    #[arg(long, default_value_t = 15)]
    phase_s: u64,
    /// Interval between pushes of one active device, ms (0: back to back,
    /// the next push as soon as the previous one is acknowledged).
    #[arg(long, default_value_t = 1000)]
    push_interval_ms: u64,
    /// Entries per push.
    #[arg(long, default_value_t = 1)]
    entries_per_push: u64,
    /// Payload size of each entry, bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Connections opened concurrently during ramp-up.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Client QUIC endpoints (UDP sockets) to spread connections over.
    #[arg(long, default_value_t = 8)]
    client_endpoints: usize,
    /// A shell command run once in the first phase (a database failover).
    #[arg(long)]
    failover_cmd: Option<String>,
    /// When to run `--failover-cmd`, seconds into the measured window.
    #[arg(long, default_value_t = 5)]
    failover_after_s: u64,
    /// At the end, pull every pusher's log and check every acknowledged entry.
    #[arg(long)]
    verify: bool,
    /// Pid of a PostgreSQL postmaster whose CPU (with its children's) is
    /// reported (repeatable; default: every `postgres` process).
    #[arg(long)]
    db_pid: Vec<u32>,
}

struct Dev {
    key: SigningKey,
    /// The account's membership log (genesis + the pair's second device).
    membership: Vec<MembershipOp>,
    account: AccountId,
    /// The node this device connects to.
    node: usize,
}

/// One running relay node.
struct Node {
    child: std::process::Child,
    pid: u32,
    addr: SocketAddr,
    metrics: SocketAddr,
    data: PathBuf,
    key: RelayKey,
}

/// What the devices need to (re)connect.
struct Net {
    endpoints: Vec<quinn::Endpoint>,
    addrs: Vec<SocketAddr>,
    key: RelayKey,
}

fn rand32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status", "VmRSS:").unwrap_or(0)
}

/// utime + stime of the process, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(after) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// The parent pid of `pid`.
fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.get(s.rfind(')')? + 2..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU ticks of the database: the postmasters `pids` and their children
/// (every backend, walsender and walreceiver), or with no pids given every
/// process named `postgres` on the machine.
fn db_cpu_ticks(pids: &[u32]) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            if pids.is_empty() {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "postgres")
            } else {
                pids.contains(pid) || ppid(*pid).is_some_and(|p| pids.contains(&p))
            }
        })
        .map(cpu_ticks)
        .sum()
}

/// (busy, total) ticks of the whole machine since boot, all cores.
fn machine_ticks() -> (u64, u64) {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are not busy.
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The 1-minute load average (the machine is shared: figures come with it).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn spawn_node(
    bin: &PathBuf,
    args: &Args,
    base: &std::path::Path,
    key_file: &std::path::Path,
    i: usize,
) -> Result<Node> {
    let data = base.join(format!("node-{i}"));
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("--data-dir")
        .arg(&data)
        .arg("--key-file")
        .arg(key_file)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args([
            "--connections-max",
            "100000",
            "--quota-entries-per-minute",
            "100000000",
            // Every simulated account registers from 127.0.0.1.
            "--accounts-per-addr-per-hour",
            "100000000",
        ]);
    for s in &args.stores {
        cmd.arg("--store").arg(s);
    }
    let mut child = cmd
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let first = lines.next().context("relay printed nothing");
    let address: RelayAddress = match first {
        Ok(Ok(l)) => l.parse()?,
        _ => {
            let _ = child.kill();
            bail!("relay node {i} did not start (see its log above)");
        }
    };
    let addr: SocketAddr = address.host_port().parse()?;
    let metrics: SocketAddr = lines
        .next()
        .context("relay printed no metrics address")??
        .trim_start_matches("metrics http://")
        .trim_end_matches("/metrics")
        .parse()?;
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Node {
        child,
        pid,
        addr,
        metrics,
        data,
        key: address.key,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let postgres = !args.stores.is_empty() && args.stores != ["redb"];
    if args.nodes == 0 || (args.nodes > 1 && !postgres) {
        bail!(
            "--nodes {} needs --store postgres://... (redb runs one node)",
            args.nodes
        );
    }
    let bin = match &args.relay_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("kith-relay"),
    };
    let base = std::env::temp_dir().join(format!("kith-relay-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base)?;
    let key_file = base.join("relay.key");
    // One key for every node: made once, as an operator would.
    let st = std::process::Command::new(&bin)
        .arg("--data-dir")
        .arg(base.join("keygen"))
        .arg("--key-file")
        .arg(&key_file)
        .arg("address")
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {} address", bin.display()))?;
    if !st.success() {
        bail!("kith-relay address failed ({st})");
    }
    let mut nodes = Vec::new();
    let mut result = Ok(());
    for i in 0..args.nodes {
        match spawn_node(&bin, &args, &base, &key_file, i) {
            Ok(n) => nodes.push(n),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() && nodes.iter().any(|n| n.key != nodes[0].key) {
        result = Err(anyhow::anyhow!("the nodes present different keys"));
    }
    if let (Ok(()), Some(first)) = (&result, nodes.first()) {
        let key = first.key;
        out(&format!(
            "{} node(s) on {}, load average {} at start",
            nodes.len(),
            if postgres {
                format!("PostgreSQL ({} shard(s))", args.stores.len())
            } else {
                "redb".into()
            },
            loadavg()
        ));
        result = drive(&args, &nodes, key).await;
    }
    for n in &mut nodes {
        let _ = n.child.kill();
        let _ = n.child.wait();
        let _ = std::fs::remove_dir_all(&n.data);
    }
    let _ = std::fs::remove_dir_all(&base);
    result
}

/// The body of a node's `/metrics`.
fn scrape(metrics: SocketAddr) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(metrics) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The commit-duration histogram of all nodes: cumulative counts per bucket.
fn commit_histogram(nodes: &[Node]) -> Vec<(String, u64)> {
    let mut sum: BTreeMap<usize, (String, u64)> = BTreeMap::new();
    for n in nodes {
        let body = scrape(n.metrics);
        let buckets = body
            .lines()
            .filter_map(|l| l.strip_prefix("kith_relay_commit_duration_seconds_bucket{le=\""))
            .filter_map(|l| {
                let (le, v) = l.split_once("\"} ")?;
                Some((le.to_owned(), v.trim().parse::<u64>().ok()?))
            });
        for (i, (le, v)) in buckets.enumerate() {
            sum.entry(i).or_insert((le, 0)).1 += v;
        }
    }
    sum.into_values().collect()
}

/// A gauge of one node's `/metrics`.
fn gauge(node: &Node, name: &str) -> Option<u64> {
    scrape(node.metrics)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn histogram_delta(before: &[(String, u64)], after: &[(String, u64)]) -> String {
    let total = after.last().map_or(0, |x| x.1) - before.last().map_or(0, |x| x.1);
    let mut parts = vec![format!("{total} commits")];
    for ((le, a), (_, b)) in after.iter().zip(before) {
        let pct = if total == 0 {
            0.0
        } else {
            (a - b) as f64 * 100.0 / total as f64
        };
        parts.push(format!("<= {le} s: {pct:.1}%"));
    }
    parts.join(", ")
}

/// Per node: connections held (its gauge), RSS.
fn node_lines(nodes: &[Node]) -> String {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "node {i}: {} connections, RSS {:.1} MiB",
                gauge(n, "kith_relay_connections").map_or("?".into(), |c| c.to_string()),
                rss_kib(n.pid) as f64 / 1024.0
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn connect_dev(net: &Net, d: &Dev, ep: usize) -> Result<RelayClient, ClientError> {
    let mut c = RelayClient::connect(
        &net.endpoints[ep % net.endpoints.len()],
        net.addrs[d.node],
        net.key,
    )
    .await?;
    c.auth(&d.key, d.account, d.membership.clone(), None)
        .await?;
    Ok(c)
}

async fn drive(args: &Args, nodes: &[Node], key: RelayKey) -> Result<()> {
    for (i, n) in nodes.iter().enumerate() {
        out(&format!(
            "node {i}: pid {}, {}, RSS at start {} KiB",
            n.pid,
            n.addr,
            rss_kib(n.pid)
        ));
    }
    let base_rss: Vec<u64> = nodes.iter().map(|n| rss_kib(n.pid)).collect();
    let net = Arc::new(Net {
        endpoints: (0..args.client_endpoints.max(1))
            .map(|_| {
                client_endpoint("127.0.0.1:0".parse().map_err(anyhow::Error::from)?)
                    .map_err(Into::into)
            })
            .collect::<Result<_>>()?,
        addrs: nodes.iter().map(|n| n.addr).collect(),
        key,
    });

    // Devices: pairs per account; the pair's two devices on different nodes.
    let n = args.connections.max(2) & !1;
    let node_count = nodes.len();
    let mut devs = Vec::with_capacity(n);
    for pair in 0..n / 2 {
        let acct = SigningKey::from_bytes(&rand32());
        let keys = [
            SigningKey::from_bytes(&rand32()),
            SigningKey::from_bytes(&rand32()),
        ];
        let membership = kith_relay::client::placeholder_membership(&acct, &[&keys[0], &keys[1]]);
        for (j, key) in keys.into_iter().enumerate() {
            devs.push(Dev {
                key,
                membership: membership.clone(),
                account: acct.verifying_key().into(),
                node: (pair + j) % node_count,
            });
        }
    }
    let devs = Arc::new(devs);

    // Ramp-up: open and authenticate all connections, bounded concurrency.
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (sem, devs, net) = (sem.clone(), devs.clone(), net.clone());
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            anyhow::Ok(connect_dev(&net, &devs[i], i).await?)
        }));
    }
    let mut clients = Vec::with_capacity(n);
    let mut failed = 0usize;
    for h in handles {
        match h.await? {
            Ok(c) => clients.push(Some(c)),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    out(&format!("connect failed: {e}"));
                }
                clients.push(None);
            }
        }
    }
    let ramp = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = clients.iter().filter(|c| c.is_some()).count();
    out(&format!(
        "connections held: {held} of {n} ({failed} failed), ramp-up {:.1} s ({:.0} conn/s)",
        ramp.as_secs_f64(),
        held as f64 / ramp.as_secs_f64()
    ));
    let rss: Vec<u64> = nodes.iter().map(|n| rss_kib(n.pid)).collect();
    let total_rss: u64 = rss.iter().sum();
    let total_base: u64 = base_rss.iter().sum();
    out(&format!(
        "relay RSS with {held} idle connections: {:.1} MiB over all nodes, {:.1} KiB per connection above start; {}",
        total_rss as f64 / 1024.0,
        total_rss.saturating_sub(total_base) as f64 / held.max(1) as f64,
        node_lines(nodes)
    ));
    let c0: Vec<u64> = nodes.iter().map(|n| cpu_ticks(n.pid)).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle: f64 = nodes
        .iter()
        .zip(&c0)
        .map(|(n, c)| (cpu_ticks(n.pid) - c) as f64 / 5.0)
        .sum();
    out(&format!(
        "relay CPU while idle: {idle:.1}% of one core over all nodes"
    ));
    if held < n {
        bail!("not all connections were established");
    }

    let clients: Vec<Arc<Mutex<RelayClient>>> = clients
        .into_iter()
        .flatten()
        .map(|c| Arc::new(Mutex::new(c)))
        .collect();
    let next_seq: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(1)).collect());
    let mut most_active = 0;
    for (k, &m) in args.active.iter().enumerate() {
        let m = m.min(n) & !1;
        most_active = most_active.max(m);
        let h0 = commit_histogram(nodes);
        let failover = if k == 0 {
            args.failover_cmd.as_deref()
        } else {
            None
        };
        let ctx = PhaseCtx {
            args,
            m,
            clients: &clients,
            devs: &devs,
            next_seq: &next_seq,
            nodes,
            net: &net,
            failover,
        };
        phase(&ctx).await?;
        let h1 = commit_histogram(nodes);
        out(&format!(
            "  store commit durations in this phase (all nodes): {}",
            histogram_delta(&h0, &h1)
        ));
    }
    out(&format!("at end: {}", node_lines(nodes)));
    if args.verify {
        verify(&net, &devs, &next_seq, most_active).await?;
    }
    Ok(())
}

struct PhaseCtx<'a> {
    args: &'a Args,
    m: usize,
    clients: &'a [Arc<Mutex<RelayClient>>],
    devs: &'a Arc<Vec<Dev>>,
    next_seq: &'a Arc<Vec<AtomicU64>>,
    nodes: &'a [Node],
    net: &'a Arc<Net>,
    failover: Option<&'a str>,
}

/// What every pusher of a phase records.
#[derive(Default)]
struct PushLog {
    /// Microseconds since the phase start of every acknowledged push.
    acks_us: Vec<u64>,
    /// Per pusher, the longest gap between two of its acknowledgements (µs)
    /// and when it ended.
    worst_gap_us: Vec<(u64, u64)>,
    /// Push attempts answered by an error (or lost), by kind.
    errors: BTreeMap<String, u64>,
    /// First and last failed attempt (µs since the phase start).
    error_span_us: Option<(u64, u64)>,
}

fn error_kind(e: &ClientError) -> String {
    match e.code() {
        Some(code) => code.name().to_string(),
        None => "connection".into(),
    }
}

async fn phase(ctx: &PhaseCtx<'_>) -> Result<()> {
    let PhaseCtx {
        args,
        m,
        clients,
        devs,
        next_seq,
        nodes,
        net,
        failover,
    } = *ctx;
    let start = Instant::now();
    let now_us = move || start.elapsed().as_micros() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let lagged = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let log = Arc::new(std::sync::Mutex::new(PushLog::default()));
    let mut tasks = Vec::new();
    for pair in 0..m / 2 {
        let (pi, si) = (pair * 2, pair * 2 + 1);
        // Subscriber.
        {
            let c = clients[si].clone();
            let (stop, received, lat, lagged) =
                (stop.clone(), received.clone(), lat.clone(), lagged.clone());
            let measuring = measuring.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = c.lock().await;
                c.request(Request::Subscribe).await?;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(ev) =
                        tokio::time::timeout(Duration::from_millis(200), c.next_event()).await
                    else {
                        continue;
                    };
                    match ev? {
                        Event::Entries { entries } => {
                            let now = now_us();
                            for e in entries {
                                let sent = e
                                    .ciphertext
                                    .get(..8)
                                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                    .map(u64::from_be_bytes)
                                    .unwrap_or(now);
                                received.fetch_add(1, Ordering::Relaxed);
                                if measuring.load(Ordering::Relaxed)
                                    && let Ok(mut l) = lat.lock()
                                {
                                    l.push(now.saturating_sub(sent));
                                }
                            }
                        }
                        Event::Lagged => {
                            lagged.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                anyhow::Ok(())
            }));
        }
        // Pusher.
        {
            let c = clients[pi].clone();
            let (devs, net) = (devs.clone(), net.clone());
            let (stop, pushed, log) = (stop.clone(), pushed.clone(), log.clone());
            let seqs = next_seq.clone();
            let interval = Duration::from_millis(args.push_interval_ms);
            let payload_bytes = args.payload_bytes.max(8);
            let per_push = args.entries_per_push.max(1);
            tasks.push(tokio::spawn(async move {
                let d = &devs[pi];
                let mut seq = seqs[pi].load(Ordering::Relaxed);
                let mut c = c.lock().await;
                // Spread the pushers over the interval.
                tokio::time::sleep(interval.mul_f64(pair as f64 / (m / 2).max(1) as f64)).await;
                let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
                let mut round = 0u64;
                let (mut last_ack, mut worst) = (None::<u64>, (0u64, 0u64));
                while !stop.load(Ordering::Relaxed) {
                    if !interval.is_zero() {
                        tick.tick().await;
                    }
                    let t = now_us();
                    let batch: Vec<SealedEntry> = (seq..seq + per_push)
                        .map(|s| {
                            let mut payload = vec![0u8; payload_bytes];
                            payload[..8].copy_from_slice(&t.to_be_bytes());
                            SealedEntry::seal(&d.key, d.account, 1, s, [0; 24], payload)
                        })
                        .collect();
                    // Re-send until acknowledged (idempotent), reconnecting
                    // when the connection is gone; bounded in time.
                    let first_try = Instant::now();
                    loop {
                        let r = c.push(batch.clone()).await;
                        let e = match r {
                            Ok(head) if head == seq + per_push - 1 => break,
                            Ok(head) => bail!("push of {seq}.. acknowledged head {head}"),
                            Err(e) => e,
                        };
                        let at = now_us();
                        if let Ok(mut l) = log.lock() {
                            *l.errors.entry(error_kind(&e)).or_default() += 1;
                            let span = l.error_span_us.get_or_insert((at, at));
                            span.1 = at;
                        }
                        if first_try.elapsed() > Duration::from_millis(PUSH_RETRY_MS) {
                            bail!("push of {seq}.. failed for {PUSH_RETRY_MS} ms: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                        let lost = c.connection().close_reason().is_some()
                            || !matches!(e, ClientError::Relay { fatal: false, .. });
                        if lost && let Ok(fresh) = connect_dev(&net, d, pi).await {
                            *c = fresh;
                        }
                    }
                    let at = now_us();
                    if let Some(prev) = last_ack
                        && at - prev > worst.0
                    {
                        worst = (at - prev, at);
                    }
                    last_ack = Some(at);
                    if let Ok(mut l) = log.lock()
                        && l.acks_us.len() < ACK_TIMES_MAX
                    {
                        l.acks_us.push(at);
                    }
                    pushed.fetch_add(per_push, Ordering::Relaxed);
                    seq += per_push;
                    seqs[pi].store(seq, Ordering::Relaxed);
                    round += 1;
                    if round.is_multiple_of(10) {
                        // A pull is part of the load; one failing during a
                        // failover is not an error of the tool.
                        let _ = c
                            .request(Request::Pull {
                                cursors: vec![kith_protocol::Cursor {
                                    device: d.key.verifying_key().into(),
                                    seq: seq - 1,
                                }],
                                entries_max: 100,
                                bytes_max: 65536,
                            })
                            .await;
                    }
                }
                if let Ok(mut l) = log.lock() {
                    l.worst_gap_us.push(worst);
                }
                anyhow::Ok(())
            }));
        }
    }
    // Let the phase settle for a second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::Relaxed);
    let window_start_us = now_us();
    let p0 = pushed.load(Ordering::Relaxed);
    let r0 = received.load(Ordering::Relaxed);
    let c0: Vec<u64> = nodes.iter().map(|n| cpu_ticks(n.pid)).collect();
    let (pg0, me0, m0) = (
        db_cpu_ticks(&args.db_pid),
        cpu_ticks(std::process::id()),
        machine_ticks(),
    );
    let la0 = loadavg();
    let t0 = Instant::now();
    let mut failover_at_us = None;
    if let Some(cmd) = failover {
        tokio::time::sleep(Duration::from_secs(args.failover_after_s.min(args.phase_s))).await;
        failover_at_us = Some(now_us());
        out(&format!("  failover: running `{cmd}`"));
        let cmd = cmd.to_owned();
        let st = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh").arg("-c").arg(cmd).status()
        })
        .await??;
        out(&format!(
            "  failover command finished after {:.0} ms ({st})",
            (now_us() - failover_at_us.unwrap_or(0)) as f64 / 1000.0
        ));
    }
    let rest = Duration::from_secs(args.phase_s).saturating_sub(t0.elapsed());
    tokio::time::sleep(rest).await;
    let secs = t0.elapsed().as_secs_f64();
    let window_end_us = now_us();
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&c0)
        .map(|(n, c)| (cpu_ticks(n.pid) - c) as f64 / secs)
        .collect();
    let (pg1, me1, m1) = (
        db_cpu_ticks(&args.db_pid),
        cpu_ticks(std::process::id()),
        machine_ticks(),
    );
    let p1 = pushed.load(Ordering::Relaxed);
    let r1 = received.load(Ordering::Relaxed);
    let conns = node_lines(nodes);
    let la1 = loadavg();
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let mut errors = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                errors += 1;
                if errors <= 3 {
                    out(&format!("task {i} failed: {e}"));
                }
            }
            Err(e) => bail!("task panicked: {e}"),
        }
    }
    let mut l = lat.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    let pushing = if args.push_interval_ms == 0 {
        "back to back".to_owned()
    } else {
        format!("every {} ms", args.push_interval_ms)
    };
    out(&format!(
        "active {m} devices ({} pushing {} entries {pushing}, {} subscribed{}), {secs:.0} s: {:.0} entries/s acknowledged, {:.0} entries/s received by subscribers; load average {la0} -> {la1}",
        m / 2,
        args.entries_per_push.max(1),
        m / 2,
        if nodes.len() > 1 {
            " on another node"
        } else {
            ""
        },
        (p1 - p0) as f64 / secs,
        (r1 - r0) as f64 / secs,
    ));
    out(&format!(
        "  relay CPU per node: {} (% of one core); {conns}",
        cpu.iter()
            .map(|c| format!("{c:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Where the machine's CPU went (ticks are 1/100 s; % of one core).
    let pct = |t: u64| t as f64 / secs;
    let (busy, total) = (m1.0 - m0.0, m1.1 - m0.1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let relays: f64 = cpu.iter().sum();
    let machine = if total == 0 {
        0.0
    } else {
        busy as f64 * 100.0 * cores as f64 / total as f64
    };
    out(&format!(
        "  CPU (% of one core): relay nodes {relays:.0}, postgres {:.0}, relay-load {:.0}; whole machine {machine:.0} of {}, other processes {:.0}",
        pct(pg1 - pg0),
        pct(me1 - me0),
        cores * 100,
        (machine - relays - pct(pg1 - pg0) - pct(me1 - me0)).max(0.0),
    ));
    out(&format!(
        "  push-to-subscriber latency over {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; Lagged events {}; task errors {errors}",
        l.len(),
        percentile(&l, 0.50) as f64 / 1000.0,
        percentile(&l, 0.99) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0,
        lagged.load(Ordering::Relaxed),
    ));
    let log = log
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    let mut acks = log.acks_us;
    acks.sort_unstable();
    // The longest stretch in the measured window with no push acknowledged
    // by any node (the window's edges count as acknowledgements).
    let mut edges = vec![window_start_us];
    edges.extend(
        acks.iter()
            .copied()
            .filter(|&a| a > window_start_us && a < window_end_us),
    );
    edges.push(window_end_us);
    let (gap, gap_end) = edges
        .windows(2)
        .map(|w| (w[1] - w[0], w[1]))
        .max()
        .unwrap_or((0, 0));
    let worst = log.worst_gap_us.iter().copied().max().unwrap_or((0, 0));
    let errs = if log.errors.is_empty() {
        "none".to_owned()
    } else {
        log.errors
            .iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rel = |t: u64| match failover_at_us {
        Some(f) => format!(
            "{:+.0} ms after the failover command",
            t as f64 / 1000.0 - f as f64 / 1000.0
        ),
        None => format!("{:.1} s into the phase", t as f64 / 1e6),
    };
    out(&format!(
        "  longest gap with no acknowledged push (all pushers): {:.0} ms, ending {}; longest gap of one pusher: {:.0} ms, ending {}",
        gap as f64 / 1000.0,
        rel(gap_end),
        worst.0 as f64 / 1000.0,
        rel(worst.1),
    ));
    match log.error_span_us {
        Some((a, b)) => out(&format!(
            "  failed push attempts (re-sent): {errs}; from {} to {} ({:.0} ms)",
            rel(a),
            rel(b),
            (b - a) as f64 / 1000.0
        )),
        None => out("  failed push attempts: none"),
    }
    if errors > 0 {
        bail!("{errors} load task(s) failed");
    }
    Ok(())
}

/// Pulls each pusher's log through its partner's node: every acknowledged
/// entry exactly once, in order, nothing beyond an unacknowledged tail.
async fn verify(net: &Net, devs: &[Dev], next_seq: &[AtomicU64], active: usize) -> Result<()> {
    let t0 = Instant::now();
    let mut entries = 0u64;
    for pair in 0..active / 2 {
        let (pusher, partner) = (&devs[pair * 2], &devs[pair * 2 + 1]);
        let acked = next_seq[pair * 2].load(Ordering::Relaxed) - 1;
        let mut c = connect_dev(net, partner, pair).await?;
        let got = c.pull_all(Vec::new()).await?;
        let id: kith_protocol::DeviceId = pusher.key.verifying_key().into();
        let seqs: Vec<u64> = got
            .iter()
            .filter(|e| e.device == id)
            .map(|e| e.seq)
            .collect();
        let in_order = seqs.iter().enumerate().all(|(i, &s)| s == i as u64 + 1);
        if !in_order || (seqs.len() as u64) < acked {
            bail!(
                "verify: pusher {pair} had {acked} entries acknowledged, the relay holds {} (in order: {in_order})",
                seqs.len()
            );
        }
        entries += acked;
        c.connection().close(0u32.into(), b"done");
    }
    out(&format!(
        "verify: every acknowledged entry of {} pushers ({entries} entries) is stored exactly once and in order ({:.1} s)",
        active / 2,
        t0.elapsed().as_secs_f64()
    ));
    Ok(())
}
