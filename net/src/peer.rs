//! Peer-to-peer sync over QUIC. The server presents a self-signed
//! certificate for its device key (ALPN `kith-peer/1`); the client accepts
//! any ed25519 certificate at the TLS layer because the decision is made one
//! layer up: both sides sign a 32-byte TLS keying-material export with their
//! device keys, show their cards and exchange membership logs
//! ([`PeerSync`]), so a device of another account, a revoked device, or a
//! man in the middle (whose two TLS sessions export different bytes), is
//! refused.
//!
//! The same server is the mailbox of direct pairing: a joiner leaves its
//! request (`PairPut`) and takes the reply (`PairRequest`) at the slots of
//! the invitations its [`PairingHost`] offers.
//!
//! One connection carries one bidirectional stream and, on it, any number of
//! exchanges (Hello .. DoneAck, each a fresh [`PeerSync`]). A one-shot client
//! ([`sync_with_peer`]) closes after the first. A watching client
//! ([`peer_watch`]) sends `Watch` after the first and keeps the connection
//! (QUIC keep-alive every [`KEEP_ALIVE_MS`]); it runs another exchange when
//! its keeper reports a local change, or when the server sends `Changed`
//! (the serving device's keeper saw a local change, or another client's
//! exchange brought changes). When the peer goes away (idle timeout
//! [`IDLE_TIMEOUT_MS`], close, reset), the client reconnects with doubling
//! backoff. Queues are bounded: the frame reader's channel, one pending
//! `Changed` per connection (a watch channel), at most [`CONNECTIONS_MAX`]
//! connections per server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kith_core::Store;
use kith_core::identity::KeyMaterial;
use kith_core::sync::pairing::PairingHost;
use kith_core::sync::pairing::{PairError, Reply};
use kith_core::sync::peer::{PEER_ALPN, answer_pair_put, answer_pair_request};
use kith_core::sync::{
    DeviceIdentity, PeerCard, PeerError, PeerMsg, PeerRole, PeerStats, PeerSync,
};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::frames::{Counters, spawn_reader, write_msg};
use crate::relay::{JoinError, NetError, WatchOptions, client_endpoint, now_ms};

const BINDING_LABEL: &[u8] = b"kith-peer-binding-v1";
/// Longest one exchange (Hello .. DoneAck) may take.
pub const SESSION_TIMEOUT_MS: u64 = 120_000;
/// QUIC keep-alive on peer connections: a watching connection stays open
/// through NATs and idle periods.
pub const KEEP_ALIVE_MS: u64 = 5_000;
/// A peer that sends nothing (not even keep-alives) for this long is gone:
/// the watching client reconnects.
pub const IDLE_TIMEOUT_MS: u64 = 20_000;
/// Longest a connection attempt waits for the peer's answer.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;

fn peer_transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)))
        .max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_millis(IDLE_TIMEOUT_MS)).ok())
        // One stream per connection carries every exchange.
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    t
}

fn peer_client_config() -> Result<quinn::ClientConfig, NetError> {
    // Authentication happens in the peer handshake, bound to this session.
    let tls = kith_protocol::tls::client_config_any_ed25519(PEER_ALPN)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(peer_transport()));
    Ok(cfg)
}

fn binding(conn: &quinn::Connection) -> Result<[u8; 32], NetError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, BINDING_LABEL, b"")
        .map_err(|_| NetError::Tls("cannot export keying material".into()))?;
    Ok(out)
}

/// What a peer session did.
#[derive(Debug, Clone, Default)]
pub struct PeerReport {
    /// What the sync machine did (changes each way, round trips).
    pub stats: PeerStats,
    /// The other device, once it authenticated; `None` if the session failed before.
    pub peer: Option<PeerCard>,
    /// Frame bytes sent.
    pub wire_sent_bytes: u64,
    /// Frame bytes received.
    pub wire_received_bytes: u64,
    /// Wall time of the session.
    pub elapsed_ms: u64,
}

/// Wakes the peer server's watching connections: "this device has new
/// changes". Cheap to clone; notifications coalesce.
#[derive(Debug, Clone)]
pub struct ChangeNotifier(watch::Sender<u64>);

impl ChangeNotifier {
    /// Tells every watching connection to sync; never blocks.
    pub fn notify(&self) {
        self.0.send_modify(|g| *g = g.wrapping_add(1));
    }
}

