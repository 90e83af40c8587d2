//! The QUIC relay: accepts connections, runs the protocol state machine of
//! each (hello → challenge → auth → requests), and owns the single writer
//! thread that group-commits every state change to the store.
//!
//! Data flow per connection: one task reads frames from the client's
//! bidirectional stream and handles them in order; a second task owns the send
//! half and writes frames from a queue bounded in frames and bytes. Responses
//! wait for queue space (a client that does not read stalls only itself);
//! subscription events are offered without waiting, and when a subscriber's
//! queue is full the event is dropped and the subscriber receives one
//! `Event::Lagged` (re-pull) instead, so a slow device never grows memory.
//! Writes go to the writer thread over a bounded channel; a push is acked (and
//! fanned out) only after the batch holding it committed.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use kith_protocol::membership::OPS_PER_MESSAGE_MAX;
use kith_protocol::msg::{HELLO_VERSIONS_MAX, PUSH_ENTRIES_MAX, TOKEN_BYTES_MAX, close_code};
use kith_protocol::{
    AccountId, ClientMsg, DeviceId, ErrorCode, Event, FRAME_BYTES_MAX, FrameError, MembershipOp,
    PROTOCOL_VERSIONS, RelayAddress, RelayKey, Request, Response, SealedSnapshot, ServerMsg,
    Signature,
};
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::{RegistrationPolicy, RelayConfig};
use crate::metrics::Metrics;
use crate::store::cluster::ClusterEvent;
use crate::store::{RelayStore, StoreError, WriteOp, WriteOutcome};

/// Bytes reserved for message overhead around an entry in a frame: an entry
/// must fit in a pull response alone.
pub const ENTRY_OVERHEAD_BYTES: usize = 64;
/// Largest frame accepted before authentication: Hello, mailbox takes and
/// Auth (which may carry the membership ops the relay lacks: a few hundred
/// bytes each) stay small, so an anonymous peer cannot make the relay buffer
/// megabytes per connection.
pub const PREAUTH_FRAME_BYTES_MAX: usize = 64 * 1024;
/// Most cursors in a pull or snapshot.
pub const CURSORS_MAX: usize = 4096;
/// How long a closing connection waits for the client to read its last frames.
const CLOSE_LINGER_MS: u64 = 2000;
/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE_MS: u64 = 10_000;
/// How often expired mailbox blobs and stale rate windows are deleted.
const MAILBOX_SWEEP_MS: u64 = 60_000;
/// Window of the per-address registration limit.
const REGISTRATION_WINDOW_MS: u64 = 3_600_000;
/// Frame bytes kept beside a pull page's entries for the response framing.
pub const PULL_FRAMING_BYTES: usize = 16 * 1024;
/// Frame bytes kept for the envelope of a snapshot range (up to
/// [`CURSORS_MAX`] cursors of 41 bytes, keys, nonce, signature, framing).
pub const SNAPSHOT_RANGE_OVERHEAD_BYTES: usize = 200 * 1024;

