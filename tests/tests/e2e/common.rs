//! Helpers shared by the e2e modules.

use kith_core::sync::RelayClientConfig;
use kith_core::{NewInteraction, ParticipantRef};
use kith_e2e::{Device, TestRelay};
use kith_net::RoundReport;

pub(crate) const TIMEOUT_MS: u64 = 60_000;

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) async fn round(d: &Device, relay: &TestRelay) -> RoundReport {
    round_with(d, relay, RelayClientConfig::default())
        .await
        .unwrap()
}

pub(crate) async fn round_with(
    d: &Device,
    relay: &TestRelay,
    cfg: RelayClientConfig,
) -> Result<RoundReport, kith_net::NetError> {
    kith_net::relay_round(
        &d.store,
        &d.id,
        &relay.address(),
        cfg,
        vec![],
        TIMEOUT_MS,
        |_| {},
    )
    .await
}

pub(crate) fn log(d: &Device, summary: &str, with: &str) -> kith_core::InteractionId {
    d.s()
        .log_interaction(NewInteraction {
            summary: summary.into(),
            notes: format!("notes: {summary}"),
            participants: vec![ParticipantRef::Name(with.into())],
            create_missing: true,
            ..NewInteraction::default()
        })
        .unwrap()
        .id
}

/// True when both devices hold the same documents at the same heads (for
/// waiting on convergence while exchanges are still running).
pub(crate) fn same_heads(a: &Device, b: &Device) -> bool {
    let heads = |d: &Device| {
        let mut s = d.s();
        let mut ids = s.doc_ids().unwrap();
        ids.sort();
        ids.into_iter()
            .map(|id| {
                let mut h = s.heads(id).unwrap();
                h.sort();
                (id, h)
            })
            .collect::<Vec<_>>()
    };
    heads(a) == heads(b)
}

/// Same documents (heads) and same index on both devices.
pub(crate) fn assert_same(a: &Device, b: &Device) {
    let mut sa = a.s();
    let mut sb = b.s();
    let mut ia = sa.doc_ids().unwrap();
    let mut ib = sb.doc_ids().unwrap();
    ia.sort();
    ib.sort();
    assert_eq!(ia, ib);
    for d in ia {
        let mut ha = sa.heads(d).unwrap();
        let mut hb = sb.heads(d).unwrap();
        ha.sort();
        hb.sort();
        assert_eq!(ha, hb, "heads of {d}");
    }
    assert_eq!(sa.index_dump().unwrap(), sb.index_dump().unwrap());
}