/// A bound peer server.
#[derive(Debug)]
pub struct PeerServer {
    endpoint: quinn::Endpoint,
    changes: watch::Sender<u64>,
}

impl PeerServer {
    /// Binds `addr` (use `127.0.0.1:0` in tests) with a certificate for the device key.
    pub fn bind(addr: SocketAddr, id: &DeviceIdentity) -> Result<Self, NetError> {
        let mut tls = kith_protocol::tls::server_config(id.device_signing_key())
            .map_err(|e| NetError::Tls(e.to_string()))?;
        tls.alpn_protocols = vec![PEER_ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| NetError::Tls(e.to_string()))?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(Arc::new(peer_transport()));
        let endpoint = quinn::Endpoint::server(cfg, addr).map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            endpoint,
            changes: watch::channel(0).0,
        })
    }

    /// The address actually bound (the port chosen for `:0`).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint
            .local_addr()
            .map_err(|e| NetError::Connection(e.to_string()))
    }

    /// A handle to tell watching clients that this device has new local
    /// changes (the serving process's keeper calls it; changes received from
    /// one client are announced to the others by the server itself).
    pub fn notifier(&self) -> ChangeNotifier {
        ChangeNotifier(self.changes.clone())
    }

    /// Serves connections (sync exchanges, live watching, direct pairing)
    /// until `shutdown` resolves. `on_session` sees the outcome of every
    /// exchange, and of every connection that failed.
    pub async fn run(
        self,
        store: Arc<Mutex<Store>>,
        id: DeviceIdentity,
        pairing: Arc<Mutex<PairingHost>>,
        shutdown: impl Future<Output = ()>,
        on_session: impl Fn(Result<PeerReport, NetError>) + Send + Sync + 'static,
    ) -> Result<(), NetError> {
        let on_session = Arc::new(on_session);
        let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX as usize));
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                inc = self.endpoint.accept() => {
                    let Some(inc) = inc else { break };
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        inc.refuse();
                        continue;
                    };
                    let ctx = ServeCtx {
                        store: store.clone(),
                        id: id.clone(),
                        pairing: pairing.clone(),
                        changes: self.changes.clone(),
                        stop: stop_rx.clone(),
                    };
                    let cb = on_session.clone();
                    tokio::spawn(async move {
                        let cb2 = cb.clone();
                        if let Err(e) = serve_conn(inc, ctx, move |r| cb2(Ok(r))).await {
                            cb(Err(e));
                        }
                        drop(permit);
                    });
                }
            }
        }
        // Graceful: connections between exchanges end their stream, one in
        // an exchange finishes it first, and each waits (bounded) for the
        // client to read the last frames; closing the endpoint at once would
        // discard a DoneAck still in flight.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(
            Duration::from_millis(SHUTDOWN_GRACE_MS),
            slots.acquire_many(CONNECTIONS_MAX),
        )
        .await;
        self.endpoint.close(0u32.into(), b"shutdown");
        Ok(())
    }
}

/// Most connections a peer server serves at once (a user's own devices).
pub const CONNECTIONS_MAX: u32 = 32;
/// Longest a stopping server waits for its connections to end.
pub const SHUTDOWN_GRACE_MS: u64 = 3_000;

struct ServeCtx {
    store: Arc<Mutex<Store>>,
    id: DeviceIdentity,
    pairing: Arc<Mutex<PairingHost>>,
    changes: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
}

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // Every store write is one redb transaction: a panic elsewhere cannot
    // leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One connection: exchanges one after the other on its stream (a one-shot
