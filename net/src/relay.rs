//! Talking to a relay: one round (`kith sync`), a watching session that
//! stays connected and reconnects with bounded backoff (`kith sync --watch`),
//! pairing through the mailbox (the joiner's request, the inviter's reply),
//! and membership changes (revoke, add, recover). Each connection
//! is a fresh [`RelaySync`] over one bidirectional QUIC stream; everything
//! durable is in the store, so a dropped connection loses nothing.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kith_core::Store;
use kith_core::identity::KeyMaterial;
use kith_core::sync::authority::RecoveryCode;
use kith_core::sync::pairing::{Incoming, PairError, Reply, Token};
use kith_core::sync::relay::{MailboxError, MailboxTake, RecoverError, Recovered, RecoverySession};
use kith_core::sync::{
    DeviceIdentity, Invitation, RelayClientConfig, RelayEvent, RelaySync, RelaySyncError,
};
use kith_protocol::msg::MailboxSlot;
use kith_protocol::{DeviceId, ErrorCode, MemberKeys, RelayAddress, RelayKey, ServerMsg};
use tokio::sync::{mpsc, watch};

use crate::frames::{Counters, FrameIoError, spawn_reader, write_msg};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why a relay session failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The host name did not resolve (offline, or a typo in the address); retryable.
    #[error("cannot resolve '{host}': {detail}")]
    Resolve {
        /// The host as given.
        host: String,
        /// The resolver's message.
        detail: String,
    },
    /// No connection could be made (unreachable, refused, wrong key pinned);
    /// retryable.
    #[error("cannot connect to {addr}: {detail}")]
    Connect {
        /// The address tried.
        addr: String,
        /// Why it failed.
        detail: String,
    },
    /// An established connection broke; retryable.
    #[error("the connection was lost: {0}")]
    Connection(String),
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Frame(#[from] FrameIoError),
    /// The sync machine or the relay refused (see [`NetError::is_retryable`]).
    #[error(transparent)]
    Sync(#[from] RelaySyncError),
    /// The TLS configuration could not be built (bad key); not retryable.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The session took longer than its bound; retryable.
    #[error("no answer within {timeout_ms} ms")]
    Timeout {
        /// The bound that was exceeded.
        timeout_ms: u64,
    },
    /// The peer sync machine refused (authentication, protocol); not retryable.
    #[error(transparent)]
    Peer(#[from] kith_core::sync::PeerError),
    /// The local store failed (disk full, corrupt); not retryable.
    #[error(transparent)]
    Store(#[from] kith_core::StoreError),
    /// A recovery was refused (wrong code, unknown account or device, the
    /// relay's answer); not retryable except for the relay's transient codes.
    #[error(transparent)]
    Recover(#[from] RecoverError),
}

impl NetError {
    /// True when reconnecting may help (network trouble, relay restart).
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::Resolve { .. }
            | NetError::Connect { .. }
            | NetError::Connection(_)
            | NetError::Frame(_)
            | NetError::Timeout { .. } => true,
            NetError::Sync(RelaySyncError::Relay { code, .. })
            | NetError::Recover(RecoverError::Relay { code, .. }) => matches!(
                code,
                ErrorCode::Internal | ErrorCode::ShuttingDown | ErrorCode::RateLimited
            ),
            _ => false,
        }
    }
}

/// What one round moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// This device's entries the relay acknowledged.
    pub pushed_entries: usize,
    /// Sealed bytes of those entries.
    pub pushed_bytes: usize,
    /// Entries received from other devices and verified.
    pub received_entries: usize,
    /// Sealed bytes of those entries.
    pub received_bytes: usize,
    /// Contacts changed by merging what was received.
    pub contacts_changed: usize,
    /// Interactions changed by merging what was received.
    pub interactions_changed: usize,
    /// Received changes still waiting for their dependencies after the round
    /// (they apply once the missing changes arrive).
    pub pending_changes: usize,
    /// A snapshot from the relay was merged (this device caught up from it).
    pub snapshot_applied: bool,
    /// This device uploaded a snapshot, letting the relay prune entries.
    pub snapshot_stored: bool,
    /// Frame bytes on the wire, both directions.
    pub wire_sent_bytes: u64,
    /// Frame bytes received; see `wire_sent_bytes`.
    pub wire_received_bytes: u64,
    /// Wall time of the round.
    pub elapsed_ms: u64,
}

impl RoundReport {
    fn add(&mut self, e: &RelayEvent) {
        match e {
            RelayEvent::Pushed { entries, bytes, .. } => {
                self.pushed_entries += entries;
                self.pushed_bytes += bytes;
            }
            RelayEvent::Received { entries, bytes, .. } => {
                self.received_entries += entries;
                self.received_bytes += bytes;
            }
            RelayEvent::Applied {
                contacts,
                interactions,
                pending,
                ..
            } => {
                self.contacts_changed += contacts;
                self.interactions_changed += interactions;
                self.pending_changes = *pending;
            }
            RelayEvent::SnapshotApplied { .. } => self.snapshot_applied = true,
            RelayEvent::SnapshotStored { .. } => self.snapshot_stored = true,
            _ => {}
        }
    }
}

/// Membership changes to make in a round (ordered by the relay).
#[derive(Debug, Clone)]
pub enum Extra {
    /// Revoke a device: a new epoch sealed to the remaining members.
    Revoke(DeviceId),
    /// Start a new key epoch with the same members.
    Rotate,
    /// Add a device (a pairing the user approved).
    Add(MemberKeys),
    /// Recover with the code: the members become exactly these.
    Recover {
        /// The recovery code.
        code: RecoveryCode,
        /// The devices to keep.
        keep: Vec<MemberKeys>,
    },
}

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A panic while holding the lock cannot leave the store half-written
    // (every write is one redb transaction), so the data is safe to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn resolve(host_port: &str) -> Result<SocketAddr, NetError> {
    let mut addrs = tokio::net::lookup_host(host_port)
        .await
        .map_err(|e| NetError::Resolve {
            host: host_port.into(),
            detail: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| NetError::Resolve {
        host: host_port.into(),
        detail: "no address".into(),
    })
}

/// A client endpoint for connecting to `to`.
pub(crate) fn client_endpoint(to: &SocketAddr) -> Result<quinn::Endpoint, NetError> {
    let bind: SocketAddr = if to.is_ipv6() {
        "[::]:0".parse().map_err(|_| NetError::Tls("bind".into()))?
    } else {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| NetError::Tls("bind".into()))?
    };
    quinn::Endpoint::client(bind).map_err(|e| NetError::Connect {
        addr: to.to_string(),
        detail: e.to_string(),
    })
}