/// A relay ready to run: configuration, identity, store and metrics.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Policy and limits.
    pub config: RelayConfig,
    /// The relay's identity key (its TLS key and the key clients pin).
    pub identity: SigningKey,
    /// Storage.
    pub store: Arc<dyn RelayStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl Relay {
    /// The relay's public key.
    pub fn key(&self) -> RelayKey {
        RelayKey::from(self.identity.verifying_key())
    }

    /// The address clients use to reach this relay at `addr`.
    pub fn address(&self, addr: SocketAddr) -> RelayAddress {
        RelayAddress {
            key: self.key(),
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// TLS configuration failed.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] kith_protocol::tls::TlsError),
    /// The QUIC crypto config was refused.
    #[error("QUIC crypto setup failed: {0}")]
    QuicCrypto(String),
    /// The UDP socket could not be used.
    #[error("cannot use the UDP socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The writer thread could not be started or died.
    #[error("store writer thread failed: {0}")]
    Writer(String),
}

/// QUIC transport settings for a relay that holds many mostly idle
/// connections: one bidirectional stream per connection, no uni streams, no
/// datagrams, flow-control windows sized for one maximum frame in flight.
pub fn transport_config(frame_bytes_max: usize, idle_timeout_ms: u64) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    let window =
        u32::try_from(frame_bytes_max.min(FRAME_BYTES_MAX) + 64 * 1024).unwrap_or(u32::MAX);
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .stream_receive_window(quinn::VarInt::from_u32(window))
        .receive_window(quinn::VarInt::from_u32(window))
        .send_window(u64::from(window) * 2)
        .datagram_receive_buffer_size(None)
        // Path MTU probing keeps a probe in flight and grows each connection's
        // send buffer past one 1200-byte datagram: about 1.2 KiB more per held
        // connection (heaptrack on relay-load) for ~17% fewer packets on bulk
        // transfers, which a relay of small sealed entries rarely has.
        .mtu_discovery_config(None)
        .max_idle_timeout(
            quinn::IdleTimeout::try_from(Duration::from_millis(idle_timeout_ms)).ok(),
        );
    t
}

/// The quinn server configuration for `relay` (TLS pinned to its identity).
pub fn server_config(relay: &Relay) -> Result<quinn::ServerConfig, RunError> {
    let tls = kith_protocol::tls::server_config(&relay.identity)?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| RunError::QuicCrypto(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config(
        relay.config.limits.frame_bytes_max,
        relay.config.limits.idle_timeout_ms,
    )));
    Ok(cfg)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

type Frame = Arc<Vec<u8>>;
/// A queued frame holds permits of its connection's byte budget until written.
/// Boxed: tokio allocates a channel's first block of 32 slots when the channel
/// is made, so every held connection pays 32 slots (8 bytes each boxed, 24
/// as a tuple) whether or not anything is ever queued.
type Queued = Box<(Frame, OwnedSemaphorePermit)>;
/// Open connections per device, so a revocation can close them.
type ConnectionMap = HashMap<(AccountId, DeviceId), Vec<(u64, quinn::Connection)>>;
type WriteReply = oneshot::Sender<Result<WriteOutcome, StoreError>>;

#[derive(Debug)]
struct Subscriber {
    conn_id: u64,
    device: DeviceId,
    queue: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    lagged: Arc<AtomicBool>,
}

#[derive(Debug)]
struct Shared {
    config: RelayConfig,
    relay_key: RelayKey,
    store: Arc<dyn RelayStore>,
    metrics: Arc<Metrics>,
    writer: mpsc::Sender<(WriteOp, WriteReply)>,
    subscribers: Mutex<HashMap<AccountId, Vec<Subscriber>>>,
    connections: Mutex<ConnectionMap>,
    rates: Mutex<HashMap<AccountId, (u64, u32)>>,
    /// Unauthenticated requests per source address: (minute window start
    /// ms, requests in it); at most [`UNAUTH_ADDRS_MAX`] addresses tracked.
    unauth_rates: Mutex<HashMap<std::net::IpAddr, (u64, u32)>>,
    /// Accounts registered per source address: (hour window start ms,
    /// accounts in it); bounded like `unauth_rates`.
    registrations: Mutex<HashMap<std::net::IpAddr, (u64, u32)>>,
    next_conn_id: AtomicU64,
    /// Last authentication per account since start (for `kith-relay accounts`).
    last_seen: Mutex<HashMap<AccountId, u64>>,
    started: std::time::Instant,
}

/// The admin socket's view of a running relay. Weak, so an admin request
/// in flight never keeps the writer (and so shutdown) waiting.
#[derive(Debug)]
struct LiveHandle(std::sync::Weak<Shared>);

impl crate::admin::LiveRelay for LiveHandle {
    fn connections(&self) -> u64 {
        self.0
            .upgrade()
            .map_or(0, |s| s.metrics.connections_current.load(Ordering::Relaxed))
    }

    fn last_seen_ms(&self, account: &AccountId) -> Option<u64> {
        self.0
            .upgrade()
            .and_then(|s| lock(&s.last_seen).get(account).copied())
    }

    fn close_account(&self, account: &AccountId) {
        if let Some(s) = self.0.upgrade() {
            s.close_account(account);
        }
    }

    fn uptime_ms(&self) -> u64 {
        self.0.upgrade().map_or(0, |s| {
            u64::try_from(s.started.elapsed().as_millis()).unwrap_or(u64::MAX)
        })
    }
}

/// The admin socket of a relay run by [`run_with_admin`].
#[derive(Debug)]
pub struct AdminSocket {
    /// Bound by [`crate::admin::bind`].
    pub listener: std::os::unix::net::UnixListener,
    /// The same store as the relay's (the admin commands need its redb side).
    pub store: Arc<crate::store::RedbStore>,
    /// The data directory.
    pub data_dir: std::path::PathBuf,
}

/// Source addresses the unauthenticated rate limit tracks at once; beyond
/// it (after dropping finished windows) new addresses are refused, so the
/// map cannot be grown without bound by spoofed or many addresses.
const UNAUTH_ADDRS_MAX: usize = 65_536;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps cannot leave them inconsistent in a
    // way that matters more than refusing service; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Counts one unauthenticated request from `addr`; false when that
    /// address is over its per-minute allowance.
    fn unauth_allowed(&self, addr: std::net::IpAddr) -> bool {
        let limit = self.config.limits.unauth_requests_per_addr_per_minute;
        self.count_in_window(&self.unauth_rates, addr, 60_000, 1, limit)
    }

    /// Adds `add` to `addr`'s count in its current window of `window_ms`
    /// and says whether the count is within `limit`. The map holds at most
    /// [`UNAUTH_ADDRS_MAX`] addresses; when full of live windows a new
    /// address is refused.
    fn count_in_window(
        &self,
        map: &Mutex<HashMap<std::net::IpAddr, (u64, u32)>>,
        addr: std::net::IpAddr,
        window_ms: u64,
        add: u32,
        limit: u32,
    ) -> bool {
        let now = self.config.clock.now_ms();
        let mut m = lock(map);
        if m.len() >= UNAUTH_ADDRS_MAX && !m.contains_key(&addr) {
            m.retain(|_, (start, _)| now.saturating_sub(*start) < window_ms);
            if m.len() >= UNAUTH_ADDRS_MAX {
                return false;
            }
        }
        let (start, n) = m.entry(addr).or_insert((now, 0));
        if now.saturating_sub(*start) >= window_ms {
            *start = now;
            *n = 0;
        }
        *n = n.saturating_add(add);
        if add == 0 { *n < limit } else { *n <= limit }
    }

    /// Counts `add` registrations from `addr` in its current hour; false
    /// when the address is at its allowance
    /// ([`crate::Limits::accounts_per_addr_per_hour`]).
    fn registration_allowed(&self, addr: std::net::IpAddr, add: u32) -> bool {
        let limit = self.config.limits.accounts_per_addr_per_hour;
        self.count_in_window(
            &self.registrations,
            addr,
            REGISTRATION_WINDOW_MS,
            add,
            limit,
        )
    }

    /// The per-address registration check: in the store when it keeps
    /// cluster-wide windows (several nodes, one allowance), else in this
    /// process's map. `add` new accounts are counted; `Err(retry_after_ms)`
    /// when the address is at its allowance. A store that cannot answer
    /// refuses nothing.
    async fn registration_window(&self, addr: std::net::IpAddr, add: u32) -> Result<(), u64> {
        if self.store.cluster_bus().is_none() {
            return if self.registration_allowed(addr, add) {
                Ok(())
            } else {
                Err(self.registration_retry_ms(addr))
            };
        }
        let mut h = Sha256::new();
        h.update(b"kith-relay registrations per address\0");
        match addr {
            std::net::IpAddr::V4(a) => h.update(a.octets()),
            std::net::IpAddr::V6(a) => h.update(a.octets()),
        }
        let key: [u8; 32] = h.finalize().into();
        let limit = self.config.limits.accounts_per_addr_per_hour;
        let r = self
            .read(move |s| {
                s.registration_window_add(&key, add, limit, REGISTRATION_WINDOW_MS)
                    .unwrap_or(Ok(None))
            })
            .await;
        match r {
            Ok(None) => Ok(()),
            Ok(Some(retry_after_ms)) => Err(retry_after_ms),
            Err(e) => {
                warn!(error = %e, "cluster registration window unavailable; not limiting");
                Ok(())
            }
        }
    }

    /// When `addr`'s registration window ends.
    fn registration_retry_ms(&self, addr: std::net::IpAddr) -> u64 {
        let now = self.config.clock.now_ms();
        lock(&self.registrations)
            .get(&addr)
            .map_or(0, |(start, _)| {
                (start + REGISTRATION_WINDOW_MS).saturating_sub(now)
            })
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome, StoreError> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Backend {
            op: "writer queue",
            source: "the store writer stopped".into(),
        };
        self.writer.send((op, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn RelayStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Backend {
                op: "read task",
                source: Box::new(e),
            })?
    }

    fn fan_out(
        &self,
        account: &AccountId,
        from: &DeviceId,
        entries: Vec<kith_protocol::SealedEntry>,
    ) {
        if entries.is_empty() {
            return;
        }
        let subs = lock(&self.subscribers);
        let Some(list) = subs.get(account) else {
            return;
        };
        if !list.iter().any(|s| s.device != *from) {
            return;
        }
        let n = entries.len() as u64;
        let Ok(frame) = kith_protocol::encode_frame(
            &ServerMsg::Event(Event::Entries { entries }),
            FRAME_BYTES_MAX,
        ) else {
            return;
        };
        let frame = Arc::new(frame);
        let permits = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for s in list.iter().filter(|s| s.device != *from) {
            let Ok(permit) = s.budget.clone().try_acquire_many_owned(permits) else {
                if !s.lagged.swap(true, Ordering::AcqRel) {
                    Metrics::inc(&self.metrics.subscriber_lagged_total);
                }
                continue;
            };
            match s.queue.try_send(Box::new((frame.clone(), permit))) {
                Ok(()) => {
                    self.metrics
                        .entries_fanned_out_total
                        .fetch_add(n, Ordering::Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if !s.lagged.swap(true, Ordering::AcqRel) {
                        Metrics::inc(&self.metrics.subscriber_lagged_total);
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Sends new membership ops to every subscriber of the account (they
    /// are small and rare; a full queue marks the subscriber lagged, and a
    /// lagged device re-reads membership with its next pull round).
    fn fan_out_membership(&self, account: &AccountId, ops: Vec<MembershipOp>) {
        if ops.is_empty() {
            return;
        }
        let subs = lock(&self.subscribers);
        let Some(list) = subs.get(account) else {
            return;
        };
        let Ok(frame) = kith_protocol::encode_frame(
            &ServerMsg::Event(Event::Membership { ops }),
            FRAME_BYTES_MAX,
        ) else {
            return;
        };
        let frame = Arc::new(frame);
        let permits = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for s in list.iter() {
            let Ok(permit) = s.budget.clone().try_acquire_many_owned(permits) else {
                s.lagged.store(true, Ordering::Release);
                continue;
            };
            if s.queue.try_send(Box::new((frame.clone(), permit))).is_err() {
                s.lagged.store(true, Ordering::Release);
            }
        }
    }

    /// The entry rate check: in the store when it keeps cluster-wide windows
    /// (several nodes, one limit), else in this process's map. A store that
    /// cannot answer refuses nothing (the push itself will fail or succeed).
    async fn rate_check_cluster(&self, account: &AccountId, n: u32) -> Result<(), ErrorCode> {
        if self.store.cluster_bus().is_none() {
            return self.rate_check(account, n);
        }
        let limit = self.config.limits.quota_entries_per_minute;
        let acct = *account;
        let r = self
            .read(move |s| {
                s.rate_window_add(&acct, n, limit, 60_000)
                    .unwrap_or(Ok(None))
            })
            .await;
        match r {
            Ok(None) => Ok(()),
            Ok(Some(retry_after_ms)) => Err(ErrorCode::QuotaRate {
                entries_per_minute: limit,
                retry_after_ms,
            }),
            Err(e) => {
                warn!(error = %e, "cluster rate window unavailable; not limiting this push");
                Ok(())
            }
        }
    }

    /// Fixed one-minute window per account.
    fn rate_check(&self, account: &AccountId, n: u32) -> Result<(), ErrorCode> {
        let limit = self.config.limits.quota_entries_per_minute;
        let now = self.config.clock.now_ms();
        let mut rates = lock(&self.rates);
        let w = rates.entry(*account).or_insert((now, 0));
        if now.saturating_sub(w.0) >= 60_000 {
            *w = (now, 0);
        }
        if w.1.saturating_add(n) > limit {
            return Err(ErrorCode::QuotaRate {
                entries_per_minute: limit,
                retry_after_ms: (w.0 + 60_000).saturating_sub(now),
            });
        }
        w.1 += n;
        Ok(())
    }

    /// Tells every subscriber `Lagged` (they pull): events may have been
    /// missed (the cluster listener reconnected).
    fn lag_all(&self) {
        let Ok(frame) = kith_protocol::encode_frame(&ServerMsg::Event(Event::Lagged), 64) else {
            return;
        };
        let frame = Arc::new(frame);
        let permits = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        for s in lock(&self.subscribers).values().flatten() {
            Metrics::inc(&self.metrics.subscriber_lagged_total);
            let sent = s
                .budget
                .clone()
                .try_acquire_many_owned(permits)
                .ok()
                .is_some_and(|p| s.queue.try_send(Box::new((frame.clone(), p))).is_ok());
            if !sent {
                // Sent after the next frame that fits.
                s.lagged.store(true, Ordering::Release);
            }
        }
    }

    fn has_subscribers(&self, account: &AccountId, except: Option<&DeviceId>) -> bool {
        lock(&self.subscribers)
            .get(account)
            .is_some_and(|l| l.iter().any(|s| Some(&s.device) != except))
    }

    /// Acts on another node's commit: fans out its new entries or
    /// membership ops to this node's subscribers (read from the store: the
    /// event is only a hint), closes revoked devices' connections.
    async fn on_cluster_event(&self, event: ClusterEvent) {
        match event {
            ClusterEvent::Lost => self.lag_all(),
            ClusterEvent::Revoked { account, device } => self.close_device(&account, &device),
            ClusterEvent::AccountDeleted { account } => self.close_account(&account),
            ClusterEvent::Membership { account, from, to } => {
                if !self.has_subscribers(&account, None) {
                    return;
                }
                let n = usize::try_from(to.saturating_sub(from).saturating_add(1))
                    .unwrap_or(usize::MAX)
                    .min(OPS_PER_MESSAGE_MAX);
                match self
                    .read(move |s| s.membership_ops(&account, from.saturating_sub(1), n))
                    .await
                {
                    Ok(ops) => self.fan_out_membership(&account, ops),
                    Err(e) => {
                        warn!(error = %e, "reading another node's membership ops failed");
                        self.lag_account(&account);
                    }
                }
            }
            ClusterEvent::Entries {
                account,
                device,
                from,
                to,
                entries,
            } => {
                if !self.has_subscribers(&account, Some(&device)) {
                    return;
                }
                let entries_max = self.config.limits.pull_entries_max.max(1);
                let bytes_max = self
                    .config
                    .limits
                    .frame_bytes_max
                    .saturating_sub(PULL_FRAMING_BYTES);
                // Carried by the notification (checked to be exactly `from
                // ..= to` of this device when decoded): no read.
                if !entries.is_empty() && entries.len() <= entries_max {
                    Metrics::inc(&self.metrics.cluster_pushes_carried_total);
                    self.fan_out(&account, &device, entries);
                    return;
                }
                Metrics::inc(&self.metrics.cluster_pushes_read_total);
                let read = self
                    .read(move |s| {
                        s.device_entries(&account, &device, from, to, entries_max, bytes_max)
                    })
                    .await;
                match read {
                    Ok(entries) => {
                        // Only what this event announced (a late read would
                        // otherwise resend later pushes, which their own
                        // events fan out: doubled deliveries under load).
                        let complete = entries.last().is_some_and(|e| e.seq >= to);
                        self.fan_out(&account, &device, entries);
                        if !complete {
                            self.lag_account(&account);
                        }
                    }
                    // Pruned meanwhile, or the database failed: they pull.
                    Err(_) => self.lag_account(&account),
                }
            }
        }
    }

    /// Marks the subscribers of `account` lagged and tells them so.
    fn lag_account(&self, account: &AccountId) {
        let Ok(frame) = kith_protocol::encode_frame(&ServerMsg::Event(Event::Lagged), 64) else {
            return;
        };
        let frame = Arc::new(frame);
        let permits = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        if let Some(list) = lock(&self.subscribers).get(account) {
            for s in list {
                let sent = s
                    .budget
                    .clone()
                    .try_acquire_many_owned(permits)
                    .ok()
                    .is_some_and(|p| s.queue.try_send(Box::new((frame.clone(), p))).is_ok());
                if !sent {
                    s.lagged.store(true, Ordering::Release);
                }
            }
        }
    }

    fn close_device(&self, account: &AccountId, device: &DeviceId) {
        let conns = lock(&self.connections).remove(&(*account, *device));
        for (_, c) in conns.into_iter().flatten() {
            c.close(
                quinn::VarInt::from_u32(close_code::REVOKED),
                b"device revoked",
            );
        }
        if let Some(list) = lock(&self.subscribers).get_mut(account) {
            list.retain(|s| s.device != *device);
        }
    }

    /// Closes every connection of `account`'s devices on this node and
    /// forgets its subscribers and counters (the operator deleted it, here
    /// through the admin socket or on another node through the cluster bus).
    fn close_account(&self, account: &AccountId) {
        let conns: Vec<_> = {
            let mut map = lock(&self.connections);
            let keys: Vec<_> = map.keys().filter(|(a, _)| a == account).copied().collect();
            keys.into_iter().filter_map(|k| map.remove(&k)).collect()
        };
        for (_, c) in conns.into_iter().flatten() {
            c.close(
                quinn::VarInt::from_u32(close_code::REVOKED),
                b"account deleted",
            );
        }
        lock(&self.subscribers).remove(account);
        lock(&self.rates).remove(account);
        lock(&self.last_seen).remove(account);
    }

    fn forget_connection(&self, conn_id: u64, ids: Option<(AccountId, DeviceId)>) {
        let Some((account, device)) = ids else {
            return;
        };
        {
            let mut conns = lock(&self.connections);
            if let Some(list) = conns.get_mut(&(account, device)) {
                list.retain(|(id, _)| *id != conn_id);
                if list.is_empty() {
                    conns.remove(&(account, device));
                }
            }
        }
        let mut subs = lock(&self.subscribers);
        if let Some(list) = subs.get_mut(&account) {
            list.retain(|s| s.conn_id != conn_id);
            if list.is_empty() {
                subs.remove(&account);
            }
        }
    }
}

/// What the other relay nodes must hear about a committed op (see
/// `store::cluster`): taken from the op before it is applied, completed by
/// its outcome.
fn cluster_events(
    key: Option<(AccountId, Option<DeviceId>)>,
    outcome: &Result<WriteOutcome, StoreError>,
) -> Vec<ClusterEvent> {
    let Some((account, device)) = key else {
        return Vec::new();
    };
    match (outcome, device) {
        (Ok(WriteOutcome::Pushed { head, stored }), Some(device)) => match stored.first() {
            // The entries ride along when they fit in the notification
            // (`store::cluster`): the other nodes then need not read them.
            Some(first) => vec![ClusterEvent::Entries {
                account,
                device,
                from: first.seq,
                to: *head,
                entries: stored.clone(),
            }],
            None => Vec::new(),
        },
        (
            Ok(WriteOutcome::MembershipAppended {
                appended, revoked, ..
            }),
            _,
        ) => {
            let mut out = Vec::new();
            if let (Some(first), Some(last)) = (appended.first(), appended.last()) {
                out.push(ClusterEvent::Membership {
                    account,
                    from: first.body.position,
                    to: last.body.position,
                });
            }
            out.extend(revoked.iter().map(|d| ClusterEvent::Revoked {
                account,
                device: *d,
            }));
            out
        }
        _ => Vec::new(),
    }
}

fn writer_thread(
    store: Arc<dyn RelayStore>,
    mut rx: mpsc::Receiver<(WriteOp, WriteReply)>,
    batch_max: usize,
    metrics: Arc<Metrics>,
) {
    let bus = store.cluster_bus();
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let n = ops.len() as u64;
        let keys: Vec<_> = if bus.is_some() {
            ops.iter()
                .map(|op| match op {
                    WriteOp::Push {
                        account, device, ..
                    } => Some((*account, Some(*device))),
                    WriteOp::AppendMembership { account, .. } => Some((*account, None)),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let t0 = std::time::Instant::now();
        let results = store.apply(ops);
        // After the commit, in its own transaction: other nodes' subscribers.
        if let Some(bus) = &bus {
            let events: Vec<ClusterEvent> = keys
                .into_iter()
                .zip(&results)
                .flat_map(|(k, r)| cluster_events(k, r))
                .collect();
            if !events.is_empty() {
                bus.publish(events);
            }
        }
        metrics.record_commit(
            u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX),
            n,
        );
        let failed = results
            .iter()
            .any(|r| matches!(r, Err(StoreError::Backend { .. })));
        if failed {
            metrics
                .store_write_failures_total
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        metrics
            .store_unwritable
            .store(failed, std::sync::atomic::Ordering::Relaxed);
        for (r, reply) in results.into_iter().zip(replies) {
            if let Err(StoreError::Backend { op, source }) = &r {
                warn!(op, error = %source, "store write failed");
            }
            let _ = reply.send(r);
        }
    }
}

/// Runs `relay` on `socket` until `shutdown` resolves, then stops accepting,
/// lets in-flight requests finish (bounded), closes every connection and
/// flushes the writer.
pub async fn run(
    relay: Relay,
    socket: std::net::UdpSocket,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_admin(relay, socket, shutdown, None).await
}

/// [`run`], also serving the admin commands on `admin` (module `admin`).
pub async fn run_with_admin(
    mut relay: Relay,
    socket: std::net::UdpSocket,
    shutdown: impl Future<Output = ()>,
    admin: Option<AdminSocket>,
) -> Result<(), RunError> {
    // Nodes sharing a database read its clock (a test's manual clock stays).
    if relay.config.clock.is_system()
        && let Some(clock) = relay.store.shared_clock()
    {
        relay.config.clock = clock;
    }
    let server_cfg = server_config(&relay)?;
    let runtime =
        quinn::default_runtime().ok_or_else(|| RunError::QuicCrypto("no async runtime".into()))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_cfg),
        socket,
        runtime,
    )?;
    let local = endpoint.local_addr()?;
    let (wtx, wrx) = mpsc::channel(relay.config.limits.write_queue_ops_max.max(1));
    let batch_max = relay.config.limits.write_batch_ops_max.max(1);
    let writer_store = relay.store.clone();
    let writer_metrics = relay.metrics.clone();
    let writer = std::thread::Builder::new()
        .name("kith-relay-writer".into())
        .spawn(move || writer_thread(writer_store, wrx, batch_max, writer_metrics))
        .map_err(|e| RunError::Writer(e.to_string()))?;
    let shared = Arc::new(Shared {
        relay_key: relay.key(),
        config: relay.config.clone(),
        store: relay.store.clone(),
        metrics: relay.metrics.clone(),
        writer: wtx,
        subscribers: Mutex::new(HashMap::new()),
        connections: Mutex::new(HashMap::new()),
        rates: Mutex::new(HashMap::new()),
        unauth_rates: Mutex::new(HashMap::new()),
        registrations: Mutex::new(HashMap::new()),
        next_conn_id: AtomicU64::new(1),
        last_seen: Mutex::new(HashMap::new()),
        started: std::time::Instant::now(),
    });
    info!(address = %relay.address(local), "relay listening");
    let (admin_stop_tx, admin_stop_rx) = oneshot::channel::<()>();
    let admin_task = admin.map(|a| {
        let live: Arc<dyn crate::admin::LiveRelay> = Arc::new(LiveHandle(Arc::downgrade(&shared)));
        let ctx = Arc::new(crate::admin::AdminContext {
            store: a.store,
            identity: relay.identity.clone(),
            data_dir: a.data_dir,
            live: Some(live),
        });
        tokio::spawn(async move {
            if let Err(e) = crate::admin::serve(a.listener, ctx, async move {
                let _ = admin_stop_rx.await;
            })
            .await
            {
                warn!(error = %e, "admin socket failed");
            }
        })
    });

    // Other nodes' commits (a store shared by several relay processes).
    let cluster_task = relay.store.cluster_bus().map(|bus| {
        let mut events = bus.listen();
        let shared = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let Some(shared) = shared.upgrade() else {
                    break;
                };
                shared.on_cluster_event(e).await;
            }
        })
    });

    let sweeper = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(MAILBOX_SWEEP_MS));
            loop {
                tick.tick().await;
                // Rate windows older than a minute carry no information.
                let now = shared.config.clock.now_ms();
                lock(&shared.rates).retain(|_, (start, _)| now.saturating_sub(*start) < 60_000);
                let started_before_ms =
                    now.saturating_sub(shared.config.limits.snapshot_upload_ttl_ms);
                if let Ok(WriteOutcome::SnapshotUploadsExpired(n)) = shared
                    .write(WriteOp::SnapshotUploadsExpire { started_before_ms })
                    .await
                    && n > 0
                {
                    debug!(n, "abandoned snapshot uploads deleted");
                }
                // Pending snapshots nobody opened within the safety window.
                let stored_before_ms =
                    now.saturating_sub(shared.config.limits.snapshot_confirm_window_ms);
                if let Ok(WriteOutcome::SnapshotsConfirmed(n)) = shared
                    .write(WriteOp::SnapshotsConfirmDue { stored_before_ms })
                    .await
                    && n > 0
                {
                    info!(n, "pending snapshots confirmed by the safety window");
                }
                if let Ok(WriteOutcome::MailboxExpired(n)) = shared
                    .write(WriteOp::MailboxExpire {
                        now_ms: shared.config.clock.now_ms(),
                    })
                    .await
                    && n > 0
                {
                    {
                        debug!(n, "expired mailbox blobs deleted");
                    }
                }
            }
        })
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let incoming = tokio::select! {
            _ = &mut shutdown => break,
            i = endpoint.accept() => i,
        };
        let Some(incoming) = incoming else { break };
        while tasks.try_join_next().is_some() {}
        let current = shared.metrics.connections_current.load(Ordering::Relaxed);
        if current >= shared.config.limits.connections_max as u64 {
            Metrics::inc(&shared.metrics.connections_refused_total);
            incoming.refuse();
            continue;
        }
        let shared = shared.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move { handle_incoming(shared, incoming, stop).await });
    }

    info!("relay shutting down: no new connections");
    endpoint.set_server_config(None);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_millis(SHUTDOWN_GRACE_MS), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("connections did not finish in time; aborting them");
        tasks.abort_all();
    }
    sweeper.abort();
    let _ = sweeper.await;
    if let Some(t) = cluster_task {
        t.abort();
        let _ = t.await;
    }
    let _ = admin_stop_tx.send(());
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    endpoint.close(
        quinn::VarInt::from_u32(close_code::SHUTDOWN),
        b"relay shutting down",
    );
    // Dropping the last sender lets the writer commit what is queued and exit.
    drop(shared);
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| RunError::Writer(e.to_string()))?
        .map_err(|_| RunError::Writer("writer thread panicked".into()))?;
    let _ =
        tokio::time::timeout(Duration::from_millis(CLOSE_LINGER_MS), endpoint.wait_idle()).await;
    info!("relay stopped");
    Ok(())
}

