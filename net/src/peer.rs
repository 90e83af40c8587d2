//! Peer-to-peer sync over QUIC. The server presents a self-signed
//! certificate for its device key (ALPN `kith-peer/1`); the client accepts
//! any ed25519 certificate at the TLS layer because the decision is made one
//! layer up: both sides sign a 32-byte TLS keying-material export with their
//! device keys and show certificates of the same account
//! ([`PeerSync`]), so a device of another account, or a man in the middle
//! (whose two TLS sessions export different bytes), is refused.
//!
//! The same server answers direct pairing requests from its
//! [`PairingHost`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kith_core::Store;
use kith_core::sync::pairing::{PairingHost, Token};
use kith_core::sync::peer::{PEER_ALPN, answer_pair_request};
use kith_core::sync::{DeviceIdentity, PeerMsg, PeerRole, PeerStats, PeerSync};
use kith_protocol::DeviceCert;

use crate::frames::{Counters, spawn_reader, write_msg};
use crate::relay::{JoinError, NetError, client_endpoint, client_transport, now_ms};

const BINDING_LABEL: &[u8] = b"kith-peer-binding-v1";
/// Longest a peer session may take.
pub const SESSION_TIMEOUT_MS: u64 = 120_000;

fn peer_client_config() -> Result<quinn::ClientConfig, NetError> {
    // Authentication happens in the peer handshake, bound to this session.
    let tls = kith_protocol::tls::client_config_any_ed25519(PEER_ALPN)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(client_transport()));
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
    pub stats: PeerStats,
    pub peer: Option<DeviceCert>,
    pub wire_sent_bytes: u64,
    pub wire_received_bytes: u64,
    pub elapsed_ms: u64,
}

/// A bound peer server.
#[derive(Debug)]
pub struct PeerServer {
    endpoint: quinn::Endpoint,
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
        cfg.transport_config(Arc::new(client_transport()));
        let endpoint = quinn::Endpoint::server(cfg, addr).map_err(|e| NetError::Connect {
            addr: addr.to_string(),
            detail: e.to_string(),
        })?;
        Ok(Self { endpoint })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint
            .local_addr()
            .map_err(|e| NetError::Connection(e.to_string()))
    }

    /// Serves sessions (and direct pairing) until `shutdown` resolves.
    /// `on_session` sees the outcome of every session.
    pub async fn run(
        self,
        store: Arc<Mutex<Store>>,
        id: DeviceIdentity,
        pairing: Arc<Mutex<PairingHost>>,
        shutdown: impl Future<Output = ()>,
        on_session: impl Fn(Result<PeerReport, NetError>) + Send + Sync + 'static,
    ) -> Result<(), NetError> {
        let on_session = Arc::new(on_session);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                inc = self.endpoint.accept() => {
                    let Some(inc) = inc else { break };
                    let (store, id, pairing, cb) = (store.clone(), id.clone(), pairing.clone(), on_session.clone());
                    tokio::spawn(async move {
                        let r = tokio::time::timeout(
                            Duration::from_millis(SESSION_TIMEOUT_MS),
                            serve_one(inc, store, id, pairing),
                        )
                        .await
                        .unwrap_or(Err(NetError::Timeout { timeout_ms: SESSION_TIMEOUT_MS }));
                        cb(r);
                    });
                }
            }
        }
        self.endpoint.close(0u32.into(), b"shutdown");
        Ok(())
    }
}

