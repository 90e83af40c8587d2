//! kith-e2e: end-to-end tests across crates (devices, relay, peers on loopback).
//! The tests live in tests/tests/; this library holds shared test harness code.
