//! Runtime configuration of a relay: registration policy, quotas and limits.
//! The binary builds it from flags, environment variables and a TOML file
//! (see `main.rs` and docs/RELAY.md); tests build it directly.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Who may register a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationPolicy {
    /// Any device with a valid certificate registers its account on first connect.
    Open,
    /// A new account needs a single-use token from `kith-relay token create`.
    Token,
}

/// Bounds on everything a client can make the relay hold or do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame body accepted from clients, bytes (at most 1 MiB).
    pub frame_bytes_max: usize,
    /// Most entries returned by one pull.
    pub pull_entries_max: usize,
    /// Stored bytes per account (entries + snapshot).
    pub quota_bytes_per_account: u64,
    /// Entries an account may push per minute (re-sends count).
    pub quota_entries_per_minute: u32,
    /// Frames queued for one connection before a subscriber is told it lagged.
    pub connection_queue_frames: usize,
    /// Bytes queued for one connection (at least one maximum frame): a
    /// client that does not read stalls only itself, with bounded memory.
    pub connection_queue_bytes_max: usize,
    /// Most concurrent connections; further ones are refused.
    pub connections_max: usize,
    /// Longest mailbox lifetime, seconds (also the default).
    pub mailbox_ttl_s_max: u32,
    /// Largest mailbox blob, bytes.
    pub mailbox_blob_bytes_max: usize,
    /// Time allowed from connect to authentication, ms.
    pub handshake_timeout_ms: u64,
    /// QUIC idle timeout, ms (clients keep alive below it).
    pub idle_timeout_ms: u64,
    /// Requests an unauthenticated (pairing) connection may make.
    pub unauth_requests_max: u32,
    /// Requests before authentication (mailbox takes, pings) one source IP
    /// address may make per minute, over all its connections: opening many
    /// connections does not multiply the allowance.
    pub unauth_requests_per_addr_per_minute: u32,
    /// Most write ops committed in one transaction.
    pub write_batch_ops_max: usize,
    /// Most write ops waiting for the writer.
    pub write_queue_ops_max: usize,
    /// Most bytes one fragmented snapshot upload may hold before its commit
    /// (one unfinished upload per device); the committed snapshot then
    /// counts against the account quota.
    pub snapshot_upload_bytes_max: u64,
    /// An unfinished snapshot upload older than this is deleted, ms.
    pub snapshot_upload_ttl_ms: u64,
    /// A new snapshot stays pending (it prunes nothing; the previous one
    /// and the entries it covers stay) until a device other than its author
    /// opened it, or at most this long (the safety window).
    pub snapshot_confirm_window_ms: u64,
    /// Most member devices one account may have.
    pub devices_per_account_max: u32,
    /// Most live mailbox blobs one account may hold at once.
    pub mailbox_blobs_per_account_max: u32,
    /// Most new accounts one source address may register per hour.
    pub accounts_per_addr_per_hour: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: kith_protocol::FRAME_BYTES_MAX,
            pull_entries_max: 1000,
            quota_bytes_per_account: 1 << 30,
            quota_entries_per_minute: 6000,
            connection_queue_frames: 64,
            connection_queue_bytes_max: 2 << 20,
            connections_max: 20_000,
            mailbox_ttl_s_max: 600,
            mailbox_blob_bytes_max: 64 * 1024,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            unauth_requests_max: 8,
            unauth_requests_per_addr_per_minute: 600,
            write_batch_ops_max: 512,
            write_queue_ops_max: 8192,
            snapshot_upload_bytes_max: 256 << 20,
            snapshot_upload_ttl_ms: 3_600_000,
            snapshot_confirm_window_ms: 7 * 24 * 3_600_000,
            devices_per_account_max: 32,
            mailbox_blobs_per_account_max: 8,
            accounts_per_addr_per_hour: 10,
        }
    }
}

/// Everything [`crate::run`] needs besides the identity, store and socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Registration policy.
    pub registration: RegistrationPolicy,
    /// Limits and quotas.
    pub limits: Limits,
    /// Where the relay reads wall-clock time (mailbox and invitation expiry, token and quota
    /// windows): the system clock, or one a test moves.
    pub clock: Clock,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            registration: RegistrationPolicy::Open,
            limits: Limits::default(),
            clock: Clock::system(),
        }
    }
}

/// The relay's wall clock. `Clock::system()` for a relay on redb;
/// `Clock::following(offset)` for nodes on PostgreSQL, whose store keeps the
/// offset to the database's clock current, so that every node of a relay
/// reads one time (invitation and mailbox expiry do not depend on which node
/// a device reached, nor on a node's clock being right); `Clock::manual(start_ms)`
/// lets a test step time (a 10-minute invitation TTL expires in one call, not ten
/// minutes), so expiry is tested without sleeping. Clones share one time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    source: ClockSource,
}

#[derive(Clone, Debug, Default)]
enum ClockSource {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
    /// The system clock plus this many ms (may be negative).
    Offset(Arc<AtomicI64>),
}

/// Two clocks are equal when they read the same time source.
impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        match (&self.source, &other.source) {
            (ClockSource::System, ClockSource::System) => true,
            (ClockSource::Manual(a), ClockSource::Manual(b)) => Arc::ptr_eq(a, b),
            (ClockSource::Offset(a), ClockSource::Offset(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Clock {}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self {
            source: ClockSource::System,
        }
    }

    /// A clock that stands at `start_ms` until [`Clock::advance_ms`] moves it.
    pub fn manual(start_ms: u64) -> Self {
        Self {
            source: ClockSource::Manual(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// The system clock corrected by `offset_ms`, which another part keeps
    /// current (the PostgreSQL store: the database's clock minus ours).
    pub fn following(offset_ms: Arc<AtomicI64>) -> Self {
        Self {
            source: ClockSource::Offset(offset_ms),
        }
    }

    /// Whether this is the plain system clock (not a test's, not a database's).
    pub fn is_system(&self) -> bool {
        matches!(self.source, ClockSource::System)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.source {
            ClockSource::System => crate::server::now_ms(),
            ClockSource::Manual(t) => t.load(Ordering::SeqCst),
            ClockSource::Offset(off) => {
                crate::server::now_ms().saturating_add_signed(off.load(Ordering::Relaxed))
            }
        }
    }

    /// Moves a manual clock forward by `by_ms`; returns `false` (and does nothing) for the
    /// system clock, which nobody moves.
    pub fn advance_ms(&self, by_ms: u64) -> bool {
        match &self.source {
            ClockSource::Manual(t) => {
                t.fetch_add(by_ms, Ordering::SeqCst);
                true
            }
            ClockSource::System | ClockSource::Offset(_) => false,
        }
    }
}
