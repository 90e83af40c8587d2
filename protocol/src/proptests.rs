//! Property tests: every message type survives encode → decode unchanged, and
//! the decoder returns an error (never panics) on arbitrary input.

use ed25519_dalek::Signature;
use proptest::prelude::*;

use crate::envelope::{Cursor, SealedEntry, SealedSnapshot};
use crate::frame::{FRAME_BYTES_MAX, FrameDecoder, decode_frame, encode_frame};
use crate::keys::{AccountId, DeviceId, RelayKey};
use crate::membership::{
    Author, Change, MemberKeys, MembershipOp, OpBody, Rotation, SealedEpochKey, WrappedEpochKey,
};
use crate::msg::{ClientMsg, ErrorCode, Event, Request, Response, ServerMsg};

fn k32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}
fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature::from_bytes(&s)
    })
}
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}
fn cursor() -> impl Strategy<Value = Cursor> {
    (k32(), any::<u64>()).prop_map(|(d, seq)| Cursor {
        device: DeviceId(d),
        seq,
    })
}
fn nonce() -> impl Strategy<Value = [u8; 24]> {
    (any::<[u8; 12]>(), any::<[u8; 12]>()).prop_map(|(a, b)| {
        let mut n = [0u8; 24];
        n[..12].copy_from_slice(&a);
        n[12..].copy_from_slice(&b);
        n
    })
}
fn entry() -> impl Strategy<Value = SealedEntry> {
    (
        k32(),
        k32(),
        any::<u64>(),
        any::<u64>(),
        nonce(),
        bytes(),
        sig(),
    )
        .prop_map(
            |(a, d, epoch, seq, nonce, ciphertext, signature)| SealedEntry {
                account: AccountId(a),
                device: DeviceId(d),
                epoch,
                seq,
                nonce,
                ciphertext,
                signature,
            },
        )
}
fn snapshot() -> impl Strategy<Value = SealedSnapshot> {
    (
        k32(),
        k32(),
        any::<u64>(),
        proptest::collection::vec(cursor(), 0..4),
        nonce(),
        bytes(),
        sig(),
    )
        .prop_map(
            |(a, d, epoch, covers, nonce, ciphertext, signature)| SealedSnapshot {
                account: AccountId(a),
                device: DeviceId(d),
                epoch,
                covers,
                nonce,
                ciphertext,
                signature,
            },
        )
}
fn sealed_key() -> impl Strategy<Value = SealedEpochKey> {
    (k32(), k32(), bytes()).prop_map(|(d, enc, ciphertext)| SealedEpochKey {
        to: DeviceId(d),
        enc,
        ciphertext,
    })
}
fn rotation() -> impl Strategy<Value = Rotation> {
    (
        proptest::collection::vec(sealed_key(), 0..3),
        proptest::collection::vec(
            (any::<u64>(), nonce(), bytes()).prop_map(|(epoch, nonce, ciphertext)| {
                WrappedEpochKey {
                    epoch,
                    nonce,
                    ciphertext,
                }
            }),
            0..2,
        ),
    )
        .prop_map(|(keys, wrapped)| Rotation { keys, wrapped })
}
fn member_keys() -> impl Strategy<Value = MemberKeys> {
    (k32(), k32()).prop_map(|(d, seal_key)| MemberKeys {
        device: DeviceId(d),
        seal_key,
    })
}
fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (member_keys(), rotation())
            .prop_map(|(first, rotation)| Change::Genesis { first, rotation }),
        (member_keys(), sealed_key()).prop_map(|(member, key)| Change::Add { member, key }),
        (k32(), rotation()).prop_map(|(d, rotation)| Change::Revoke {
            device: DeviceId(d),
            rotation
        }),
        rotation().prop_map(|rotation| Change::Rotate { rotation }),
        (proptest::collection::vec(member_keys(), 0..3), rotation())
            .prop_map(|(members, rotation)| Change::Recover { members, rotation }),
    ]
}
fn membership_op() -> impl Strategy<Value = MembershipOp> {
    (
        (any::<u16>(), k32(), any::<u64>(), k32(), any::<u64>()),
        (proptest::option::of(k32()), any::<u64>(), change(), sig()),
    )
        .prop_map(
            |((format, a, position, prev, epoch), (author, at_ms, change, signature))| {
                MembershipOp {
                    body: OpBody {
                        format,
                        account: AccountId(a),
                        position,
                        prev,
                        epoch,
                        author: author.map_or(Author::Root, |d| Author::Device(DeviceId(d))),
                        at_ms,
                        change,
                    },
                    signature,
                }
            },
        )
}
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        proptest::collection::vec(entry(), 0..3).prop_map(|entries| Request::Push { entries }),
        (
            proptest::collection::vec(cursor(), 0..4),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(cursors, entries_max, bytes_max)| Request::Pull {
                cursors,
                entries_max,
                bytes_max
            }),
        Just(Request::Subscribe),
        snapshot().prop_map(|snapshot| Request::PutSnapshot { snapshot }),
        Just(Request::GetSnapshot),
        Just(Request::Heads),
        proptest::collection::vec(membership_op(), 0..3)
            .prop_map(|ops| Request::AppendMembership { ops }),
        (k32(), bytes(), any::<u32>()).prop_map(|(slot, blob, ttl_s)| Request::MailboxPut {
            slot,
            blob,
            ttl_s
        }),
        k32().prop_map(|slot| Request::MailboxTake { slot }),
        Just(Request::Ping),
        (any::<u64>(), any::<u32>(), any::<u32>(), bytes()).prop_map(
            |(upload, index, count, bytes)| Request::PutSnapshotPart {
                upload,
                index,
                count,
                bytes
            }
        ),
        (any::<u64>(), snapshot())
            .prop_map(|(upload, snapshot)| Request::CommitSnapshot { upload, snapshot }),
        (proptest::option::of(k32()), any::<u64>(), any::<u32>()).prop_map(
            |(snapshot_id, offset, bytes_max)| Request::GetSnapshotRange {
                snapshot_id,
                offset,
                bytes_max
            }
        ),
        any::<u64>().prop_map(|after| Request::GetMembership { after }),
        Just(Request::Snapshots),
        k32().prop_map(|snapshot_id| Request::SnapshotOpened { snapshot_id }),
    ]
}
fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        proptest::collection::vec(any::<u16>(), 0..16)
            .prop_map(|versions| ClientMsg::Hello { versions }),
        (
            k32(),
            k32(),
            sig(),
            proptest::option::of(".{0,30}"),
            proptest::collection::vec(membership_op(), 0..2)
        )
            .prop_map(|(a, d, signature, token, membership)| ClientMsg::Auth {
                account: AccountId(a),
                device: DeviceId(d),
                signature,
                token,
                membership,
            }),
        (any::<u32>(), request()).prop_map(|(id, body)| ClientMsg::Request { id, body }),
    ]
}
fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        proptest::collection::vec(any::<u16>(), 0..4)
            .prop_map(|supported| ErrorCode::UnsupportedVersion { supported }),
        Just(ErrorCode::Malformed),
        any::<u32>().prop_map(|size_bytes_max| ErrorCode::FrameTooLarge { size_bytes_max }),
        Just(ErrorCode::UnexpectedMessage),
        Just(ErrorCode::AuthFailed),
        Just(ErrorCode::BadCertificate),
        Just(ErrorCode::DeviceRevoked),
        Just(ErrorCode::RegistrationRequired),
        Just(ErrorCode::BadToken),
        Just(ErrorCode::NotAuthenticated),
        Just(ErrorCode::WrongAccount),
        Just(ErrorCode::BadSignature),
        any::<u64>().prop_map(|expected| ErrorCode::SeqGap { expected }),
        any::<u64>().prop_map(|seq| ErrorCode::SeqFork { seq }),
        any::<u64>().prop_map(|limit_bytes| ErrorCode::QuotaBytes { limit_bytes }),
        (any::<u32>(), any::<u64>()).prop_map(|(entries_per_minute, retry_after_ms)| {
            ErrorCode::QuotaRate {
                entries_per_minute,
                retry_after_ms,
            }
        }),
        Just(ErrorCode::SnapshotNeeded),
        Just(ErrorCode::SnapshotStale),
        Just(ErrorCode::SnapshotInvalid),
        Just(ErrorCode::MailboxTaken),
        Just(ErrorCode::MailboxNotFound),
        any::<u64>().prop_map(|limit| ErrorCode::TooLarge { limit }),
        Just(ErrorCode::RateLimited),
        Just(ErrorCode::Internal),
        Just(ErrorCode::ShuttingDown),
        Just(ErrorCode::SnapshotChanged),
        any::<u32>().prop_map(|parts_stored| ErrorCode::SnapshotUploadIncomplete { parts_stored }),
        Just(ErrorCode::NotAMember),
        any::<u64>().prop_map(|position| ErrorCode::MembershipRefused { position }),
        any::<u64>().prop_map(|len| ErrorCode::MembershipBehind { len }),
        any::<u64>().prop_map(|current| ErrorCode::EpochStale { current }),
        Just(ErrorCode::SnapshotOwn),
        any::<u32>().prop_map(|limit| ErrorCode::TooManyDevices { limit }),
        any::<u64>().prop_map(|retry_after_ms| ErrorCode::RegistrationLimited { retry_after_ms }),
    ]
}
fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (k32(), any::<u64>()).prop_map(|(d, seq)| Response::PushAck {
            device: DeviceId(d),
            seq
        }),
        (proptest::collection::vec(entry(), 0..3), any::<bool>())
            .prop_map(|(entries, more)| Response::Entries { entries, more }),
        Just(Response::Subscribed),
        any::<u64>().prop_map(|pruned_entries| Response::SnapshotStored { pruned_entries }),
        proptest::option::of(snapshot()).prop_map(|snapshot| Response::Snapshot { snapshot }),
        (
            proptest::collection::vec(cursor(), 0..4),
            proptest::collection::vec(cursor(), 0..4)
        )
            .prop_map(|(heads, floors)| Response::Heads { heads, floors }),
        any::<u64>().prop_map(|len| Response::MembershipAppended { len }),
        Just(Response::MailboxStored),
        bytes().prop_map(|blob| Response::MailboxBlob { blob }),
        Just(Response::Pong),
        (any::<u64>(), any::<u32>())
            .prop_map(|(upload, index)| Response::SnapshotPartStored { upload, index }),
        (
            proptest::option::of(snapshot()),
            k32(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(snapshot, snapshot_id, total_bytes, offset)| {
                Response::SnapshotRange {
                    snapshot,
                    snapshot_id,
                    total_bytes,
                    offset,
                }
            }),
        (
            proptest::collection::vec(membership_op(), 0..3),
            any::<bool>()
        )
            .prop_map(|(ops, more)| Response::Membership { ops, more }),
        (
            proptest::option::of(snapshot_info()),
            proptest::option::of(snapshot_info())
        )
            .prop_map(|(confirmed, pending)| Response::Snapshots { confirmed, pending }),
        any::<u64>().prop_map(|pruned_entries| Response::SnapshotConfirmed { pruned_entries }),
    ]
}
fn snapshot_info() -> impl Strategy<Value = crate::msg::SnapshotInfo> {
    (
        k32(),
        k32(),
        any::<u64>(),
        proptest::collection::vec(cursor(), 0..3),
        any::<u64>(),
    )
        .prop_map(
            |(snapshot_id, d, epoch, covers, total_bytes)| crate::msg::SnapshotInfo {
                snapshot_id,
                device: DeviceId(d),
                epoch,
                covers,
                total_bytes,
            },
        )
}
fn server_msg() -> impl Strategy<Value = ServerMsg> {
    prop_oneof![
        (proptest::option::of(any::<u32>()), error_code(), ".{0,30}")
            .prop_map(|(id, code, message)| ServerMsg::Error { id, code, message }),
        (any::<u16>(), k32(), k32(), any::<u32>()).prop_map(
            |(version, r, challenge, frame_bytes_max)| ServerMsg::Welcome {
                version,
                relay: RelayKey(r),
                challenge,
                frame_bytes_max
            }
        ),
        (k32(), k32(), any::<bool>(), any::<u64>(), any::<u64>()).prop_map(
            |(a, d, registered, membership_len, epoch)| ServerMsg::AuthOk {
                account: AccountId(a),
                device: DeviceId(d),
                registered,
                membership_len,
                epoch,
            }
        ),
        (any::<u32>(), response()).prop_map(|(id, body)| ServerMsg::Response { id, body }),
        proptest::collection::vec(entry(), 0..3)
            .prop_map(|entries| ServerMsg::Event(Event::Entries { entries })),
        Just(ServerMsg::Event(Event::Lagged)),
        proptest::collection::vec(membership_op(), 0..2)
            .prop_map(|ops| ServerMsg::Event(Event::Membership { ops })),
    ]
}