/// Longest wait for a relay's QUIC handshake. Without it a relay that has
/// gone away (a phone changing networks, a dead host) costs a whole idle
/// timeout before the watcher retries or a stop is noticed.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Keep-alive every 10 s and a 30 s idle timeout: a relay that stopped
/// answering mid-session is noticed within 30 s.
pub(crate) fn client_transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(10)))
        .max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_secs(30)).ok())
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t
}

async fn connect_relay(
    addr: &RelayAddress,
    timeout_ms: u64,
) -> Result<(quinn::Endpoint, quinn::Connection), NetError> {
    let sock = resolve(&addr.host_port()).await?;
    let tls =
        kith_protocol::tls::client_config(addr.key).map_err(|e| NetError::Tls(e.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(client_transport()));
    let endpoint = client_endpoint(&sock)?;
    let connecting = endpoint
        .connect_with(cfg, sock, kith_protocol::tls::SERVER_NAME)
        .map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    let conn = tokio::time::timeout(Duration::from_millis(timeout_ms), connecting)
        .await
        .map_err(|_| NetError::Connect {
            addr: addr.to_string(),
            detail: format!("no answer within {timeout_ms} ms"),
        })?
        .map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    Ok((endpoint, conn))
}

async fn recv_local(rx: &mut Option<&mut mpsc::Receiver<()>>) -> Option<()> {
    match rx {
        Some(r) => {
            let got = r.recv().await;
            // Coalesce a burst of local writes into one push.
            while r.try_recv().is_ok() {}
            got
        }
        None => std::future::pending().await,
    }
}

async fn shutdown_signal(rx: &mut Option<&mut watch::Receiver<bool>>) {
    match rx {
        Some(r) => {
            while !*r.borrow() {
                if r.changed().await.is_err() {
                    return;
                }
            }
        }
        None => std::future::pending().await,
    }
}

struct Session<'a, F: FnMut(&RelayEvent)> {
    store: &'a Mutex<Store>,
    id: &'a DeviceIdentity,
    addr: &'a RelayAddress,
    cfg: RelayClientConfig,
    extras: Vec<Extra>,
    once: bool,
    local: Option<&'a mut mpsc::Receiver<()>>,
    shutdown: Option<&'a mut watch::Receiver<bool>>,
    on_event: F,
}

