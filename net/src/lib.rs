//! kith-net: the QUIC edge of Kith. It drives kith-core's sans-IO sync state
//! machines (relay log sync, peer sync) over quinn and tokio. Nothing above this
//! crate knows about sockets.