struct ConnGuard<'a> {
    shared: &'a Shared,
    conn_id: u64,
    ids: Option<(AccountId, DeviceId)>,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.shared.forget_connection(self.conn_id, self.ids);
        self.shared
            .metrics
            .connections_current
            .fetch_sub(1, Ordering::Relaxed);
    }
}

async fn handle_incoming(
    shared: Arc<Shared>,
    incoming: quinn::Incoming,
    stop: watch::Receiver<bool>,
) {
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "QUIC handshake failed");
            Metrics::inc(&shared.metrics.auth_failures_total);
            return;
        }
    };
    Metrics::inc(&shared.metrics.connections_total);
    shared
        .metrics
        .connections_current
        .fetch_add(1, Ordering::Relaxed);
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let mut guard = ConnGuard {
        shared: &shared,
        conn_id,
        ids: None,
    };
    let outcome = serve(&shared, &conn, conn_id, &mut guard.ids, stop).await;
    match outcome {
        Ok(()) => conn.close(quinn::VarInt::from_u32(close_code::NORMAL), b""),
        Err(Close(code, reason)) => conn.close(quinn::VarInt::from_u32(code), reason.as_bytes()),
    }
    drop(guard);
}

/// How a connection ends: QUIC close code and reason.
struct Close(u32, &'static str);

enum Incoming {
    Msg(Box<ClientMsg>),
    End,
    Bad(FrameError),
    Lost,
}

async fn read_msg(recv: &mut quinn::RecvStream, max: usize) -> Incoming {
    let mut header = [0u8; 4];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Incoming::End,
        Err(quinn::ReadExactError::FinishedEarly(n)) => {
            return Incoming::Bad(FrameError::Truncated {
                have_bytes: n,
                need_bytes: 4,
            });
        }
        Err(quinn::ReadExactError::ReadError(_)) => return Incoming::Lost,
    }
    let len = match kith_protocol::parse_header(header, max) {
        Ok(l) => l,
        Err(e) => return Incoming::Bad(e),
    };
    let mut body = vec![0u8; len];
    match recv.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(n)) => {
            return Incoming::Bad(FrameError::Truncated {
                have_bytes: 4 + n,
                need_bytes: 4 + len,
            });
        }
        Err(quinn::ReadExactError::ReadError(_)) => return Incoming::Lost,
    }
    match kith_protocol::decode_body::<ClientMsg>(&body) {
        Ok(m) => Incoming::Msg(Box::new(m)),
        Err(e) => Incoming::Bad(e),
    }
}

