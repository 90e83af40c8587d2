//! Backup container: round trip, and every corruption is a clear error.

use kith_core::backup::{
    BackupError, BackupParams, BackupPayload, NamedBlob, open, open_payload, read_header, seal,
    seal_payload,
};
use proptest::prelude::*;

const FAST: BackupParams = BackupParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

proptest! {
    #![proptest_config(crate::proptest_cases(64))]

    #[test]
    fn any_flipped_bit_or_truncation_is_refused(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        cut in any::<prop::sample::Index>(),
    ) {
        let sealed = seal("pass phrase", &payload, &FAST).unwrap();
        let opened = open("pass phrase", &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), payload.as_slice());
        let mut flipped = sealed.clone();
        let i = at.index(flipped.len());
        flipped[i] ^= 1 << bit;
        let err = open("pass phrase", &flipped).unwrap_err();
        prop_assert!(
            matches!(err, BackupError::Damaged { .. } | BackupError::NotABackup | BackupError::WrongPassphrase),
            "byte {} -> {:?}", i, err
        );
        let truncated = &sealed[..cut.index(sealed.len())];
        prop_assert!(open("pass phrase", truncated).is_err());
    }
}

#[test]
fn default_parameters_are_memory_hard_and_work() {
    let params = BackupParams::default();
    assert!(params.memory_kib >= 64 * 1024);
    let payload = BackupPayload::new(
        1,
        vec![NamedBlob {
            name: "network".into(),
            bytes: vec![7; 10_000],
        }],
        None,
    );
    let sealed = seal_payload("a long passphrase", &payload, &params).unwrap();
    assert_eq!(read_header(&sealed).unwrap().params, params);
    assert_eq!(open_payload("a long passphrase", &sealed).unwrap(), payload);
    let err = open_payload("a wrong passphrase", &sealed).unwrap_err();
    assert_eq!(err.to_string(), "wrong passphrase");
}