/// Runs one connection; returns when idle (`once`), on shutdown, or on error.
async fn run_session<F: FnMut(&RelayEvent)>(
    s: &mut Session<'_, F>,
) -> Result<RoundReport, NetError> {
    let started = Instant::now();
    let (endpoint, conn) = connect_relay(s.addr, CONNECT_TIMEOUT_MS).await?;
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let counters = Arc::new(Counters::default());
    let mut rx = spawn_reader::<ServerMsg>(recv, counters.clone());
    let mut report = RoundReport::default();
    let mut m = {
        let mut st = lock(s.store);
        let mut m = RelaySync::new(&mut st, s.id.clone(), s.addr.key, s.cfg.clone())?;
        for x in std::mem::take(&mut s.extras) {
            match x {
                Extra::Revoke(d) => m.revoke(&mut st, d)?,
                Extra::Rotate => m.rotate(&mut st)?,
                Extra::Add(card) => m.add_member(&mut st, card)?,
                Extra::Recover { code, keep } => m.recover(&mut st, code, keep)?,
            }
        }
        m
    };
    let result: Result<(), NetError> = async {
        loop {
            while let Some(msg) = m.poll_transmit() {
                write_msg(&mut send, &msg, &counters).await?;
            }
            while let Some(e) = m.poll_event() {
                report.add(&e);
                (s.on_event)(&e);
            }
            if s.once && m.is_idle() {
                return Ok(());
            }
            let wait_ms = m.poll_timeout().map(|t| t.saturating_sub(now_ms()));
            tokio::select! {
                r = rx.recv() => match r {
                    Some(Ok(msg)) => {
                        let mut st = lock(s.store);
                        m.handle(&mut st, msg, now_ms())?;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(NetError::Connection("reader stopped".into())),
                },
                Some(()) = recv_local(&mut s.local) => {
                    let mut st = lock(s.store);
                    m.local_changed(&mut st)?;
                }
                _ = tokio::time::sleep(Duration::from_millis(wait_ms.unwrap_or(0))), if wait_ms.is_some() => {
                    let mut st = lock(s.store);
                    m.handle_timeout(&mut st, now_ms())?;
                }
                _ = shutdown_signal(&mut s.shutdown) => return Ok(()),
            }
        }
    }
    .await;
    let _ = send.finish();
    conn.close(0u32.into(), b"bye");
    let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
    report.wire_sent_bytes = counters.sent();
    report.wire_received_bytes = counters.received();
    report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    result.map(|()| report)
}

/// One sync round: connect, pull everything new, push everything local,
/// maybe upload a snapshot, send `extras`, disconnect.
pub async fn relay_round(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: &RelayAddress,
    cfg: RelayClientConfig,
    extras: Vec<Extra>,
    timeout_ms: u64,
    on_event: impl FnMut(&RelayEvent),
) -> Result<RoundReport, NetError> {
    let mut s = Session {
        store,
        id,
        addr,
        cfg: RelayClientConfig {
            subscribe: false,
            ..cfg
        },
        extras,
        once: true,
        local: None,
        shutdown: None,
        on_event,
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), run_session(&mut s))
        .await
        .map_err(|_| NetError::Timeout { timeout_ms })?
}

/// Backoff of a watching session.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Wait before the first reconnection; doubles on each failure.
    pub backoff_initial_ms: u64,
    /// Longest wait between reconnections.
    pub backoff_max_ms: u64,
    /// Give up after this many consecutive failed connections (None: never).
    pub failures_max: Option<u32>,
}

/// A connection that lasted this long was a success: the next failure starts
/// the backoff from the beginning again.
const STABLE_CONNECTION_MS: u64 = 30_000;

