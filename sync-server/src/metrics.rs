//! Counters and gauges of a running relay, and a minimal HTTP/1.1 responder
//! serving them: `GET /health` (200 "ok"; 503 "store cannot write" after a
//! failed store write, until a probe write commits) and `GET /metrics` (Prometheus text
//! format). It reads at most 8 KiB of request head per connection, answers
//! once and closes; anything else gets 404/400.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::store::RelayStore;

/// Live counters; cheap atomic increments from the connection tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open QUIC connections.
    pub connections_current: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused (limit or shutdown).
    pub connections_refused_total: AtomicU64,
    /// Authentication failures (bad certificate, signature, revoked, token).
    pub auth_failures_total: AtomicU64,
    /// Error frames sent.
    pub errors_total: AtomicU64,
    /// Entries newly stored.
    pub entries_pushed_total: AtomicU64,
    /// Bytes of newly stored entries.
    pub bytes_pushed_total: AtomicU64,
    /// Entries sent in pull responses.
    pub entries_pulled_total: AtomicU64,
    /// Entries pushed to subscribers.
    pub entries_fanned_out_total: AtomicU64,
    /// Subscribers told to re-pull because their queue was full.
    pub subscriber_lagged_total: AtomicU64,
    /// Other nodes' pushes fanned out from the entries their notification
    /// carried (no read).
    pub cluster_pushes_carried_total: AtomicU64,
    /// Other nodes' pushes whose entries were read from the store to fan
    /// them out (too big for a notification).
    pub cluster_pushes_read_total: AtomicU64,
    /// Store commits (batches) by duration: counts per bucket of
    /// [`COMMIT_BUCKETS_MS`], the last bucket being everything slower.
    pub commit_buckets: [AtomicU64; COMMIT_BUCKETS_MS.len() + 1],
    /// Sum of commit durations, microseconds.
    pub commit_duration_us_total: AtomicU64,
    /// Write ops committed.
    pub commit_ops_total: AtomicU64,
    /// Set when a store write failed (full disk, I/O error), cleared when a
    /// later batch or probe commits: `/health` answers 503 meanwhile.
    pub store_unwritable: std::sync::atomic::AtomicBool,
    /// Store write batches that failed.
    pub store_write_failures_total: AtomicU64,
    /// Format version of the store being served (set by whoever opened it;
    /// 0 = not reported).
    pub store_format_version: AtomicU64,
}

