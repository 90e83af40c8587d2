//! A small relay client on quinn, used by the relay's own tests and the load
//! tool. The product client (kith-net) drives the sans-IO sync engine instead;
//! this one shows the minimal correct conversation: connect with the pinned
//! key, hello, authenticate, then requests with ids, queueing any
//! subscription events that arrive while waiting for a response.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kith_protocol::{
    AccountId, Author, Change, ClientMsg, Cursor, ErrorCode, Event, FRAME_BYTES_MAX, FrameDecoder,
    FrameError, MemberKeys, Membership, MembershipOp, PROTOCOL_VERSION, RelayKey, Request,
    Response, Rotation, SealedEntry, SealedEpochKey, ServerMsg,
};

/// A membership log for tests and the load tool: genesis by `root` with
/// `devices[0]`, then every other device added by `devices[0]`. The sealed
/// epoch keys are placeholders: the relay checks who a key is sealed to,
/// never its content (only kith-core devices can open them).
pub fn placeholder_membership(root: &SigningKey, devices: &[&SigningKey]) -> Vec<MembershipOp> {
    let mut m = Membership::new(AccountId::from(root.verifying_key()));
    let mut ops = Vec::new();
    let Some(first) = devices.first() else {
        return ops;
    };
    let member = |k: &SigningKey| MemberKeys {
        device: k.verifying_key().into(),
        seal_key: [0; 32],
    };
    let sealed = |k: &SigningKey| SealedEpochKey {
        to: k.verifying_key().into(),
        enc: [0; 32],
        ciphertext: vec![0; 48],
    };
    let g = m.next_op(
        Author::Root,
        root,
        1,
        Change::Genesis {
            first: member(first),
            rotation: Rotation {
                keys: vec![sealed(first)],
                wrapped: vec![],
            },
        },
        0,
    );
    if m.apply(&g).is_err() {
        return ops;
    }
    ops.push(g);
    for d in &devices[1..] {
        let add = m.next_op(
            Author::Device(first.verifying_key().into()),
            first,
            1,
            Change::Add {
                member: member(d),
                key: sealed(d),
            },
            0,
        );
        if m.apply(&add).is_err() {
            break;
        }
        ops.push(add);
    }
    ops
}

/// The op revoking `target`, signed by `by`, on top of `ops`, with a
/// placeholder epoch key for every remaining member.
pub fn placeholder_revoke(
    ops: &[MembershipOp],
    by: &SigningKey,
    target: kith_protocol::DeviceId,
) -> Option<MembershipOp> {
    let account = ops.first()?.body.account;
    let m = Membership::from_ops(account, ops).ok()?;
    let keys = m
        .members()
        .filter(|x| x.keys.device != target)
        .map(|x| SealedEpochKey {
            to: x.keys.device,
            enc: [0; 32],
            ciphertext: vec![0; 48],
        })
        .collect();
    Some(m.next_op(
        Author::Device(by.verifying_key().into()),
        by,
        m.epoch() + 1,
        Change::Revoke {
            device: target,
            rotation: Rotation {
                keys,
                wrapped: vec![],
            },
        },
        0,
    ))
}

/// What went wrong talking to a relay.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TLS configuration failed.
    #[error("TLS setup: {0}")]
    Tls(#[from] kith_protocol::tls::TlsError),
    /// The QUIC crypto config was refused.
    #[error("QUIC setup: {0}")]
    Setup(String),
    /// The connection could not be started.
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed.
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading failed.
    #[error("read: {0}")]
    Read(String),
    /// The relay sent an undecodable frame.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// The relay refused: `code` says why.
    #[error("relay error {}: {message}", code.name())]
    Relay {
        /// The error code.
        code: ErrorCode,
        /// The relay's message.
        message: String,
        /// True for a connection-level error (the relay closes).
        fatal: bool,
    },
    /// The relay answered with something unexpected.
    #[error("unexpected message from relay: {0}")]
    Unexpected(String),
    /// The relay finished the stream.
    #[error("relay closed the stream")]
    Closed,
}

impl ClientError {
    /// The relay's error code, if this is a relay refusal.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            ClientError::Relay { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client endpoint bound to `bind` (use `127.0.0.1:0` in tests).
pub fn client_endpoint(bind: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::client(bind)
}

/// The quinn client configuration pinning `relay`, with keep-alives below
/// the relay's idle timeout.
pub fn client_config(relay: RelayKey) -> Result<quinn::ClientConfig, ClientError> {
    quic_client_config(kith_protocol::tls::client_config(relay)?)
}

/// Wraps a rustls client configuration (pinned, or WebPKI roots for a relay
/// with a CA certificate) into a quinn one with the relay transport settings.
pub fn quic_client_config(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, ClientError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| ClientError::Setup(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(15)))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
        .datagram_receive_buffer_size(None);
    cfg.transport_config(Arc::new(t));
    Ok(cfg)
}

/// One connection to a relay.
#[derive(Debug)]
pub struct RelayClient {
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: FrameDecoder,
    next_id: u32,
    events: VecDeque<Event>,
    /// The challenge from the relay's Welcome.
    pub challenge: [u8; 32],
    /// The relay key from the Welcome.
    pub relay: RelayKey,
}

impl RelayClient {
    /// Connects, opens the stream, and completes the version handshake.
    pub async fn connect(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        relay: RelayKey,
    ) -> Result<Self, ClientError> {
        Self::connect_with_versions(endpoint, addr, relay, vec![PROTOCOL_VERSION]).await
    }