struct Out {
    queue: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    stop: oneshot::Sender<()>,
    writer: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Out {
    fn start(
        mut send: quinn::SendStream,
        depth: usize,
        budget_bytes: usize,
        lagged: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (queue, mut rx) = mpsc::channel::<Queued>(depth.max(1));
        // Room for at least one maximum frame, so any single frame can pass.
        let budget = Arc::new(Semaphore::new(
            budget_bytes.max(FRAME_BYTES_MAX + kith_protocol::frame::HEADER_BYTES),
        ));
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let lagged_frame = kith_protocol::encode_frame(&ServerMsg::Event(Event::Lagged), 64).ok();
        let writer = tokio::spawn(async move {
            let mut stopping = false;
            loop {
                // Subscription registrations hold clones of the queue, so
                // the end is signalled separately; queued frames still go out.
                let f = if stopping {
                    rx.try_recv().ok()
                } else {
                    tokio::select! {
                        biased;
                        f = rx.recv() => f,
                        _ = &mut stop_rx => {
                            stopping = true;
                            rx.try_recv().ok()
                        }
                    }
                };
                let Some(queued) = f else { break };
                let (f, _permit) = *queued;
                if send.write_all(&f).await.is_err() {
                    return;
                }
                if lagged.swap(false, Ordering::AcqRel)
                    && let Some(l) = &lagged_frame
                    && send.write_all(l).await.is_err()
                {
                    return;
                }
            }
            let _ = send.finish();
            let _ =
                tokio::time::timeout(Duration::from_millis(CLOSE_LINGER_MS), send.stopped()).await;
        });
        Self {
            queue,
            budget,
            stop,
            writer,
            metrics,
        }
    }

    /// Queues one message, waiting for queue space. Boxed: every await of
    /// it in the connection loop would otherwise size each connection's task
    /// for this future (semaphore and channel waits) plus its encoding.
    fn send<'a>(
        &'a self,
        msg: &'a ServerMsg,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.send_inner(msg))
    }

