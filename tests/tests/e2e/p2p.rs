//! Direct device-to-device sync on loopback, without a relay.

use std::sync::{Arc, Mutex};

use kith_core::sync::pairing::{Invitation, PairingHost, PairingMode};
use kith_e2e::Device;
use kith_net::{NetError, PeerServer};
use tokio::sync::oneshot;

use crate::common::{assert_same, log, rt};

struct Served {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    host: Arc<Mutex<PairingHost>>,
}

fn serve(d: &Device) -> Served {
    let server = PeerServer::bind("127.0.0.1:0".parse().unwrap(), &d.id).unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let host = Arc::new(Mutex::new(PairingHost::default()));
    let (store, id, h) = (d.store.clone(), d.id.clone(), host.clone());
    let task = tokio::spawn(async move {
        server
            .run(
                store,
                id,
                h,
                async move {
                    let _ = rx.await;
                },
                |_| {},
            )
            .await
            .unwrap();
    });
    Served {
        addr,
        stop: Some(tx),
        task,
        host,
    }
}

impl Served {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap();
    }
}

#[test]
fn peer_to_peer_sync_on_loopback_and_cheap_reconnect() {
    rt().block_on(async {
        let a = Device::first("laptop");
        let b = a.sibling("phone");
        for i in 0..30 {
            log(&a, &format!("a{i}"), &format!("Ada {i}"));
        }
        log(&b, "b0", "Bea");
        let s = serve(&b);
        let r = kith_net::sync_with_peer(&a.store, &a.id, s.addr)
            .await
            .unwrap();
        assert_eq!(r.peer.unwrap().device, b.id.device_id());
        assert_same(&a, &b);
        log(&a, "one more", "Ada 1");
        let r = kith_net::sync_with_peer(&a.store, &a.id, s.addr)
            .await
            .unwrap();
        assert_eq!(r.stats.round_trips, 1, "{r:?}");
        assert!(r.wire_sent_bytes + r.wire_received_bytes <= 2048, "{r:?}");
        assert_same(&a, &b);
        s.stop().await;
    });
}

#[test]
fn a_device_of_another_account_is_refused() {
    rt().block_on(async {
        let a = Device::first("laptop");
        let x = Device::first("stranger");
        log(&x, "private", "Xavier");
        let s = serve(&x);
        let r = kith_net::sync_with_peer(&a.store, &a.id, s.addr).await;
        assert!(
            matches!(
                r,
                Err(NetError::Peer(kith_core::sync::PeerError::Refused(_)))
            ),
            "{r:?}"
        );
        assert!(a.s().all_interactions().unwrap().is_empty());
        assert!(x.s().all_contacts().unwrap().len() == 1);
        s.stop().await;
    });
}

#[test]
fn direct_pairing_then_sync_without_relay() {
    rt().block_on(async {
        let a = Device::first("laptop");
        log(&a, "met before", "Pam");
        let s = serve(&a);
        let inv = Invitation::create(&a.id, PairingMode::Peer, 60_000, kith_net::now_ms()).unwrap();
        s.host.lock().unwrap().offer(inv.clone());
        let (id, inviter) = kith_net::join_via_peer(s.addr, &inv.token, "phone")
            .await
            .unwrap();
        assert_eq!(inviter.device, a.id.device_id());
        let b = Device::with_identity(id);
        kith_net::sync_with_peer(&b.store, &b.id, s.addr)
            .await
            .unwrap();
        assert_same(&a, &b);
        // One-time: the second redemption is refused.
        let again = kith_net::join_via_peer(s.addr, &inv.token, "thief").await;
        assert!(
            matches!(
                again,
                Err(kith_net::JoinError::Pair(
                    kith_core::sync::PairError::AlreadyUsed
                ))
            ),
            "{again:?}"
        );
        s.stop().await;
    });
}