    /// Like [`RelayClient::connect`] but offering `versions`.
    pub async fn connect_with_versions(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        relay: RelayKey,
        versions: Vec<u16>,
    ) -> Result<Self, ClientError> {
        let cfg = client_config(relay)?;
        Self::connect_with(
            endpoint,
            addr,
            relay,
            cfg,
            kith_protocol::tls::SERVER_NAME,
            versions,
        )
        .await
    }

    /// Connects with an explicit QUIC client configuration and TLS server
    /// name (tests of the TLS layer).
    pub async fn connect_with(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        relay: RelayKey,
        config: quinn::ClientConfig,
        server_name: &str,
        versions: Vec<u16>,
    ) -> Result<Self, ClientError> {
        let conn = endpoint.connect_with(config, addr, server_name)?.await?;
        let (send, recv) = conn.open_bi().await?;
        let mut c = Self {
            conn,
            send,
            recv,
            decoder: FrameDecoder::new(FRAME_BYTES_MAX),
            next_id: 1,
            events: VecDeque::new(),
            challenge: [0; 32],
            relay,
        };
        c.send_msg(&ClientMsg::Hello { versions }).await?;
        match c.read_msg().await? {
            ServerMsg::Welcome {
                relay: r,
                challenge,
                ..
            } => {
                if r != relay {
                    return Err(ClientError::Unexpected(
                        "welcome names another relay".into(),
                    ));
                }
                c.challenge = challenge;
                Ok(c)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// A raw QUIC connection and stream, before any protocol message.
    pub async fn open(
        endpoint: &quinn::Endpoint,
        addr: SocketAddr,
        relay: RelayKey,
    ) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream), ClientError> {
        let conn = endpoint
            .connect_with(client_config(relay)?, addr, kith_protocol::tls::SERVER_NAME)?
            .await?;
        let (send, recv) = conn.open_bi().await?;
        Ok((conn, send, recv))
    }

    /// Authenticates `device_key` for `account`, handing the relay the
    /// membership ops it may lack; returns true if this registered the account.
    pub async fn auth(
        &mut self,
        device_key: &SigningKey,
        account: AccountId,
        membership: Vec<MembershipOp>,
        token: Option<String>,
    ) -> Result<bool, ClientError> {
        let signature = kith_protocol::sign_auth(device_key, &self.relay, &self.challenge);
        self.send_msg(&ClientMsg::Auth {
            account,
            device: device_key.verifying_key().into(),
            signature,
            token,
            membership,
        })
        .await?;
        loop {
            match self.read_msg().await? {
                ServerMsg::AuthOk { registered, .. } => return Ok(registered),
                ServerMsg::Event(e) => self.events.push_back(e),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn request(&mut self, body: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.send_msg(&ClientMsg::Request { id, body }).await?;
        loop {
            match self.read_msg().await? {
                ServerMsg::Response { id: rid, body } if rid == id => return Ok(body),
                ServerMsg::Error {
                    id: Some(rid),
                    code,
                    message,
                } if rid == id => {
                    return Err(ClientError::Relay {
                        code,
                        message,
                        fatal: false,
                    });
                }
                ServerMsg::Event(e) => self.events.push_back(e),
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// Pushes entries; returns the acked head.
    pub async fn push(&mut self, entries: Vec<SealedEntry>) -> Result<u64, ClientError> {
        match self.request(Request::Push { entries }).await? {
            Response::PushAck { seq, .. } => Ok(seq),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Pulls every entry after `cursors`, page by page.
    pub async fn pull_all(
        &mut self,
        mut cursors: Vec<Cursor>,
    ) -> Result<Vec<SealedEntry>, ClientError> {
        let mut all = Vec::new();
        loop {
            let r = self
                .request(Request::Pull {
                    cursors: cursors.clone(),
                    entries_max: 500,
                    bytes_max: 256 * 1024,
                })
                .await?;
            let Response::Entries { entries, more } = r else {
                return Err(ClientError::Unexpected(format!("{r:?}")));
            };
            for e in &entries {
                match cursors.iter_mut().find(|c| c.device == e.device) {
                    Some(c) => c.seq = c.seq.max(e.seq),
                    None => cursors.push(Cursor {
                        device: e.device,
                        seq: e.seq,
                    }),
                }
            }
            all.extend(entries);
            if !more {
                return Ok(all);
            }
        }
    }

    /// The next subscription event (queued or newly received).
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(e);
        }
        match self.read_msg().await? {
            ServerMsg::Event(e) => Ok(e),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Writes one message as a frame.
    pub async fn send_msg(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        let f = kith_protocol::encode_frame(msg, FRAME_BYTES_MAX)?;
        self.send_raw(&f).await
    }

    /// Writes raw bytes to the stream (tests use it for bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.send.write_all(bytes).await?;
        Ok(())
    }

    /// Finishes the sending side (the relay sees end of stream).
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    /// Reads one message; a connection-level error frame becomes `Relay { fatal: true }`.
    ///
    /// Cancel-safe: bytes already received stay in the frame decoder, so a
    /// caller may wrap this in a timeout and call it again.
    pub async fn read_msg(&mut self) -> Result<ServerMsg, ClientError> {
        let msg = loop {
            if let Some(m) = self.decoder.next_msg::<ServerMsg>()? {
                break m;
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(chunk)) => self.decoder.extend(&chunk.bytes),
                Ok(None) => {
                    self.decoder.finish()?;
                    return Err(ClientError::Closed);
                }
                Err(e) => return Err(ClientError::Read(e.to_string())),
            }
        };
        match msg {
            ServerMsg::Error {
                id: None,
                code,
                message,
            } => Err(ClientError::Relay {
                code,
                message,
                fatal: true,
            }),
            m => Ok(m),
        }
    }

    /// The underlying QUIC connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }
}