    async fn send_inner(&self, msg: &ServerMsg) {
        if let ServerMsg::Error { .. } = msg {
            Metrics::inc(&self.metrics.errors_total);
        }
        match kith_protocol::encode_frame(msg, FRAME_BYTES_MAX) {
            Ok(f) => {
                let permits = u32::try_from(f.len()).unwrap_or(u32::MAX);
                let Ok(permit) = self.budget.clone().acquire_many_owned(permits).await else {
                    return;
                };
                let _ = self.queue.send(Box::new((Arc::new(f), permit))).await;
            }
            Err(e) => warn!(error = %e, "response does not fit a frame"),
        }
    }

    /// Sends a connection-level error, lets the client read it, and ends.
    /// Boxed: a connection's task is sized for its largest await, and this
    /// one is awaited from many places of an otherwise idle loop.
    fn fatal(
        self,
        code: ErrorCode,
        message: &str,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = Close> + Send + use<>>> {
        Box::pin(self.fatal_inner(code, message.to_owned()))
    }

    async fn fatal_inner(self, code: ErrorCode, message: String) -> Close {
        debug!(code = code.name(), "closing connection after fatal error");
        let close = match code {
            ErrorCode::ShuttingDown => Close(close_code::SHUTDOWN, "shutting down"),
            ErrorCode::DeviceRevoked => Close(close_code::REVOKED, "device revoked"),
            _ => Close(close_code::PROTOCOL_ERROR, code.name()),
        };
        // A peer that stopped reading must not hold the task: bounded waits.
        let linger = Duration::from_millis(CLOSE_LINGER_MS);
        let error = ServerMsg::Error {
            id: None,
            code,
            message,
        };
        let _ = tokio::time::timeout(linger, self.send(&error)).await;
        self.finish().await;
        close
    }

    /// Flushes queued frames and finishes the stream, within a bounded time.
    /// Boxed for the same reason as `send`.
    fn finish(self) -> std::pin::Pin<Box<impl std::future::Future<Output = ()> + Send>> {
        Box::pin(self.finish_inner())
    }

    async fn finish_inner(self) {
        drop(self.queue);
        let _ = self.stop.send(());
        let mut writer = self.writer;
        let linger = Duration::from_millis(CLOSE_LINGER_MS * 2);
        if tokio::time::timeout(linger, &mut writer).await.is_err() {
            writer.abort();
        }
    }
}

fn frame_error_code(e: &FrameError) -> ErrorCode {
    match e {
        FrameError::TooLarge { size_bytes_max, .. } => ErrorCode::FrameTooLarge {
            size_bytes_max: u32::try_from(*size_bytes_max).unwrap_or(u32::MAX),
        },
        _ => ErrorCode::Malformed,
    }
}

struct Session {
    account: AccountId,
    device: DeviceId,
    /// Negotiated protocol version.
    version: u16,
}

async fn serve(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    conn_id: u64,
    ids: &mut Option<(AccountId, DeviceId)>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Close> {
    let limits = &shared.config.limits;
    let handshake = Duration::from_millis(limits.handshake_timeout_ms);
    let (send, mut recv) = match tokio::time::timeout(handshake, conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => return Err(Close(close_code::PROTOCOL_ERROR, "no stream opened")),
    };
    let lagged = Arc::new(AtomicBool::new(false));
    let out = Out::start(
        send,
        limits.connection_queue_frames,
        limits.connection_queue_bytes_max,
        lagged.clone(),
        shared.metrics.clone(),
    );
    let max = limits.frame_bytes_max;

    // 1. Version handshake.
    let version: u16;
    let first =
        match tokio::time::timeout(handshake, read_msg(&mut recv, PREAUTH_FRAME_BYTES_MAX)).await {
            Ok(m) => m,
            Err(_) => {
                return Err(out
                    .fatal(ErrorCode::UnexpectedMessage, "no hello in time")
                    .await);
            }
        };
    match first {
        Incoming::Msg(m) => {
            let ClientMsg::Hello { versions } = *m else {
                return Err(out
                    .fatal(ErrorCode::UnexpectedMessage, "expected hello")
                    .await);
            };
            // The highest version both speak.
            let common = PROTOCOL_VERSIONS
                .iter()
                .copied()
                .filter(|v| versions.contains(v))
                .max();
            match common {
                Some(v) if versions.len() <= HELLO_VERSIONS_MAX => version = v,
                _ => {
                    return Err(out
                        .fatal(
                            ErrorCode::UnsupportedVersion {
                                supported: PROTOCOL_VERSIONS.to_vec(),
                            },
                            "none of the offered protocol versions is supported",
                        )
                        .await);
                }
            }
        }
        Incoming::Bad(e) => return Err(out.fatal(frame_error_code(&e), &e.to_string()).await),
        Incoming::End | Incoming::Lost => return Ok(()),
    }
    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    out.send(&ServerMsg::Welcome {
        version,
        relay: shared.relay_key,
        challenge,
        frame_bytes_max: u32::try_from(max).unwrap_or(u32::MAX),
    })
    .await;

    // 2. Authentication (or unauthenticated mailbox takes), then requests.
    let mut session: Option<Session> = None;
    let mut unauth_requests = 0u32;
    let deadline = tokio::time::Instant::now() + handshake;
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => {
                return Err(out.fatal(ErrorCode::ShuttingDown, "relay is shutting down").await);
            }
            _ = tokio::time::sleep_until(deadline), if session.is_none() => {
                return Err(out.fatal(ErrorCode::NotAuthenticated, "authentication timed out").await);
            }
            m = read_msg(&mut recv, if session.is_some() { max } else { PREAUTH_FRAME_BYTES_MAX }) => m,
        };
        let msg = match next {
            Incoming::Msg(m) => *m,
            Incoming::End | Incoming::Lost => {
                out.finish().await;
                return Ok(());
            }
            Incoming::Bad(e) => {
                return Err(out.fatal(frame_error_code(&e), &e.to_string()).await);
            }
        };
        match msg {
            ClientMsg::Hello { .. } => {
                return Err(out
                    .fatal(ErrorCode::UnexpectedMessage, "hello sent twice")
                    .await);
            }
            ClientMsg::Auth {
                account,
                device,
                signature,
                token,
                membership,
            } => {
                if session.is_some() {
                    return Err(out
                        .fatal(ErrorCode::UnexpectedMessage, "already authenticated")
                        .await);
                }
                let auth = Auth {
                    account,
                    device,
                    signature,
                    token,
                    membership,
                };
                // Boxed, as the request handler below: the task of every idle
                // connection is sized for its largest await, and these are the
                // large ones (relay-load: 5.1 KB per connection otherwise).
                match Box::pin(authenticate(shared, conn, conn_id, auth, &challenge)).await {
                    Ok((registered, membership_len, epoch)) => {
                        *ids = Some((account, device));
                        lock(&shared.last_seen).insert(account, now_ms());
                        session = Some(Session {
                            account,
                            device,
                            version,
                        });
                        info!(account = %account, device = %device, registered, "device authenticated");
                        out.send(&ServerMsg::AuthOk {
                            account,
                            device,
                            registered,
                            membership_len,
                            epoch,
                        })
                        .await;
                    }
                    Err((code, detail)) => {
                        Metrics::inc(&shared.metrics.auth_failures_total);
                        info!(account = %account, device = %device, code = code.name(), "authentication refused");
                        let msg = match &code {
                            ErrorCode::AuthFailed => {
                                "challenge answer does not verify, or the relay's operator deleted this account"
                                    .to_owned()
                            }
                            ErrorCode::DeviceRevoked => {
                                "this device was revoked from the account".to_owned()
                            }
                            ErrorCode::NotAMember => {
                                "this device is not a member of the account".to_owned()
                            }
                            ErrorCode::RegistrationRequired => {
                                "this relay registers accounts only with a token".to_owned()
                            }
                            ErrorCode::BadToken => {
                                "registration token is unknown or used".to_owned()
                            }
                            _ => format!("authentication failed: {detail}"),
                        };
                        return Err(out.fatal(code, &msg).await);
                    }
                }
            }
            ClientMsg::Request { id, body } => {
                let answer = match &session {
                    Some(s) => {
                        Box::pin(handle_request(shared, s, &out, &lagged, conn_id, body)).await
                    }
                    None => {
                        unauth_requests += 1;
                        if unauth_requests > limits.unauth_requests_max
                            || !shared.unauth_allowed(conn.remote_address().ip())
                        {
                            return Err(out
                                .fatal(
                                    ErrorCode::RateLimited,
                                    "too many requests before authentication",
                                )
                                .await);
                        }
                        match body {
                            Request::MailboxTake { slot } => {
                                Box::pin(mailbox_take(shared, slot)).await
                            }
                            // A joining device is no member yet: it leaves its
                            // (small, sealed) pairing request before any auth.
                            Request::MailboxPut { slot, blob, ttl_s }
                                if blob.len() <= UNAUTH_MAILBOX_BLOB_BYTES_MAX =>
                            {
                                Box::pin(mailbox_put(shared, limits, slot, blob, ttl_s, None)).await
                            }
                            Request::Ping => Ok(Response::Pong),
                            _ => {
                                Err((ErrorCode::NotAuthenticated, "authenticate first".to_owned()))
                            }
                        }
                    }
                };
                let reply = match answer {
                    Ok(body) => ServerMsg::Response { id, body },
                    Err((code, message)) => ServerMsg::Error {
                        id: Some(id),
                        code,
                        message,
                    },
                };
                // A client that stops reading stalls here (bounded queue),
                // but shutdown still reaches it.
                tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        return Err(out.fatal(ErrorCode::ShuttingDown, "relay is shutting down").await);
                    }
                    _ = out.send(&reply) => {}
                }
            }
        }
    }
}

