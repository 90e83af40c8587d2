//! relay-load: load figures for kith-relay on loopback.
//!
//! Spawns the `kith-relay` binary (a fresh data directory under the system
//! temp dir), opens N concurrent authenticated device connections (pairs of
//! devices per account), then for each requested active count M runs M/2
//! pushers and M/2 subscribed partners for a fixed time: pushers push one
//! entry per interval (and pull every 10th round), subscribers time each
//! event from push to arrival. Reports connections held, relay RSS (total
//! and per connection), relay CPU, entries/s and push-to-subscriber latency
//! p50/p99. Bounded: connection count, duration and concurrency are flags.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ed25519_dalek::SigningKey;
use kith_protocol::{AccountId, Event, MembershipOp, RelayAddress, RelayKey, Request, SealedEntry};
use kith_relay::client::{RelayClient, client_endpoint};
use rand::RngCore;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(name = "relay-load")]
struct Args {
    /// Path of the kith-relay binary (default: next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Concurrent device connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Active device counts to measure, one phase each (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    active: Vec<usize>,
    /// Length of each active phase, seconds.
    #[arg(long, default_value_t = 15)]
    phase_s: u64,
    /// Interval between pushes of one active device, ms.
    #[arg(long, default_value_t = 1000)]
    push_interval_ms: u64,
    /// Payload size of each entry, bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Connections opened concurrently during ramp-up.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Client QUIC endpoints (UDP sockets) to spread connections over.
    #[arg(long, default_value_t = 8)]
    client_endpoints: usize,
}

