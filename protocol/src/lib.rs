//! kith-protocol: the relay wire protocol shared by kith-core (client) and
//! kith-relay (server): message types, framing, sealed-entry format, device
//! certificates and signatures. It never depends on Automerge: the relay only
//! ever sees sealed bytes. See docs/PROTOCOL.md.