proptest! {
    #[test]
    fn mailbox_slots_differ_per_secret(a in bytes(), b in bytes()) {
        prop_assume!(a != b);
        prop_assert_ne!(crate::msg::mailbox_slot(&a), crate::msg::mailbox_slot(&b));
        prop_assert_eq!(crate::msg::mailbox_slot(&a), crate::msg::mailbox_slot(&a));
    }

    #[test]
    fn client_messages_round_trip(m in client_msg()) {
        let f = encode_frame(&m, FRAME_BYTES_MAX).unwrap();
        let (back, used) = decode_frame::<ClientMsg>(&f, FRAME_BYTES_MAX).unwrap().unwrap();
        prop_assert_eq!(used, f.len());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn server_messages_round_trip(m in server_msg()) {
        let f = encode_frame(&m, FRAME_BYTES_MAX).unwrap();
        let (back, used) = decode_frame::<ServerMsg>(&f, FRAME_BYTES_MAX).unwrap().unwrap();
        prop_assert_eq!(used, f.len());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_frame::<ClientMsg>(&data, FRAME_BYTES_MAX);
        let _ = decode_frame::<ServerMsg>(&data, FRAME_BYTES_MAX);
        let mut d = FrameDecoder::new(FRAME_BYTES_MAX);
        d.extend(&data);
        while let Ok(Some(_)) = d.next_msg::<ClientMsg>() {}
        let _ = d.finish();
    }

    #[test]
    fn decoder_never_panics_on_framed_garbage(body in proptest::collection::vec(any::<u8>(), 1..1024)) {
        // A valid header in front of random bytes reaches the body decoder.
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        let _ = decode_frame::<ClientMsg>(&f, FRAME_BYTES_MAX);
        let _ = decode_frame::<ServerMsg>(&f, FRAME_BYTES_MAX);
    }

    #[test]
    fn mutated_frames_never_panic(m in client_msg(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut f = encode_frame(&m, FRAME_BYTES_MAX).unwrap();
        let i = pos % f.len();
        f[i] = byte;
        let _ = decode_frame::<ClientMsg>(&f, FRAME_BYTES_MAX);
    }
}
