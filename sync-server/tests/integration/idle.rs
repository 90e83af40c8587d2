//! Held and idle connections: what the relay's memory work must not change.
//! A connection that goes silent is dropped at the idle timeout, while one
//! kept alive stays held across many idle rounds (each one frees and
//! re-allocates quinn's datagram buffer, third_party/quinn) and still
//! receives pushes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kith_protocol::{Event, Request, Response};
use kith_relay::client::{RelayClient, quic_client_config};
use kith_relay::{Limits, RelayConfig};

use crate::common::{Account, RelayExt, TestRelay};

const T: Duration = Duration::from_secs(10);
const IDLE_TIMEOUT_MS: u64 = 400;
const KEEP_ALIVE_MS: u64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_times_out_and_kept_alive_one_still_gets_pushes() {
    let relay = TestRelay::temp(RelayConfig {
        limits: Limits {
            idle_timeout_ms: IDLE_TIMEOUT_MS,
            ..Limits::default()
        },
        ..RelayConfig::default()
    });
    let a = Account::new();
    let (pusher, held, silent) = (a.device("laptop"), a.device("phone"), a.device("tablet"));

    // Kept alive well inside the relay's idle timeout.
    let tls = kith_protocol::tls::client_config(relay.relay_key()).unwrap();
    let mut cfg = quic_client_config(tls).unwrap();
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(KEEP_ALIVE_MS)))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    cfg.transport_config(Arc::new(t));
    let mut h = RelayClient::connect_with(
        relay.endpoint(),
        relay.addr,
        relay.relay_key(),
        cfg,
        kith_protocol::tls::SERVER_NAME,
        vec![kith_protocol::PROTOCOL_VERSION],
    )
    .await
    .unwrap();
    h.auth(&held.key, held.account, held.membership(), None)
        .await
        .unwrap();
    assert_eq!(
        h.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed
    );

    // The default client keeps alive every 15 s: silent for this relay.
    let s = relay.connect(&silent).await;
    let err = tokio::time::timeout(T, s.connection().closed())
        .await
        .expect("a silent connection outlived the idle timeout");
    assert_eq!(err, quinn::ConnectionError::TimedOut);
    // The relay drops it too (its timer runs from the last packet it got).
    tokio::time::timeout(T, async {
        while relay.metrics.connections_current.load(Ordering::Relaxed) != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the relay still holds the silent connection");

    // The held connection saw many idle rounds by now, and still works.
    assert!(h.connection().close_reason().is_none());
    let mut p = relay.connect(&pusher).await;
    assert_eq!(p.push(pusher.entries(1, 2)).await.unwrap(), 2);
    let ev = crate::common::next_event(&mut h).await;
    assert_eq!(
        ev,
        Event::Entries {
            entries: pusher.entries(1, 2)
        }
    );
    assert_eq!(h.request(Request::Ping).await.unwrap(), Response::Pong);
}

/// Key updates with the next 1-RTT keys derived lazily (third_party/quinn-proto,
/// KITH-PATCH.md): the relay no longer holds them from the handshake on, so a
/// key update by the device, and one by the relay itself, must still carry
/// requests and pushes both ways. The relay starts its own update after a
/// random 10-1,000 packets on a connection (quinn-proto's first key phase), so
/// 1,200 round trips on one connection cross it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_updates_by_device_and_relay_keep_pushes_flowing() {
    const ROUND_TRIPS: usize = 1_200;
    let relay = TestRelay::temp(RelayConfig::default());
    let a = Account::new();
    let (pusher, held) = (a.device("laptop"), a.device("phone"));
    let mut h = relay.connect(&held).await;
    assert_eq!(
        h.request(Request::Subscribe).await.unwrap(),
        Response::Subscribed
    );
    let mut p = relay.connect(&pusher).await;

    // The device updates its keys: the relay meets the other key phase first in
    // a packet, and must derive the keys it no longer precomputes.
    h.connection().force_key_update();
    assert_eq!(h.request(Request::Ping).await.unwrap(), Response::Pong);
    p.connection().force_key_update();
    assert_eq!(p.push(pusher.entries(1, 1)).await.unwrap(), 1);
    assert_eq!(
        crate::common::next_event(&mut h).await,
        Event::Entries {
            entries: pusher.entries(1, 1)
        }
    );

    // Enough traffic for the relay's own routine key update on `h`.
    let sent_before = h.connection().stats().path.sent_packets;
    for _ in 0..ROUND_TRIPS {
        assert_eq!(
            tokio::time::timeout(T, h.request(Request::Ping))
                .await
                .expect("a ping across key updates timed out")
                .unwrap(),
            Response::Pong
        );
    }
    assert!(h.connection().stats().path.sent_packets >= sent_before + ROUND_TRIPS as u64);

    // After both updates the subscriber still gets pushes, and the pusher's
    // connection (updated once) still acknowledges.
    assert_eq!(p.push(pusher.entries(2, 3)).await.unwrap(), 3);
    assert_eq!(
        crate::common::next_event(&mut h).await,
        Event::Entries {
            entries: pusher.entries(2, 3)
        }
    );
    assert!(h.connection().close_reason().is_none());
    assert!(p.connection().close_reason().is_none());
}