/// client closes after the first; a watching client keeps it open and is
/// sent `Changed` when this device has something new).
async fn serve_conn(
    inc: quinn::Incoming,
    ctx: ServeCtx,
    on_exchange: impl Fn(PeerReport),
) -> Result<(), NetError> {
    let conn = inc.await.map_err(|e| NetError::Connection(e.to_string()))?;
    let (mut send, recv) = conn
        .accept_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let counters = Arc::new(Counters::default());
    let mut rx = spawn_reader::<PeerMsg>(recv, counters.clone());
    let bind = binding(&conn)?;
    let mut changes = ctx.changes.subscribe();
    changes.mark_unchanged();
    let mut stop = ctx.stop.clone();
    let mut m = PeerSync::new(ctx.id.clone(), PeerRole::Server, bind);
    let mut authenticated = false;
    let mut watching = false;
    let mut started = Instant::now();
    let mut base = (0u64, 0u64);
    let result: Result<(), NetError> = async {
        loop {
            let deadline = started + Duration::from_millis(SESSION_TIMEOUT_MS);
            let in_exchange = !m.is_fresh();
            tokio::select! {
                r = rx.recv() => {
                    let msg = match r {
                        Some(Ok(msg)) => msg,
                        // The client closing between exchanges ends the connection normally.
                        Some(Err(_)) | None if !in_exchange => return Ok(()),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(NetError::Connection("reader stopped".into())),
                    };
                    match msg {
                        PeerMsg::PairRequest { slot } if !in_exchange && !authenticated => {
                            let answer = {
                                let mut host = ctx.pairing.lock().unwrap_or_else(|e| e.into_inner());
                                answer_pair_request(&mut host, &slot, now_ms())
                            };
                            write_msg(&mut send, &answer, &counters).await?;
                            return Ok(());
                        }
                        PeerMsg::PairPut { slot, blob } if !in_exchange && !authenticated => {
                            let answer = {
                                let mut host = ctx.pairing.lock().unwrap_or_else(|e| e.into_inner());
                                answer_pair_put(&mut host, slot, blob, now_ms())
                            };
                            write_msg(&mut send, &answer, &counters).await?;
                            return Ok(());
                        }
                        PeerMsg::Watch if authenticated && !in_exchange => {
                            watching = true;
                            continue;
                        }
                        PeerMsg::Watch => {
                            let refusal = PeerMsg::Refused { reason: "watch before a completed exchange".into() };
                            let _ = write_msg(&mut send, &refusal, &counters).await;
                            return Err(PeerError::Protocol("watch before a completed exchange".into()).into());
                        }
                        msg => {
                            if !in_exchange {
                                started = Instant::now();
                                base = (counters.sent(), counters.received());
                            }
                            let handled = m.handle(&mut lock(&ctx.store), msg, now_ms());
                            if let Err(e) = handled {
                                let _ = write_msg(&mut send, &PeerSync::refusal(&e), &counters).await;
                                return Err(e.into());
                            }
                            while let Some(out) = m.poll_transmit() {
                                write_msg(&mut send, &out, &counters).await?;
                            }
                        }
                    }
                    if m.is_finished() {
                        authenticated = true;
                        let report = PeerReport {
                            stats: m.stats().clone(),
                            peer: m.peer().cloned(),
                            wire_sent_bytes: counters.sent() - base.0,
                            wire_received_bytes: counters.received() - base.1,
                            elapsed_ms: ms_since(started),
                        };
                        if report.stats.changes_received > 0 {
                            // Announce to the other watching connections, not this one.
                            ctx.changes.send_modify(|g| *g = g.wrapping_add(1));
                            changes.mark_unchanged();
                        }
                        on_exchange(report);
                        m = PeerSync::new(ctx.id.clone(), PeerRole::Server, bind);
                    }
                }
                r = changes.changed(), if watching => {
                    if r.is_err() {
                        return Ok(());
                    }
                    changes.mark_unchanged();
                    write_msg(&mut send, &PeerMsg::Changed, &counters).await?;
                }
                _ = tokio::time::sleep_until(deadline.into()), if in_exchange => {
                    return Err(NetError::Timeout { timeout_ms: SESSION_TIMEOUT_MS });
                }
                () = async { let _ = stop.wait_for(|s| *s).await; }, if !in_exchange => return Ok(()),
            }
        }
    }
    .await;
    let _ = send.finish();
    // Let the client read the last frames before the connection goes.
    let _ = tokio::time::timeout(Duration::from_millis(2000), conn.closed()).await;
    result
}

async fn connect_peer(addr: SocketAddr) -> Result<(quinn::Endpoint, quinn::Connection), NetError> {
    let endpoint = client_endpoint(&addr)?;
    let conn = endpoint
        .connect_with(peer_client_config()?, addr, "kith-peer")
        .map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?
        .await
        .map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
    Ok((endpoint, conn))
}

/// The client side of one connection: a stream, its reader, the counters.
struct ClientConn {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: quinn::SendStream,
    rx: tokio::sync::mpsc::Receiver<Result<PeerMsg, crate::frames::FrameIoError>>,
    counters: Arc<Counters>,
    binding: [u8; 32],
    key: String,
    /// The server said `Changed` during an exchange: run another.
    changed: bool,
}

