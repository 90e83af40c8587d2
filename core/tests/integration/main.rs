//! kith-core integration tests, one binary with a module per area.

// Test helpers outside #[test] fns may panic on failure: that is how tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod backup;
mod export;
mod import_plan;
mod import_props;
mod import_vcard;
mod store_wiring;
mod strategies;