async fn serve_one(
    inc: quinn::Incoming,
    store: Arc<Mutex<Store>>,
    id: DeviceIdentity,
    pairing: Arc<Mutex<PairingHost>>,
) -> Result<PeerReport, NetError> {
    let started = Instant::now();
    let conn = inc.await.map_err(|e| NetError::Connection(e.to_string()))?;
    let (mut send, recv) = conn
        .accept_bi()
        .await
        .map_err(|e| NetError::Connection(e.to_string()))?;
    let counters = Arc::new(Counters::default());
    let mut rx = spawn_reader::<PeerMsg>(recv, counters.clone());
    let mut m = PeerSync::new(id, PeerRole::Server, binding(&conn)?);
    let mut result = Ok(());
    while let Some(r) = rx.recv().await {
        let msg = match r {
            Ok(msg) => msg,
            // The client closing after DoneAck ends the session normally.
            Err(crate::frames::FrameIoError::Closed) => break,
            Err(_) if m.is_finished() => break,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        if let PeerMsg::PairRequest { slot } = &msg {
            let answer = {
                let mut host = pairing.lock().unwrap_or_else(|e| e.into_inner());
                answer_pair_request(&mut host, slot, now_ms())
            };
            write_msg(&mut send, &answer, &counters).await?;
            break;
        }
        let handled = {
            let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
            m.handle(&mut st, msg, now_ms())
        };
        if let Err(e) = handled {
            let _ = write_msg(&mut send, &PeerSync::refusal(&e), &counters).await;
            result = Err(e.into());
            break;
        }
        while let Some(out) = m.poll_transmit() {
            write_msg(&mut send, &out, &counters).await?;
        }
    }
    let _ = send.finish();
    // Let the client read the last frames before the connection goes.
    let _ = tokio::time::timeout(Duration::from_millis(2000), conn.closed()).await;
    result.map(|()| PeerReport {
        stats: m.stats().clone(),
        peer: m.peer().cloned(),
        wire_sent_bytes: counters.sent(),
        wire_received_bytes: counters.received(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
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

/// One sync session with the peer server at `addr`.
pub async fn sync_with_peer(
    store: &Mutex<Store>,
    id: &DeviceIdentity,
    addr: SocketAddr,
) -> Result<PeerReport, NetError> {
    let fut = async {
        let started = Instant::now();
        let (endpoint, conn) = connect_peer(addr).await?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let mut rx = spawn_reader::<PeerMsg>(recv, counters.clone());
        let key = addr.to_string();
        let mut m = {
            let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
            let hint = kith_core::sync::peer::peer_hint(&mut st, &key)?;
            let mut m =
                PeerSync::new(id.clone(), PeerRole::Client, binding(&conn)?).with_hint(hint);
            m.start(&mut st, now_ms())?;
            m
        };
        let result: Result<(), NetError> = async {
            loop {
                while let Some(out) = m.poll_transmit() {
                    write_msg(&mut send, &out, &counters).await?;
                }
                if m.is_finished() {
                    return Ok(());
                }
                let msg = match rx.recv().await {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(NetError::Connection("reader stopped".into())),
                };
                let handled = {
                    let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
                    m.handle(&mut st, msg, now_ms())
                };
                if let Err(e) = handled {
                    let _ = write_msg(&mut send, &PeerSync::refusal(&e), &counters).await;
                    return Err(e.into());
                }
            }
        }
        .await;
        let _ = send.finish();
        conn.close(0u32.into(), b"bye");
        let _ = tokio::time::timeout(Duration::from_millis(300), endpoint.wait_idle()).await;
        if result.is_ok()
            && let Some(p) = m.peer()
        {
            let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
            kith_core::sync::peer::remember_peer(&mut st, &key, &p.device)?;
        }
        result.map(|()| PeerReport {
            stats: m.stats().clone(),
            peer: m.peer().cloned(),
            wire_sent_bytes: counters.sent(),
            wire_received_bytes: counters.received(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    };
    tokio::time::timeout(Duration::from_millis(SESSION_TIMEOUT_MS), fut)
        .await
        .map_err(|_| NetError::Timeout {
            timeout_ms: SESSION_TIMEOUT_MS,
        })?
}

/// Redeems a peer-mode token at the inviting device's server.
pub async fn join_via_peer(
    addr: SocketAddr,
    token: &Token,
    device_name: &str,
) -> Result<(DeviceIdentity, DeviceCert), JoinError> {
    token.check_peer()?;
    token.check_fresh(now_ms())?;
    let fut = async {
        let (endpoint, conn) = connect_peer(addr).await?;
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let mut rx = spawn_reader::<PeerMsg>(recv, counters.clone());
        write_msg(
            &mut send,
            &PeerMsg::PairRequest { slot: token.slot() },
            &counters,
        )
        .await?;
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
    let answer = tokio::time::timeout(Duration::from_millis(30_000), fut)
        .await
        .map_err(|_| NetError::Timeout { timeout_ms: 30_000 })??;
    match answer {
        PeerMsg::PairBlob { blob } => Ok(token.join(&blob, device_name, now_ms())?),
        PeerMsg::Refused { .. } => Err(kith_core::sync::PairError::AlreadyUsed.into()),
        other => Err(NetError::Connection(format!("unexpected answer {other:?}")).into()),
    }
}