impl ClientConn {
    async fn open(addr: SocketAddr) -> Result<Self, NetError> {
        // A peer that is gone does not answer at all: do not wait for the idle timeout.
        let (endpoint, conn) = tokio::time::timeout(
            Duration::from_millis(CONNECT_TIMEOUT_MS),
            connect_peer(addr),
        )
        .await
        .map_err(|_| NetError::Connect {
            addr: addr.to_string(),
            detail: format!("no answer within {CONNECT_TIMEOUT_MS} ms"),
        })??;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let rx = spawn_reader::<PeerMsg>(recv, counters.clone());
        let binding = binding(&conn)?;
        Ok(Self {
            endpoint,
            conn,
            send,
            rx,
            counters,
            binding,
            key: addr.to_string(),
            changed: false,
        })
    }

    /// One exchange (Hello .. DoneAck), bounded by [`SESSION_TIMEOUT_MS`].
    async fn exchange(
        &mut self,
        store: &Mutex<Store>,
        id: &DeviceIdentity,
    ) -> Result<PeerReport, NetError> {
        let fut = async {
            let started = Instant::now();
            let base = (self.counters.sent(), self.counters.received());
            let mut m = {
                let mut st = lock(store);
                let hint = kith_core::sync::peer::peer_hint(&mut st, &self.key)?;
                let mut m =
                    PeerSync::new(id.clone(), PeerRole::Client, self.binding).with_hint(hint);
                m.start(&mut st, now_ms())?;
                m
            };
            loop {
                while let Some(out) = m.poll_transmit() {
                    write_msg(&mut self.send, &out, &self.counters).await?;
                }
                if m.is_finished() {
                    break;
                }
                let msg = match self.rx.recv().await {
                    Some(Ok(PeerMsg::Changed)) => {
                        self.changed = true;
                        continue;
                    }
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(NetError::Connection("reader stopped".into())),
                };
                let handled = m.handle(&mut lock(store), msg, now_ms());
                if let Err(e) = handled {
                    let _ = write_msg(&mut self.send, &PeerSync::refusal(&e), &self.counters).await;
                    return Err(e.into());
                }
            }
            if let Some(p) = m.peer() {
                kith_core::sync::peer::remember_peer(&mut lock(store), &self.key, &p.device)?;
            }
            Ok(PeerReport {
                stats: m.stats().clone(),
                peer: m.peer().cloned(),
                wire_sent_bytes: self.counters.sent() - base.0,
                wire_received_bytes: self.counters.received() - base.1,
                elapsed_ms: ms_since(started),
            })
        };
        tokio::time::timeout(Duration::from_millis(SESSION_TIMEOUT_MS), fut)
            .await
            .map_err(|_| NetError::Timeout {
                timeout_ms: SESSION_TIMEOUT_MS,
            })?
    }

    async fn close(mut self) {
        let _ = self.send.finish();
        self.conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_millis(300), self.endpoint.wait_idle()).await;
    }
}

/// One sync session with the peer server at `addr`.
pub async fn sync_with_peer(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: SocketAddr,
) -> Result<PeerReport, NetError> {
    let fut = async {
        let started = Instant::now();
        let mut c = ClientConn::open(addr).await?;
        let r = c.exchange(store, id).await;
        let counters = c.counters.clone();
        c.close().await;
        // The whole connection, handshake frames included.
        r.map(|mut r| {
            r.wire_sent_bytes = counters.sent();
            r.wire_received_bytes = counters.received();
            r.elapsed_ms = ms_since(started);
            r
        })
    };
    tokio::time::timeout(Duration::from_millis(SESSION_TIMEOUT_MS), fut)
        .await
        .map_err(|_| NetError::Timeout {
            timeout_ms: SESSION_TIMEOUT_MS,
        })?
}