struct Dev {
    key: SigningKey,
    /// The account's membership log (genesis + the pair's second device).
    membership: Vec<MembershipOp>,
    account: AccountId,
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

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match &args.relay_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .join("kith-relay"),
    };
    let data = std::env::temp_dir().join(format!("kith-relay-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut child = std::process::Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args([
            "--connections-max",
            "100000",
            "--quota-entries-per-minute",
            "1000000",
            // Every simulated account registers from 127.0.0.1.
            "--accounts-per-addr-per-hour",
            "100000000",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let address: RelayAddress = lines.next().context("relay printed nothing")??.parse()?;
    let addr: SocketAddr = address.host_port().parse()?;
    let metrics: SocketAddr = lines
        .next()
        .context("relay printed no metrics address")??
        .trim_start_matches("metrics http://")
        .trim_end_matches("/metrics")
        .parse()?;
    let result = drive(&args, addr, address.key, pid, metrics).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

/// The relay's commit-duration histogram: cumulative counts per bucket label.
fn commit_histogram(metrics: SocketAddr) -> Vec<(String, u64)> {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(metrics) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter_map(|l| l.strip_prefix("kith_relay_commit_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, v) = l.split_once("\"} ")?;
            Some((le.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
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

async fn drive(
    args: &Args,
    addr: SocketAddr,
    key: RelayKey,
    pid: u32,
    metrics: SocketAddr,
) -> Result<()> {
    let base_rss = rss_kib(pid);
    out(&format!("relay pid {pid}, RSS at start {base_rss} KiB"));
    let endpoints: Vec<quinn::Endpoint> = (0..args.client_endpoints.max(1))
        .map(|_| {
            client_endpoint("127.0.0.1:0".parse().map_err(anyhow::Error::from)?).map_err(Into::into)
        })
        .collect::<Result<_>>()?;

    // Devices: pairs per account.
    let n = args.connections.max(2) & !1;
    let mut devs = Vec::with_capacity(n);
    for _ in 0..n / 2 {
        let acct = SigningKey::from_bytes(&rand32());
        let keys = [
            SigningKey::from_bytes(&rand32()),
            SigningKey::from_bytes(&rand32()),
        ];
        let membership = kith_relay::client::placeholder_membership(&acct, &[&keys[0], &keys[1]]);
        for key in keys {
            devs.push(Dev {
                key,
                membership: membership.clone(),
                account: acct.verifying_key().into(),
            });
        }
    }
    let devs = Arc::new(devs);

    // Ramp-up: open and authenticate all connections, bounded concurrency.
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency.max(1)));
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let sem = sem.clone();
        let ep = endpoints[i % endpoints.len()].clone();
        let devs = devs.clone();
        handles.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let d = &devs[i];
            let mut c = RelayClient::connect(&ep, addr, key).await?;
            c.auth(&d.key, d.account, d.membership.clone(), None)
                .await?;
            anyhow::Ok(c)
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
    let rss = rss_kib(pid);
    out(&format!(
        "connections held: {held} of {n} ({failed} failed), ramp-up {:.1} s ({:.0} conn/s)",
        ramp.as_secs_f64(),
        held as f64 / ramp.as_secs_f64()
    ));
    out(&format!(
        "relay RSS with {held} idle connections: {:.1} MiB total, {:.1} KiB per connection above start",
        rss as f64 / 1024.0,
        (rss.saturating_sub(base_rss)) as f64 / held.max(1) as f64
    ));
    let c0 = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(5)).await;
    out(&format!(
        "relay CPU while idle: {:.1}% of one core",
        (cpu_ticks(pid) - c0) as f64 / 5.0
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
    for &m in &args.active {
        let m = m.min(n) & !1;
        let h0 = commit_histogram(metrics);
        phase(args, m, &clients, &devs, &next_seq, pid).await?;
        let h1 = commit_histogram(metrics);
        out(&format!(
            "  store commit durations in this phase: {}",
            histogram_delta(&h0, &h1)
        ));
    }
    out(&format!(
        "relay RSS at end: {:.1} MiB",
        rss_kib(pid) as f64 / 1024.0
    ));
    Ok(())
}

async fn phase(
    args: &Args,
    m: usize,
    clients: &[Arc<Mutex<RelayClient>>],
    devs: &Arc<Vec<Dev>>,
    next_seq: &Arc<Vec<AtomicU64>>,
    pid: u32,
) -> Result<()> {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let mut tasks = Vec::new();
    for pair in 0..m / 2 {
        let (pi, si) = (pair * 2, pair * 2 + 1);
        // Subscriber.
        {
            let c = clients[si].clone();
            let (stop, received, lat) = (stop.clone(), received.clone(), lat.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = c.lock().await;
                c.request(Request::Subscribe).await?;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(ev) =
                        tokio::time::timeout(Duration::from_millis(200), c.next_event()).await
                    else {
                        continue;
                    };
                    if let Event::Entries { entries } = ev? {
                        let now = start.elapsed().as_micros() as u64;
                        for e in entries {
                            let sent = e
                                .ciphertext
                                .get(..8)
                                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                                .map(u64::from_be_bytes)
                                .unwrap_or(now);
                            received.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut l) = lat.lock() {
                                l.push(now.saturating_sub(sent));
                            }
                        }
                    }
                }
                anyhow::Ok(())
            }));
        }
        // Pusher.
        {
            let c = clients[pi].clone();
            let devs = devs.clone();
            let (stop, pushed) = (stop.clone(), pushed.clone());
            let seqs = next_seq.clone();
            let interval = Duration::from_millis(args.push_interval_ms.max(1));
            let payload_bytes = args.payload_bytes.max(8);
            tasks.push(tokio::spawn(async move {
                let d = &devs[pi];
                let mut seq = seqs[pi].load(Ordering::Relaxed);
                let mut c = c.lock().await;
                // Spread the pushers over the interval.
                tokio::time::sleep(interval.mul_f64(pair as f64 / (m / 2).max(1) as f64)).await;
                let mut tick = tokio::time::interval(interval);
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let mut payload = vec![0u8; payload_bytes];
                    let t = start.elapsed().as_micros() as u64;
                    payload[..8].copy_from_slice(&t.to_be_bytes());
                    let e = SealedEntry::seal(&d.key, d.account, 1, seq, [0; 24], payload);
                    c.push(vec![e]).await?;
                    pushed.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                    seqs[pi].store(seq, Ordering::Relaxed);
                    round += 1;
                    if round.is_multiple_of(10) {
                        c.request(Request::Pull {
                            cursors: vec![kith_protocol::Cursor {
                                device: d.key.verifying_key().into(),
                                seq: seq - 1,
                            }],
                            entries_max: 100,
                            bytes_max: 65536,
                        })
                        .await?;
                    }
                }
                anyhow::Ok(())
            }));
        }
    }
    // Let the phase settle for a second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Ok(mut l) = lat.lock() {
        l.clear();
    }
    let p0 = pushed.load(Ordering::Relaxed);
    let c0 = cpu_ticks(pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.phase_s)).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - c0) as f64 / secs;
    let p1 = pushed.load(Ordering::Relaxed);
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
    out(&format!(
        "active {m} devices ({} pushing, {} subscribed), {:.0} s: {:.0} entries/s pushed, {} events received, relay CPU {:.1}% of one core, RSS {:.1} MiB",
        m / 2,
        m / 2,
        secs,
        (p1 - p0) as f64 / secs,
        received.load(Ordering::Relaxed),
        cpu,
        rss_kib(pid) as f64 / 1024.0
    ));
    out(&format!(
        "  push-to-subscriber latency over {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; task errors {errors}",
        l.len(),
        percentile(&l, 0.50) as f64 / 1000.0,
        percentile(&l, 0.99) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0
    ));
    Ok(())
}
