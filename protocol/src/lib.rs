//! kith-protocol: the relay wire protocol shared by kith-core (client) and
//! kith-relay (server): message types, framing, sealed-entry format, device
//! certificates and signatures. It never depends on Automerge: the relay only
//! ever sees sealed bytes. See docs/PROTOCOL.md.
//!
//! The crate is IO-free. With the `tls` feature it also provides the rustls
//! configurations (relay certificate from its ed25519 key, client verifier that
//! pins that key) so the relay and the client edge share one implementation.

#![warn(missing_docs)]

pub mod address;
pub mod envelope;
pub mod frame;
pub mod keys;
pub mod membership;
pub mod msg;
pub mod sign;
pub mod text;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(test)]
mod proptests;

pub use address::{AddressError, RelayAddress};
pub use envelope::{Cursor, SealedEntry, SealedSnapshot, SnapshotVerifier};
pub use frame::{
    FRAME_BYTES_MAX, FrameDecoder, FrameError, decode_body, decode_frame, encode_frame,
    parse_header,
};
pub use keys::{AccountId, DeviceId, KeyError, RelayKey};
pub use membership::{
    Author, Change, Member, MemberKeys, Membership, MembershipError, MembershipOp, OpBody,
    Rotation, SealedEpochKey, WrappedEpochKey,
};
pub use msg::{
    ALPN, ClientMsg, ErrorCode, Event, PROTOCOL_VERSION, PROTOCOL_VERSIONS, Request, Response,
    ServerMsg, SnapshotInfo,
};
pub use sign::{DeviceCert, SignatureError, auth_message, sign_auth, verify_auth};

/// Re-export so users name the exact signature type of the wire format.
pub use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