/// What a device presents in `Auth`.
struct Auth {
    account: AccountId,
    device: DeviceId,
    signature: Signature,
    token: Option<String>,
    membership: Vec<MembershipOp>,
}

/// Authenticates a device against the account's membership log: the
/// challenge must be signed by the device key, ops the device brought are
/// appended (the genesis registers the account), and the device must be a
/// member of the resulting log. Returns (registered, log length, epoch).
async fn authenticate(
    shared: &Arc<Shared>,
    conn: &quinn::Connection,
    conn_id: u64,
    a: Auth,
    challenge: &[u8; 32],
) -> Result<(bool, u64, u64), (ErrorCode, String)> {
    let (account, device) = (a.account, a.device);
    if kith_protocol::verify_auth(&device, &shared.relay_key, challenge, &a.signature).is_err() {
        return Err((ErrorCode::AuthFailed, String::new()));
    }
    if a.token.as_ref().is_some_and(|t| t.len() > TOKEN_BYTES_MAX) {
        return Err((ErrorCode::BadToken, String::new()));
    }
    if a.membership.len() > OPS_PER_MESSAGE_MAX {
        return Err((
            ErrorCode::TooLarge {
                limit: OPS_PER_MESSAGE_MAX as u64,
            },
            "too many membership ops".into(),
        ));
    }
    // Register the connection before checking membership, so a revocation
    // committed in between still finds (and closes) it.
    lock(&shared.connections)
        .entry((account, device))
        .or_default()
        .push((conn_id, conn.clone()));
    let result = async {
        let mut registered = false;
        let state = if a.membership.is_empty() {
            shared
                .read(move |s| s.membership(&account))
                .await
                .map_err(|e| (e.code(), e.to_string()))?
        } else {
            let ip = conn.remote_address().ip();
            let genesis = a
                .membership
                .first()
                .is_some_and(|o| matches!(o.body.change, kith_protocol::Change::Genesis { .. }));
            if genesis
                && let Err(retry_after_ms) = shared.registration_window(ip, 0).await
                && shared
                    .read(move |s| s.membership(&account))
                    .await
                    .map_err(|e| (e.code(), e.to_string()))?
                    .is_none()
            {
                return Err((
                    ErrorCode::RegistrationLimited { retry_after_ms },
                    "too many new accounts from this address; retry later".into(),
                ));
            }
            let op = WriteOp::AppendMembership {
                account,
                ops: a.membership,
                skip_known: true,
                token_hash: a.token.map(|t| Sha256::digest(t.trim().as_bytes()).into()),
                open_registration: shared.config.registration == RegistrationPolicy::Open,
                now_ms: shared.config.clock.now_ms(),
                members_max: shared.config.limits.devices_per_account_max,
            };
            match shared.write(op).await {
                Ok(WriteOutcome::MembershipAppended {
                    new_account,
                    appended,
                    revoked,
                    state,
                }) => {
                    registered = new_account;
                    if new_account {
                        // Counted whatever the answer: the account exists.
                        let _ = shared.registration_window(ip, 1).await;
                    }
                    for d in &revoked {
                        shared.close_device(&account, d);
                    }
                    shared.fan_out_membership(&account, appended);
                    Some(*state)
                }
                Ok(_) => return Err((ErrorCode::Internal, String::new())),
                Err(e) => return Err((e.code(), e.to_string())),
            }
        };
        let Some(state) = state else {
            return Err((
                ErrorCode::NotAMember,
                "the account is not registered here".into(),
            ));
        };
        if is_root_session(&account, &device) {
            // The account's root key (from the recovery code) answered the
            // challenge: a recovery session, which may only read and extend
            // the membership log (see `handle_request`).
            return Ok((registered, state.len(), state.epoch()));
        }
        if state.revoked_at(&device).is_some() {
            return Err((ErrorCode::DeviceRevoked, String::new()));
        }
        if !state.is_member(&device) {
            return Err((ErrorCode::NotAMember, String::new()));
        }
        Ok((registered, state.len(), state.epoch()))
    }
    .await;
    if result.is_err() {
        shared.forget_connection(conn_id, Some((account, device)));
    }
    result
}

/// True when the "device" that authenticated is the account's root key
/// itself (the account id is the root key's public half): a recovery
/// session. Only the holder of the recovery code can answer the challenge
/// with it; the session may read the membership log and append ops (of
/// which the root key can sign only a `Recover` that `Membership::apply`
/// accepts), nothing else.
fn is_root_session(account: &AccountId, device: &DeviceId) -> bool {
    account.0 == device.0
}

/// Refuses a read by a device that is no longer a member (its connection
/// is being closed, but a request may already be in flight).
async fn check_still_member(
    shared: &Arc<Shared>,
    account: AccountId,
    device: DeviceId,
) -> Result<(), (ErrorCode, String)> {
    let state = shared
        .read(move |s| s.membership(&account))
        .await
        .map_err(|e| (e.code(), e.to_string()))?;
    match state {
        Some(st) if st.is_member(&device) => Ok(()),
        Some(st) if st.revoked_at(&device).is_some() => Err((
            ErrorCode::DeviceRevoked,
            "this device was revoked from the account".into(),
        )),
        _ => Err((
            ErrorCode::NotAMember,
            "this device is not a member of the account".into(),
        )),
    }
}