/// The reconnect policy of the watch loops (relay and peer): a delay doubling
/// from `backoff_initial_ms` up to `backoff_max_ms`, reset after a stable
/// connection, and at most `failures_max` consecutive failures.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    failures_max: Option<u32>,
    delay_ms: u64,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(opts: &WatchOptions) -> Self {
        Backoff {
            initial_ms: opts.backoff_initial_ms,
            max_ms: opts.backoff_max_ms,
            failures_max: opts.failures_max,
            delay_ms: opts.backoff_initial_ms,
            failures: 0,
        }
    }

    /// Records a retryable failure of the attempt begun at `started`: how long
    /// to wait before the next one, or `None` once too many failed in a row.
    pub(crate) fn next_delay_ms(&mut self, started: Instant) -> Option<u64> {
        if started.elapsed() > Duration::from_millis(STABLE_CONNECTION_MS) {
            self.delay_ms = self.initial_ms;
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures_max.is_some_and(|m| self.failures > m) {
            return None;
        }
        let delay = self.delay_ms;
        self.delay_ms = delay.saturating_mul(2).min(self.max_ms);
        Some(delay)
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            backoff_initial_ms: 250,
            backoff_max_ms: 30_000,
            failures_max: None,
        }
    }
}

/// Stays connected: live events in, local changes (signalled on `local`)
/// out, reconnecting with doubling backoff capped at `backoff_max_ms`.
/// Returns on shutdown, or with the error that reconnecting cannot fix.
#[allow(clippy::too_many_arguments)]
pub async fn relay_watch(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: &RelayAddress,
    cfg: RelayClientConfig,
    opts: WatchOptions,
    local: &mut mpsc::Receiver<()>,
    shutdown: &mut watch::Receiver<bool>,
    mut on_event: impl FnMut(&RelayEvent),
    mut on_error: impl FnMut(&NetError, u64),
) -> Result<(), NetError> {
    let mut backoff = Backoff::new(&opts);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let connected_at = Instant::now();
        let r = {
            let mut s = Session {
                store,
                id,
                addr,
                cfg: RelayClientConfig {
                    subscribe: true,
                    ..cfg.clone()
                },
                extras: Vec::new(),
                once: false,
                local: Some(&mut *local),
                shutdown: Some(&mut *shutdown),
                on_event: &mut on_event,
            };
            run_session(&mut s).await
        };
        match r {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() => {
                let Some(delay) = backoff.next_delay_ms(connected_at) else {
                    return Err(e);
                };
                on_error(&e, delay);
                let mut sd = Some(&mut *shutdown);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                    _ = shutdown_signal(&mut sd) => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Wins the account back with its recovery code (docs/SECURITY.md §3.7):
/// one connection authenticated by the code's root key, which fetches the
/// relay's membership log into `store`, and appends a `Recover` op keeping
/// exactly `keep` (every other device revoked, a new epoch sealed to `keep`
/// wrapping every older key this device holds). `me` is who this device is
/// afterwards; `former` the identity of a lost device whose keys a backup
/// restored (its epoch keys are carried into the new epoch). Sync with a
/// normal round afterwards.
#[allow(clippy::too_many_arguments)]
pub async fn recover_account(
    store: &Mutex<Store>,
    addr: &RelayAddress,
    code: RecoveryCode,
    me: &DeviceIdentity,
    former: Option<DeviceIdentity>,
    keep: Vec<DeviceId>,
    timeout_ms: u64,
) -> Result<Recovered, NetError> {
    let run = async {
        let mut m = {
            let mut st = lock(store);
            RecoverySession::new(&mut st, addr.key, code, me.clone(), former, keep)?
        };
        let (endpoint, conn) = connect_relay(addr, CONNECT_TIMEOUT_MS).await?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let mut rx = spawn_reader::<ServerMsg>(recv, counters.clone());
        let out: Result<Recovered, NetError> = async {
            loop {
                while let Some(msg) = m.poll_transmit() {
                    write_msg(&mut send, &msg, &counters).await?;
                }
                if let Some(r) = m.result() {
                    return Ok(r?);
                }
                match rx.recv().await {
                    Some(Ok(msg)) => {
                        let mut st = lock(store);
                        m.handle(&mut st, msg, now_ms());
                    }
                    Some(Err(e)) => return Err(NetError::from(e)),
                    None => return Err(NetError::Connection("reader stopped".into())),
                }
            }
        }
        .await;
        let _ = send.finish();
        conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
        out
    };
    tokio::time::timeout(Duration::from_millis(timeout_ms), run)
        .await
        .map_err(|_| NetError::Timeout { timeout_ms })?
}

/// How often a waiting side asks the mailbox again (pairing only: the
/// mailbox has no subscription). Bounded by the invitation's expiry.
pub const MAILBOX_POLL_MS: u64 = 250;

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The pairing itself failed (wrong or expired code, refused, redeemed
    /// by another device); get a new invitation.
    #[error(transparent)]
    Pair(#[from] PairError),
    /// The network failed; retry with the same invitation while it is valid.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// One unauthenticated mailbox exchange (take, or put when `put` is given).
async fn mailbox_once(
    addr: &RelayAddress,
    slot: MailboxSlot,
    put: Option<(Vec<u8>, u32)>,
) -> Result<Result<Vec<u8>, MailboxError>, NetError> {
    let (endpoint, conn) = connect_relay(addr, CONNECT_TIMEOUT_MS).await?;
    let (mut send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let counters = Arc::new(Counters::default());
    let mut rx = spawn_reader::<ServerMsg>(recv, counters.clone());
    let mut m = match put {
        Some((blob, ttl_s)) => MailboxTake::put(addr.key, slot, blob, ttl_s),
        None => MailboxTake::new(addr.key, slot),
    };
    let out = loop {
        while let Some(msg) = m.poll_transmit() {
            write_msg(&mut send, &msg, &counters).await?;
        }
        if let Some(r) = m.result() {
            break r;
        }
        match rx.recv().await {
            Some(Ok(msg)) => m.handle(msg),
            Some(Err(e)) => return Err(NetError::from(e)),
            None => return Err(NetError::Connection("reader stopped".into())),
        }
    };
    let _ = send.finish();
    conn.close(0u32.into(), b"bye");
    let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
    Ok(out)
}

fn mailbox_error(e: MailboxError) -> JoinError {
    match e {
        MailboxError::WrongRelay { expected, got } => PairError::OtherRelay {
            token_relay: expected.to_string(),
            given: got.to_string(),
        }
        .into(),
        MailboxError::Taken => PairError::RedeemedByAnother.into(),
        other => NetError::Connection(other.to_string()).into(),
    }
}

/// Takes the blob at `slot`, asking again every [`MAILBOX_POLL_MS`] until
/// it is there or `deadline_ms` (ms since epoch) passed.
async fn await_blob(
    addr: &RelayAddress,
    slot: MailboxSlot,
    deadline_ms: u64,
) -> Result<Vec<u8>, JoinError> {
    loop {
        match mailbox_once(addr, slot, None).await? {
            Ok(blob) => return Ok(blob),
            Err(MailboxError::NotFound) if now_ms() < deadline_ms => {
                tokio::time::sleep(Duration::from_millis(MAILBOX_POLL_MS)).await;
            }
            Err(MailboxError::NotFound) => {
                return Err(PairError::Expired {
                    ago_s: now_ms().saturating_sub(deadline_ms) / 1000,
                }
                .into());
            }
            Err(e) => return Err(mailbox_error(e)),
        }
    }
}

/// The joining side, step 1: leaves this device's sealed request at the
/// token's join slot; returns the code to show. Someone who redeemed the
/// token first makes this fail with [`PairError::RedeemedByAnother`].
pub async fn post_join_request(
    token: &Token,
    given_relay: Option<&RelayKey>,
    keys: &KeyMaterial,
) -> Result<(String, RelayAddress), JoinError> {
    token.check_fresh(now_ms())?;
    let addr = token.check_relay(given_relay)?;
    let (blob, code) = token.request(keys)?;
    let ttl_s = u32::try_from(
        token
            .expires_at_ms()
            .saturating_sub(now_ms())
            .div_ceil(1000),
    )
    .unwrap_or(u32::MAX);
    match mailbox_once(&addr, token.join_slot(), Some((blob, ttl_s))).await? {
        Ok(_) => Ok((code, addr)),
        Err(e) => Err(mailbox_error(e)),
    }
}

/// The joining side, step 2: waits (until the token expires) for the
/// inviter's reply; on a welcome, the identity to save and sync with.
pub async fn await_welcome(
    token: &Token,
    addr: &RelayAddress,
    keys: &mut KeyMaterial,
) -> Result<(DeviceIdentity, String), JoinError> {
    let blob = await_blob(addr, token.reply_slot(), token.expires_at_ms()).await?;
    match token.open_reply(&blob)? {
        Reply::Welcome {
            account,
            inviter_name,
            ..
        } => {
            keys.account = Some(account.0);
            let id = DeviceIdentity::from_material(keys).map_err(PairError::from)?;
            Ok((id, inviter_name))
        }
        Reply::Refused { reason } => Err(PairError::Refused { reason }.into()),
    }
}

/// The inviting side, step 1: waits (until the invitation expires) for a
/// join request; returns it with the code to compare.
pub async fn await_join_request(
    addr: &RelayAddress,
    inv: &Invitation,
) -> Result<Incoming, JoinError> {
    // The relay keeps a taken slot used until the blob would have expired, so a
    // later device using the token is told at once that someone else redeemed it
    // (a marker put after the take left a window in which it was not).
    let blob = await_blob(addr, inv.token.join_slot(), inv.expires_at_ms).await?;
    Ok(inv.open_request(&blob)?)
}

/// The inviting side, step 2: if `approve`, adds the joiner to the
/// membership log (one relay round) and welcomes it; otherwise tells it why
/// not. Returns the round's report when it added the device.
pub async fn answer_join_request(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: &RelayAddress,
    inv: &Invitation,
    incoming: &Incoming,
    approve: Result<(), String>,
    timeout_ms: u64,
) -> Result<Option<RoundReport>, JoinError> {
    let (reply, report) = match approve {
        Ok(()) => {
            let mut added = false;
            let card = incoming.request.card.clone();
            let device = card.device;
            let report = relay_round(
                store,
                id,
                addr,
                RelayClientConfig::default(),
                vec![Extra::Add(card)],
                timeout_ms,
                |e| added |= *e == RelayEvent::Added { device },
            )
            .await?;
            if !added {
                return Err(
                    NetError::Connection("the relay did not confirm the add".into()).into(),
                );
            }
            (
                Reply::Welcome {
                    account: id.account_id(),
                    inviter: id.device_id(),
                    inviter_name: id.device_name().to_owned(),
                },
                Some(report),
            )
        }
        Err(reason) => (Reply::Refused { reason }, None),
    };
    let blob = inv.reply(&reply)?;
    match mailbox_once(
        addr,
        inv.token.reply_slot(),
        Some((blob, inv.ttl_s(now_ms()))),
    )
    .await?
    {
        Ok(_) => Ok(report),
        Err(e) => Err(mailbox_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_gives_up_after_failures_max() {
        let opts = WatchOptions {
            backoff_initial_ms: 250,
            backoff_max_ms: 1_000,
            failures_max: Some(4),
        };
        let mut b = Backoff::new(&opts);
        let now = Instant::now();
        let delays: Vec<Option<u64>> = (0..5).map(|_| b.next_delay_ms(now)).collect();
        assert_eq!(
            delays,
            [Some(250), Some(500), Some(1_000), Some(1_000), None]
        );
    }

    #[test]
    fn backoff_starts_over_after_a_stable_connection() {
        let mut b = Backoff::new(&WatchOptions::default());
        let now = Instant::now();
        assert_eq!(b.next_delay_ms(now), Some(250));
        assert_eq!(b.next_delay_ms(now), Some(500));
        let long_ago = now - Duration::from_millis(STABLE_CONNECTION_MS + 1);
        assert_eq!(b.next_delay_ms(long_ago), Some(250));
    }

    /// A relay address that resolves but never answers (a bound, silent UDP
    /// socket): the handshake gives up at the timeout with a retryable
    /// connect error instead of waiting for QUIC's idle timeout.
    #[tokio::test]
    async fn a_silent_relay_fails_the_connect_at_its_timeout() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        // Any valid ed25519 public key will do: the handshake never starts.
        let key = DeviceIdentity::with_account(
            &KeyMaterial::generate("relay"),
            kith_protocol::AccountId([0; 32]),
        )
        .device_id()
        .0;
        let addr: RelayAddress =
            format!("kith://{}@127.0.0.1:{port}", kith_protocol::RelayKey(key))
                .parse()
                .unwrap();
        let started = Instant::now();
        let err = connect_relay(&addr, 300).await.unwrap_err();
        assert!(
            matches!(&err, NetError::Connect { detail, .. } if detail.contains("300 ms")),
            "{err:?}"
        );
        assert!(err.is_retryable());
        // The timeout is the behaviour: the 300 ms bound ends the attempt,
        // not QUIC's own idle timeout (tens of seconds). 5 s leaves room
        // for a loaded machine and is still far below the idle timeout.
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