/// Live peer sync: keeps a connection to the peer server at `addr` open and
/// runs an exchange at once, then whenever `local` signals a local change or
/// the server announces one (`Changed`). Reconnects with doubling backoff
/// (`opts`) when the peer goes away; returns on shutdown, or with an error
/// reconnecting cannot fix (refused, not a member, protocol, storage).
/// `on_exchange` sees every completed exchange.
#[allow(clippy::too_many_arguments)]
pub async fn peer_watch(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: SocketAddr,
    opts: WatchOptions,
    local: &mut mpsc::Receiver<()>,
    shutdown: &mut watch::Receiver<bool>,
    mut on_exchange: impl FnMut(&PeerReport),
    mut on_error: impl FnMut(&NetError, u64),
) -> Result<(), NetError> {
    let mut backoff = crate::relay::Backoff::new(&opts);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let connected_at = Instant::now();
        let r = watch_conn(store, id, addr, local, shutdown, &mut on_exchange).await;
        match r {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retryable() => {
                let Some(delay) = backoff.next_delay_ms(connected_at) else {
                    return Err(e);
                };
                on_error(&e, delay);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
                    _ = wait_true(shutdown) => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask to stop any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Exchanges coalesced: signals that arrive while one runs cause one more.
async fn watch_conn(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: SocketAddr,
    local: &mut mpsc::Receiver<()>,
    shutdown: &mut watch::Receiver<bool>,
    on_exchange: &mut impl FnMut(&PeerReport),
) -> Result<(), NetError> {
    let mut c = ClientConn::open(addr).await?;
    let result: Result<(), NetError> = async {
        // Local changes made while disconnected are covered by this exchange.
        while local.try_recv().is_ok() {}
        let r = c.exchange(store, id).await?;
        on_exchange(&r);
        write_msg(&mut c.send, &PeerMsg::Watch, &c.counters).await?;
        let mut local_open = true;
        loop {
            let mut run = std::mem::take(&mut c.changed);
            if !run {
                tokio::select! {
                    got = local.recv(), if local_open => match got {
                        Some(()) => run = true,
                        // Nobody can signal any more: keep following the peer's announcements.
                        None => local_open = false,
                    },
                    msg = c.rx.recv() => match msg {
                        Some(Ok(PeerMsg::Changed)) => run = true,
                        Some(Ok(PeerMsg::Refused { reason })) => {
                            return Err(PeerError::Refused(reason).into());
                        }
                        Some(Ok(other)) => {
                            return Err(PeerError::Protocol(format!(
                                "unexpected {other:?} between exchanges"
                            ))
                            .into());
                        }
                        Some(Err(e)) => return Err(e.into()),
                        None => return Err(NetError::Connection("reader stopped".into())),
                    },
                    _ = wait_true(shutdown) => return Ok(()),
                }
            }
            if run {
                while local.try_recv().is_ok() {}
                let r = c.exchange(store, id).await?;
                on_exchange(&r);
            }
        }
    }
    .await;
    c.close().await;
    result
}

/// One pairing message to the inviting device's server and its answer.
async fn pair_once(addr: SocketAddr, msg: PeerMsg) -> Result<PeerMsg, NetError> {
    let fut = async {
        let (endpoint, conn) = connect_peer(addr).await?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let mut rx = spawn_reader::<PeerMsg>(recv, counters.clone());
        write_msg(&mut send, &msg, &counters).await?;
        let r = rx.recv().await;
        let _ = send.finish();
        conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
        match r {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(NetError::from(e)),
            None => Err(NetError::Connection("no answer".into())),
        }
    };
    tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS * 2), fut)
        .await
        .map_err(|_| NetError::Timeout {
            timeout_ms: CONNECT_TIMEOUT_MS * 2,
        })?
}

/// Direct pairing, joining side: leaves this device's request at the
/// inviting device's server, then waits (until the token expires) for its
/// reply. `on_code` gets the code to show as soon as the request is posted.
pub async fn join_via_peer(
    addr: SocketAddr,
    token: &kith_core::sync::Token,
    keys: &mut KeyMaterial,
    on_code: impl FnOnce(&str),
) -> Result<(DeviceIdentity, String), JoinError> {
    token.check_peer()?;
    token.check_fresh(now_ms())?;
    let (blob, code) = token.request(keys)?;
    match pair_once(
        addr,
        PeerMsg::PairPut {
            slot: token.join_slot(),
            blob,
        },
    )
    .await?
    {
        PeerMsg::PairStored => {}
        PeerMsg::Refused { .. } => return Err(PairError::RedeemedByAnother.into()),
        other => {
            return Err(NetError::Connection(format!("unexpected answer {other:?}")).into());
        }
    }
    on_code(&code);
    let blob = loop {
        match pair_once(
            addr,
            PeerMsg::PairRequest {
                slot: token.reply_slot(),
            },
        )
        .await?
        {
            PeerMsg::PairBlob { blob } => break blob,
            PeerMsg::Refused { .. } if now_ms() < token.expires_at_ms() => {
                tokio::time::sleep(Duration::from_millis(crate::relay::MAILBOX_POLL_MS)).await;
            }
            PeerMsg::Refused { .. } => {
                return Err(PairError::Expired { ago_s: 0 }.into());
            }
            other => {
                return Err(NetError::Connection(format!("unexpected answer {other:?}")).into());
            }
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Dev {
        _dir: tempfile::TempDir,
        store: Arc<Mutex<Store>>,
        id: DeviceIdentity,
    }

    /// Two devices of one account: `a` created it and added `b`.
    fn pair() -> (Dev, Dev) {
        use kith_core::sync::membership;
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (mut sa, mut sb) = (
            Store::open(da.path()).unwrap(),
            Store::open(db.path()).unwrap(),
        );
        let mut ka = KeyMaterial::generate("laptop");
        let (a, _code) = membership::create_account(&mut sa, &mut ka, now_ms()).unwrap();
        let mut kb = KeyMaterial::generate("phone");
        kb.account = Some(a.account_id().0);
        let b = DeviceIdentity::from_material(&kb).unwrap();
        let add = membership::add_op(&mut sa, &a, b.card(), now_ms()).unwrap();
        membership::absorb(&mut sa, &a, &[add]).unwrap();
        let ops = membership::ops(&mut sa).unwrap();
        membership::absorb(&mut sb, &b, &ops).unwrap();
        let wrap = |dir, store, id| Dev {
            _dir: dir,
            store: Arc::new(Mutex::new(store)),
            id,
        };
        (wrap(da, sa, a), wrap(db, sb, b))
    }

    async fn serve(d: &Dev) -> (SocketAddr, ChangeNotifier, watch::Sender<bool>) {
        let server = PeerServer::bind("127.0.0.1:0".parse().unwrap(), &d.id).unwrap();
        let addr = server.local_addr().unwrap();
        let notifier = server.notifier();
        let (stop, mut rx) = watch::channel(false);
        let (store, id) = (d.store.clone(), d.id.clone());
        tokio::spawn(async move {
            server
                .run(
                    store,
                    id,
                    Arc::new(Mutex::new(PairingHost::default())),
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    },
                    |_| {},
                )
                .await
                .unwrap();
        });
        (addr, notifier, stop)
    }

    async fn next(c: &mut ClientConn) -> PeerMsg {
        tokio::time::timeout(Duration::from_secs(10), c.rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn watch_before_an_exchange_is_refused() {
        let (a, _b) = pair();
        let (addr, _n, stop) = serve(&a).await;
        let mut c = ClientConn::open(addr).await.unwrap();
        write_msg(&mut c.send, &PeerMsg::Watch, &c.counters)
            .await
            .unwrap();
        assert!(matches!(next(&mut c).await, PeerMsg::Refused { .. }));
        c.close().await;
        stop.send(true).unwrap();
    }

    #[tokio::test]
    async fn a_watching_connection_is_told_about_new_changes_and_runs_more_exchanges() {
        let (a, b) = pair();
        let (addr, notifier, stop) = serve(&a).await;
        let mut c = ClientConn::open(addr).await.unwrap();
        let first = c.exchange(&b.store, &b.id).await.unwrap();
        assert_eq!(first.peer.unwrap().device, a.id.device_id());
        write_msg(&mut c.send, &PeerMsg::Watch, &c.counters)
            .await
            .unwrap();
        a.store
            .lock()
            .unwrap()
            .add_contact(kith_core::NewContact::named("Ana Lima"))
            .unwrap();
        notifier.notify();
        assert_eq!(next(&mut c).await, PeerMsg::Changed);
        // Several exchanges on the same connection.
        let r = c.exchange(&b.store, &b.id).await.unwrap();
        assert!(r.stats.changes_received >= 1, "{r:?}");
        assert_eq!(b.store.lock().unwrap().all_contacts().unwrap().len(), 1);
        let idle = c.exchange(&b.store, &b.id).await.unwrap();
        assert_eq!(idle.stats.changes_received + idle.stats.changes_sent, 0);
        assert_eq!(idle.stats.round_trips, 1);
        c.close().await;
        stop.send(true).unwrap();
    }
}