async fn mailbox_take(
    shared: &Arc<Shared>,
    slot: [u8; 32],
) -> Result<Response, (ErrorCode, String)> {
    // Anyone may try a slot before authenticating: look first (a read), so
    // an empty or expired slot costs no durable write.
    let now = shared.config.clock.now_ms();
    match shared.read(move |s| s.mailbox_live(&slot, now)).await {
        Ok(true) => {}
        Ok(false) => {
            let e = StoreError::MailboxNotFound;
            return Err((e.code(), e.to_string()));
        }
        Err(e) => return Err((e.code(), e.to_string())),
    }
    match shared
        .write(WriteOp::MailboxTake {
            slot,
            now_ms: shared.config.clock.now_ms(),
        })
        .await
    {
        Ok(WriteOutcome::MailboxTaken(blob)) => Ok(Response::MailboxBlob { blob }),
        Ok(_) => Err((ErrorCode::Internal, "unexpected store outcome".into())),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

/// Largest mailbox blob a connection may leave before authenticating (a
/// pairing joiner's sealed request is a few hundred bytes).
pub const UNAUTH_MAILBOX_BLOB_BYTES_MAX: usize = 1024;

async fn mailbox_put(
    shared: &Arc<Shared>,
    limits: &crate::Limits,
    slot: [u8; 32],
    blob: Vec<u8>,
    ttl_s: u32,
    owner: Option<crate::store::MailboxOwner>,
) -> Result<Response, (ErrorCode, String)> {
    if blob.len() > limits.mailbox_blob_bytes_max {
        return Err((
            ErrorCode::TooLarge {
                limit: limits.mailbox_blob_bytes_max as u64,
            },
            "mailbox blob too large".into(),
        ));
    }
    // An empty blob would read as the tombstone a take leaves.
    if blob.is_empty() {
        return Err((ErrorCode::Malformed, "empty mailbox blob".into()));
    }
    let ttl_s = if ttl_s == 0 {
        limits.mailbox_ttl_s_max
    } else {
        ttl_s.min(limits.mailbox_ttl_s_max)
    };
    let now = shared.config.clock.now_ms();
    let op = WriteOp::MailboxPut {
        slot,
        blob,
        expires_at_ms: now + u64::from(ttl_s) * 1000,
        now_ms: now,
        owner,
    };
    match shared.write(op).await {
        Ok(WriteOutcome::MailboxStored) => Ok(Response::MailboxStored),
        Ok(_) => Err((ErrorCode::Internal, "unexpected store outcome".into())),
        Err(e) => Err((e.code(), e.to_string())),
    }
}

async fn handle_request(
    shared: &Arc<Shared>,
    s: &Session,
    out: &Out,
    lagged: &Arc<AtomicBool>,
    conn_id: u64,
    body: Request,
) -> Result<Response, (ErrorCode, String)> {
    let limits = &shared.config.limits;
    let refuse = |code: ErrorCode, msg: &str| Err((code, msg.to_owned()));
    let store_err = |e: StoreError| (e.code(), e.to_string());
    let (account, device) = (s.account, s.device);
    if is_root_session(&account, &device) {
        // A recovery session: the log, nothing of the data.
        match body {
            Request::Ping | Request::GetMembership { .. } | Request::AppendMembership { .. } => {}
            _ => {
                return refuse(
                    ErrorCode::NotAMember,
                    "a recovery session (root key) may only read and append the membership log",
                );
            }
        }
    } else if matches!(
        body,
        Request::Pull { .. }
            | Request::GetSnapshot
            | Request::GetSnapshotRange { .. }
            | Request::Snapshots
            | Request::Heads
            | Request::GetMembership { .. }
            | Request::Subscribe
    ) {
        check_still_member(shared, account, device).await?;
    }
    match body {
        Request::Ping => Ok(Response::Pong),
        Request::Push { entries } => {
            if entries.len() > PUSH_ENTRIES_MAX {
                return refuse(
                    ErrorCode::TooLarge {
                        limit: PUSH_ENTRIES_MAX as u64,
                    },
                    "too many entries in one push",
                );
            }
            let entry_max = limits.frame_bytes_max.saturating_sub(ENTRY_OVERHEAD_BYTES);
            for e in &entries {
                if e.account != account || e.device != device {
                    return refuse(
                        ErrorCode::WrongAccount,
                        "entries must be of the authenticated device",
                    );
                }
                if e.ciphertext.len() + ENTRY_OVERHEAD_BYTES * 4 > entry_max {
                    return refuse(
                        ErrorCode::TooLarge {
                            limit: entry_max as u64,
                        },
                        "entry too large",
                    );
                }
                if e.verify().is_err() {
                    return refuse(ErrorCode::BadSignature, "entry signature does not verify");
                }
            }
            if entries.is_empty() {
                let heads = shared
                    .read(move |st| st.heads(&account))
                    .await
                    .map_err(store_err)?;
                let seq = heads
                    .heads
                    .iter()
                    .find(|c| c.device == device)
                    .map_or(0, |c| c.seq);
                return Ok(Response::PushAck { device, seq });
            }
            let n = u32::try_from(entries.len()).unwrap_or(u32::MAX);
            if let Err(code) = shared.rate_check_cluster(&account, n).await {
                return refuse(code, "entry rate quota exceeded");
            }
            let op = WriteOp::Push {
                account,
                device,
                entries,
                quota_bytes: limits.quota_bytes_per_account,
            };
            match shared.write(op).await.map_err(store_err)? {
                WriteOutcome::Pushed { head, stored } => {
                    let bytes: u64 = stored.iter().map(|e| e.ciphertext.len() as u64).sum();
                    shared
                        .metrics
                        .entries_pushed_total
                        .fetch_add(stored.len() as u64, Ordering::Relaxed);
                    shared
                        .metrics
                        .bytes_pushed_total
                        .fetch_add(bytes, Ordering::Relaxed);
                    shared.fan_out(&account, &device, stored);
                    Ok(Response::PushAck { device, seq: head })
                }
                _ => refuse(ErrorCode::Internal, "unexpected store outcome"),
            }
        }
        Request::Pull {
            cursors,
            entries_max,
            bytes_max,
        } => {
            if cursors.len() > CURSORS_MAX {
                return refuse(
                    ErrorCode::TooLarge {
                        limit: CURSORS_MAX as u64,
                    },
                    "too many cursors",
                );
            }
            let entries_max = (entries_max as usize).clamp(1, limits.pull_entries_max.max(1));
            // Entries are counted with their envelopes, so a page of
            // `bytes_max` fits one frame with room for the response framing.
            let bytes_max = (bytes_max as usize).clamp(
                1,
                limits
                    .frame_bytes_max
                    .saturating_sub(PULL_FRAMING_BYTES)
                    .max(1),
            );
            let page = shared
                .read(move |st| st.pull(&account, &cursors, entries_max, bytes_max))
                .await
                .map_err(store_err)?;
            shared
                .metrics
                .entries_pulled_total
                .fetch_add(page.entries.len() as u64, Ordering::Relaxed);
            Ok(Response::Entries {
                entries: page.entries,
                more: page.more,
            })
        }
        Request::Subscribe => {
            let mut subs = lock(&shared.subscribers);
            let list = subs.entry(account).or_default();
            if !list.iter().any(|x| x.conn_id == conn_id) {
                list.push(Subscriber {
                    conn_id,
                    device,
                    queue: out.queue.clone(),
                    budget: out.budget.clone(),
                    lagged: lagged.clone(),
                });
            }
            Ok(Response::Subscribed)
        }
        Request::PutSnapshot { snapshot } => {
            if snapshot.account != account || snapshot.device != device {
                return refuse(
                    ErrorCode::WrongAccount,
                    "snapshot must be of the authenticated device",
                );
            }
            store_snapshot(shared, snapshot, None).await
        }
        Request::GetSnapshot => {
            let frame = limits.frame_bytes_max;
            // Sizes first: a snapshot too large for a frame is never loaded.
            let snapshot = shared
                .read(move |st| {
                    let Some(newest) = st.snapshots(&account)?.newest().cloned() else {
                        return Ok(None);
                    };
                    if newest.total_bytes > frame as u64 {
                        return Ok(Some(Err(())));
                    }
                    Ok(st
                        .snapshot_range(&account, Some(newest.snapshot_id), 0, frame)?
                        .map(|r| Ok(r.snapshot)))
                })
                .await
                .map_err(store_err)?;
            let snapshot = match snapshot {
                None => None,
                Some(Ok(s)) => Some(s),
                Some(Err(())) => {
                    return refuse(
                        ErrorCode::TooLarge {
                            limit: frame as u64,
                        },
                        "the snapshot is larger than one frame: fetch it with GetSnapshotRange (protocol 2)",
                    );
                }
            };
            let size = snapshot.as_ref().map_or(0, |s| {
                postcard::experimental::serialized_size(s).unwrap_or(usize::MAX)
            });
            if size + ENTRY_OVERHEAD_BYTES > limits.frame_bytes_max {
                return refuse(
                    ErrorCode::TooLarge {
                        limit: limits.frame_bytes_max as u64,
                    },
                    "the snapshot is larger than one frame: fetch it with GetSnapshotRange (protocol 2)",
                );
            }
            Ok(Response::Snapshot { snapshot })
        }
        Request::PutSnapshotPart { .. }
        | Request::CommitSnapshot { .. }
        | Request::GetSnapshotRange { .. }
            if s.version < 2 =>
        {
            refuse(
                ErrorCode::UnexpectedMessage,
                "fragmented snapshots need protocol version 2",
            )
        }
        Request::PutSnapshotPart {
            upload,
            index,
            count,
            bytes,
        } => {
            let op = WriteOp::PutSnapshotPart {
                account,
                device,
                upload,
                index,
                count,
                bytes,
                upload_bytes_max: limits.snapshot_upload_bytes_max,
                now_ms: shared.config.clock.now_ms(),
                quota_bytes: limits.quota_bytes_per_account,
            };
            match shared.write(op).await.map_err(store_err)? {
                WriteOutcome::SnapshotPartStored => {
                    Ok(Response::SnapshotPartStored { upload, index })
                }
                _ => refuse(ErrorCode::Internal, "unexpected store outcome"),
            }
        }
        Request::CommitSnapshot { upload, snapshot } => {
            if snapshot.account != account || snapshot.device != device {
                return refuse(
                    ErrorCode::WrongAccount,
                    "snapshot must be of the authenticated device",
                );
            }
            if !snapshot.ciphertext.is_empty() {
                return refuse(
                    ErrorCode::SnapshotInvalid,
                    "a committed snapshot carries its ciphertext in parts only",
                );
            }
            if snapshot.covers.len() > CURSORS_MAX {
                return refuse(
                    ErrorCode::TooLarge {
                        limit: CURSORS_MAX as u64,
                    },
                    "too many cursors",
                );
            }
            // Only the connection's own device's parts: another account or
            // device can neither read nor complete them. The signature is
            // checked part by part as they are read (never assembled), so
            // memory stays bounded whatever the snapshot's size. Parts the
            // device re-sends between this check and the commit would be
            // its own doing: it can sign anything anyway.
            let Ok(mut verifier) = snapshot.verifier() else {
                return refuse(
                    ErrorCode::BadSignature,
                    "snapshot signature does not verify",
                );
            };
            shared
                .read(move |st| {
                    st.snapshot_upload(&account, &device, upload, &mut |part| verifier.update(part))
                        .map(|_| verifier)
                })
                .await
                .map_err(store_err)?
                .finish()
                .map_err(|_| {
                    (
                        ErrorCode::BadSignature,
                        "snapshot signature does not verify".to_owned(),
                    )
                })?;
            put_snapshot(shared, snapshot, Some(upload)).await
        }
        Request::GetSnapshotRange {
            snapshot_id,
            offset,
            bytes_max,
        } => {
            // Room for the envelope (cursors) next to the range in one frame.
            let room = limits
                .frame_bytes_max
                .saturating_sub(SNAPSHOT_RANGE_OVERHEAD_BYTES)
                .max(1);
            let bytes_max = (bytes_max as usize).clamp(1, room);
            let range = shared
                .read(move |st| st.snapshot_range(&account, snapshot_id, offset, bytes_max))
                .await
                .map_err(store_err)?;
            match range {
                None if snapshot_id.is_some() => refuse(
                    ErrorCode::SnapshotChanged,
                    "the snapshot was replaced or removed",
                ),
                None => Ok(Response::SnapshotRange {
                    snapshot: None,
                    snapshot_id: [0; 32],
                    total_bytes: 0,
                    offset: 0,
                }),
                Some(r) if snapshot_id.is_some_and(|id| id != r.snapshot_id) => refuse(
                    ErrorCode::SnapshotChanged,
                    "the snapshot was replaced since the first range",
                ),
                Some(r) => Ok(Response::SnapshotRange {
                    snapshot: Some(r.snapshot),
                    snapshot_id: r.snapshot_id,
                    total_bytes: r.total_bytes,
                    offset,
                }),
            }
        }
        Request::Snapshots => {
            let snaps = shared
                .read(move |st| st.snapshots(&account))
                .await
                .map_err(store_err)?;
            let info = |s: crate::store::StoredSnapshot| kith_protocol::SnapshotInfo {
                snapshot_id: s.snapshot_id,
                device: s.envelope.device,
                epoch: s.envelope.epoch,
                covers: s.envelope.covers,
                total_bytes: s.total_bytes,
            };
            Ok(Response::Snapshots {
                confirmed: snaps.confirmed.map(info),
                pending: snaps.pending.map(info),
            })
        }
        Request::SnapshotOpened { snapshot_id } => {
            let op = WriteOp::ConfirmSnapshot {
                account,
                device,
                snapshot_id,
            };
            match shared.write(op).await.map_err(store_err)? {
                WriteOutcome::SnapshotConfirmed { pruned_entries } => {
                    Ok(Response::SnapshotConfirmed { pruned_entries })
                }
                _ => refuse(ErrorCode::Internal, "unexpected store outcome"),
            }
        }
        Request::Heads => {
            let h = shared
                .read(move |st| st.heads(&account))
                .await
                .map_err(store_err)?;
            Ok(Response::Heads {
                heads: h.heads,
                floors: h.floors,
            })
        }
        Request::AppendMembership { ops } => {
            if ops.len() > OPS_PER_MESSAGE_MAX {
                return refuse(
                    ErrorCode::TooLarge {
                        limit: OPS_PER_MESSAGE_MAX as u64,
                    },
                    "too many membership ops",
                );
            }
            if ops.iter().any(|o| o.body.account != account) {
                return refuse(ErrorCode::WrongAccount, "ops are for another account");
            }
            let op = WriteOp::AppendMembership {
                account,
                ops,
                skip_known: false,
                token_hash: None,
                open_registration: false,
                now_ms: now_ms(),
                members_max: limits.devices_per_account_max,
            };
            match shared.write(op).await.map_err(store_err)? {
                WriteOutcome::MembershipAppended {
                    appended,
                    revoked,
                    state,
                    ..
                } => {
                    for d in &revoked {
                        info!(account = %account, device = %d, "device revoked");
                        shared.close_device(&account, d);
                    }
                    shared.fan_out_membership(&account, appended);
                    Ok(Response::MembershipAppended { len: state.len() })
                }
                _ => refuse(ErrorCode::Internal, "unexpected store outcome"),
            }
        }
        Request::GetMembership { after } => {
            let ops = shared
                .read(move |st| st.membership_ops(&account, after, OPS_PER_MESSAGE_MAX + 1))
                .await
                .map_err(store_err)?;
            let more = ops.len() > OPS_PER_MESSAGE_MAX;
            let ops = ops.into_iter().take(OPS_PER_MESSAGE_MAX).collect();
            Ok(Response::Membership { ops, more })
        }
        Request::MailboxPut { slot, blob, ttl_s } => {
            let owner = Some(crate::store::MailboxOwner {
                account,
                quota_bytes: limits.quota_bytes_per_account,
                blobs_max: limits.mailbox_blobs_per_account_max,
            });
            mailbox_put(shared, limits, slot, blob, ttl_s, owner).await
        }
        Request::MailboxTake { slot } => Box::pin(mailbox_take(shared, slot)).await,
    }
}

/// Verifies a (whole) snapshot of the connection's device and stores it;
/// `finished_upload` names the fragmented upload it was assembled from.
async fn store_snapshot(
    shared: &Arc<Shared>,
    snapshot: SealedSnapshot,
    finished_upload: Option<u64>,
) -> Result<Response, (ErrorCode, String)> {
    if snapshot.covers.len() > CURSORS_MAX {
        return Err((
            ErrorCode::TooLarge {
                limit: CURSORS_MAX as u64,
            },
            "too many cursors".into(),
        ));
    }
    if snapshot.verify().is_err() {
        return Err((
            ErrorCode::BadSignature,
            "snapshot signature does not verify".into(),
        ));
    }
    put_snapshot(shared, snapshot, finished_upload).await
}

/// Stores a verified snapshot (pending until another device opens it).
async fn put_snapshot(
    shared: &Arc<Shared>,
    snapshot: SealedSnapshot,
    finished_upload: Option<u64>,
) -> Result<Response, (ErrorCode, String)> {
    let limits = &shared.config.limits;
    let op = WriteOp::PutSnapshot {
        snapshot,
        quota_bytes: limits.quota_bytes_per_account,
        finished_upload,
        now_ms: shared.config.clock.now_ms(),
    };
    match shared
        .write(op)
        .await
        .map_err(|e| (e.code(), e.to_string()))?
    {
        WriteOutcome::SnapshotStored { pruned_entries } => {
            Ok(Response::SnapshotStored { pruned_entries })
        }
        _ => Err((ErrorCode::Internal, "unexpected store outcome".into())),
    }
}

/// Creates a single-use registration token: returns the token text and
/// stores only its SHA-256.
pub fn create_token(store: &dyn RelayStore) -> Result<String, StoreError> {
    let mut raw = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = data_encoding::BASE32_NOPAD
        .encode(&raw)
        .to_ascii_lowercase();
    let token_hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut r = store.apply(vec![WriteOp::CreateToken {
        token_hash,
        now_ms: now_ms(),
    }]);
    match r.pop() {
        Some(Ok(_)) => Ok(token),
        Some(Err(e)) => Err(e),
        None => Err(StoreError::Backend {
            op: "token create",
            source: "no result".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn returns, without running it.
    fn future_bytes<A, B, C, F: std::future::Future>(_: fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every held connection is one task sized for the largest await of
    /// `handle_incoming`, idle or not, so a new large await in the
    /// connection loop costs each of 10,000 idle connections its size (the
    /// large ones are boxed). The bound is the debug build's size (2,448
    /// bytes) with a little room; the release build's is smaller.
    #[test]
    fn connection_task_stays_small() {
        let bytes = future_bytes(handle_incoming);
        eprintln!("handle_incoming future: {bytes} bytes");
        assert!(bytes <= 2_560, "connection task grew to {bytes} bytes");
        let queued = std::mem::size_of::<Queued>();
        assert_eq!(
            queued, 8,
            "a queued frame is one pointer in the channel block"
        );
    }
}