/// Upper bounds (ms) of the commit duration histogram buckets.
pub const COMMIT_BUCKETS_MS: [u64; 7] = [1, 2, 5, 10, 20, 50, 100];

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub(crate) fn inc(c: &AtomicU64) {
        inc(c)
    }

    /// Records one store commit of `ops` write ops that took `us` microseconds.
    pub fn record_commit(&self, us: u64, ops: u64) {
        let i = COMMIT_BUCKETS_MS
            .iter()
            .position(|b| us <= b * 1000)
            .unwrap_or(COMMIT_BUCKETS_MS.len());
        inc(&self.commit_buckets[i]);
        self.commit_duration_us_total
            .fetch_add(us, Ordering::Relaxed);
        self.commit_ops_total.fetch_add(ops, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the counters plus store totals.
    pub fn render(&self, store: Option<crate::store::StoreStats>) -> String {
        let mut out = format!(
            "# HELP kith_relay_build_info The relay's version (value always 1).\n# TYPE kith_relay_build_info gauge\nkith_relay_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        let mut line = |name: &str, kind: &str, help: &str, v: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        line(
            "kith_relay_store_writable",
            "gauge",
            "1 while the store can write, 0 after a failed write until one commits.",
            u64::from(!self.store_unwritable.load(Ordering::Relaxed)),
        );
        line(
            "kith_relay_store_write_failures_total",
            "counter",
            "Store write batches that failed (full disk, I/O errors).",
            g(&self.store_write_failures_total),
        );
        line(
            "kith_relay_store_format_version",
            "gauge",
            "Format version of the relay store being served.",
            g(&self.store_format_version),
        );
        line(
            "kith_relay_connections",
            "gauge",
            "Open connections.",
            g(&self.connections_current),
        );
        line(
            "kith_relay_connections_total",
            "counter",
            "Connections accepted.",
            g(&self.connections_total),
        );
        line(
            "kith_relay_connections_refused_total",
            "counter",
            "Connections refused.",
            g(&self.connections_refused_total),
        );
        line(
            "kith_relay_auth_failures_total",
            "counter",
            "Failed authentications.",
            g(&self.auth_failures_total),
        );
        line(
            "kith_relay_errors_total",
            "counter",
            "Error frames sent.",
            g(&self.errors_total),
        );
        line(
            "kith_relay_entries_pushed_total",
            "counter",
            "Entries stored.",
            g(&self.entries_pushed_total),
        );
        line(
            "kith_relay_bytes_pushed_total",
            "counter",
            "Bytes of entries stored.",
            g(&self.bytes_pushed_total),
        );
        line(
            "kith_relay_entries_pulled_total",
            "counter",
            "Entries served by pulls.",
            g(&self.entries_pulled_total),
        );
        line(
            "kith_relay_entries_fanned_out_total",
            "counter",
            "Entries pushed to subscribers.",
            g(&self.entries_fanned_out_total),
        );
        line(
            "kith_relay_subscriber_lagged_total",
            "counter",
            "Subscribers told to re-pull.",
            g(&self.subscriber_lagged_total),
        );
        line(
            "kith_relay_cluster_pushes_carried_total",
            "counter",
            "Other nodes' pushes fanned out from their notification.",
            g(&self.cluster_pushes_carried_total),
        );
        line(
            "kith_relay_cluster_pushes_read_total",
            "counter",
            "Other nodes' pushes read from the store to fan them out.",
            g(&self.cluster_pushes_read_total),
        );
        if let Some(s) = store {
            line(
                "kith_relay_accounts",
                "gauge",
                "Registered accounts.",
                s.accounts,
            );
            line("kith_relay_entries", "gauge", "Stored entries.", s.entries);
            line("kith_relay_stored_bytes", "gauge", "Stored bytes.", s.bytes);
        }
        let mut hist = String::new();
        hist.push_str("# HELP kith_relay_commit_duration_seconds Store commit (batch) durations.\n# TYPE kith_relay_commit_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in COMMIT_BUCKETS_MS.iter().enumerate() {
            cumulative += g(&self.commit_buckets[i]);
            hist.push_str(&format!(
                "kith_relay_commit_duration_seconds_bucket{{le=\"{}\"}} {cumulative}\n",
                *b as f64 / 1000.0
            ));
        }
        cumulative += g(&self.commit_buckets[COMMIT_BUCKETS_MS.len()]);
        hist.push_str(&format!(
            "kith_relay_commit_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\nkith_relay_commit_duration_seconds_sum {}\nkith_relay_commit_duration_seconds_count {cumulative}\n",
            g(&self.commit_duration_us_total) as f64 / 1e6
        ));
        line(
            "kith_relay_commit_ops_total",
            "counter",
            "Write ops committed.",
            g(&self.commit_ops_total),
        );
        out.push_str(&hist);
        out
    }
}

/// Whether the store can write: true unless a write failed; then a probe
/// write decides (and clears the flag once it commits), so `/health` turns
/// 200 again as soon as space is freed, without waiting for a client write.
async fn health_writable(metrics: &Arc<Metrics>, store: &Arc<dyn RelayStore>) -> bool {
    if !metrics.store_unwritable.load(Ordering::Relaxed) {
        return true;
    }
    let store = store.clone();
    let ok = tokio::task::spawn_blocking(move || store.probe_write().is_ok())
        .await
        .unwrap_or(false);
    if ok {
        metrics.store_unwritable.store(false, Ordering::Relaxed);
    }
    ok
}

/// Serves `/health` and `/metrics` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    store: Arc<dyn RelayStore>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((mut sock, _)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    match sock.read(&mut buf[len..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..len]);
            let first = head.lines().next().unwrap_or("");
            let mut parts = first.split_whitespace();
            let (status, body) = match (parts.next(), parts.next()) {
                (Some("GET"), Some("/health")) => {
                    if health_writable(&metrics, &store).await {
                        ("200 OK", "ok\n".to_owned())
                    } else {
                        (
                            "503 Service Unavailable",
                            "store cannot write (disk full or failing)\n".to_owned(),
                        )
                    }
                }
                (Some("GET"), Some("/metrics")) => {
                    let stats = tokio::task::spawn_blocking(move || store.stats().ok())
                        .await
                        .ok()
                        .flatten();
                    ("200 OK", metrics.render(stats))
                }
                (Some(_), Some(_)) => ("404 Not Found", "not found\n".to_owned()),
                _ => ("400 Bad Request", "bad request\n".to_owned()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
