//! Admin commands of a running relay over a local Unix socket.
//!
//! The socket is `admin.sock` in the data directory, mode 0600 inside the
//! 0700 data directory, so only the relay's user (and root) can reach it;
//! the server also checks the peer's uid. Nothing of it is on the network.
//!
//! Protocol: the client sends ONE line (at most [`REQUEST_BYTES_MAX`]) and
//! reads until EOF. Text commands are answered `ok\n` + text, or
//! `error\n` + message. `backup` is answered `ok <size>\n` + the bytes of a
//! consistent backup file (`store::backup`), which the client writes itself
//! (so the backup goes wherever the operator may write, not where the
//! sandboxed relay may).
//!
//! | line | does |
//! |---|---|
//! | `token create` | stores a new registration token's hash, answers the token |
//! | `accounts` | one line per account: id, devices, revoked, entries, bytes, created, last seen |
//! | `account delete ID` | deletes every row of the account and closes its connections |
//! | `status` | `key value` lines: versions, uptime, connections, totals |
//! | `backup` | the backup file's bytes |
//!
//! The same commands run without a relay ([`execute`] with no live relay)
//! when the relay is stopped: the CLI then opens the store itself.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use kith_protocol::AccountId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use crate::store::RedbStore;
use crate::store::backup::BackupError;

/// The socket's file name in the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
/// Longest request line, bytes.
pub const REQUEST_BYTES_MAX: usize = 1024;
/// Admin connections served at once; more wait.
pub const CONNECTIONS_MAX: usize = 4;
/// Time a client has to send its request line, ms.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
/// File name prefix of a backup staged in the data directory while it streams.
const BACKUP_STAGING_PREFIX: &str = "admin-backup-";
/// Largest backup the client accepts over the socket, bytes.
pub const BACKUP_BYTES_MAX: u64 = 1 << 40;

/// What the admin commands need from the running relay.
pub trait LiveRelay: Send + Sync + std::fmt::Debug {
    /// Open QUIC connections.
    fn connections(&self) -> u64;
    /// When a device of `account` last authenticated since the relay started.
    fn last_seen_ms(&self, account: &AccountId) -> Option<u64>;
    /// Closes every connection of `account` and forgets its subscriptions.
    fn close_account(&self, account: &AccountId);
    /// Milliseconds since the relay started.
    fn uptime_ms(&self) -> u64;
}

/// Everything the admin commands act on.
#[derive(Debug)]
pub struct AdminContext {
    /// The relay's store.
    pub store: Arc<RedbStore>,
    /// The relay's identity (written into backups).
    pub identity: SigningKey,
    /// The data directory (backups are staged there).
    pub data_dir: PathBuf,
    /// The running relay, if any.
    pub live: Option<Arc<dyn LiveRelay>>,
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// `token create`
    TokenCreate,
    /// `accounts`
    Accounts,
    /// `account delete ID`
    AccountDelete(AccountId),
    /// `status`
    Status,
    /// `backup`
    Backup,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request line is not a command.
    #[error(
        "unknown admin command {0:?} (token create | accounts | account delete ID | status | backup)"
    )]
    UnknownCommand(String),
    /// The account id does not parse.
    #[error("not an account id: {0}")]
    BadAccount(String),
    /// No such account.
    #[error("no account {0} on this relay")]
    NoSuchAccount(AccountId),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The backup failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
}

impl AdminCommand {
    /// Parses one request line.
    pub fn parse(line: &str) -> Result<Self, AdminError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["token", "create"] => Ok(Self::TokenCreate),
            ["accounts"] => Ok(Self::Accounts),
            ["account", "delete", id] => id
                .parse()
                .map(Self::AccountDelete)
                .map_err(|_| AdminError::BadAccount((*id).to_owned())),
            ["status"] => Ok(Self::Status),
            ["backup"] => Ok(Self::Backup),
            _ => Err(AdminError::UnknownCommand(
                line.chars().take(80).collect::<String>(),
            )),
        }
    }

    /// The request line.
    pub fn line(&self) -> String {
        match self {
            Self::TokenCreate => "token create".into(),
            Self::Accounts => "accounts".into(),
            Self::AccountDelete(a) => format!("account delete {a}"),
            Self::Status => "status".into(),
            Self::Backup => "backup".into(),
        }
    }
}

/// "YYYY-MM-DDTHH:MM:SSZ" of a time in ms since the epoch.
pub fn utc_text(ms: u64) -> String {
    let s = ms / 1000;
    let (days, rem) = (s / 86_400, s % 86_400);
    // Civil from days (H. Hinnant), for dates after 1970.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The answer of `accounts`: a header, then one line per account
/// (`last_seen` is known only to a running relay: `-` otherwise).
pub fn accounts_text(
    accounts: &[crate::store::admin::AccountInfo],
    last_seen_ms: impl Fn(&AccountId) -> Option<u64>,
) -> String {
    let mut out = String::from("account devices revoked entries stored_bytes created last_seen\n");
    for a in accounts {
        let seen = last_seen_ms(&a.account).map_or_else(|| "-".to_owned(), utc_text);
        out.push_str(&format!(
            "{} {} {} {} {} {} {}\n",
            a.account,
            a.devices,
            a.revoked_devices,
            a.entries,
            a.stored_bytes,
            utc_text(a.created_ms),
            seen
        ));
    }
    out
}

/// The answer of `account delete` (redb and PostgreSQL alike).
pub fn account_deleted_text(account: &AccountId, rows: u64) -> String {
    format!("deleted account {account} ({rows} rows); its devices are refused from now on\n")
}

/// The answer of `status`: versions, then `middle` (`key value` lines of
/// the store or the running relay), then the store's totals.
pub fn status_text(format_version: u64, middle: &str, stats: &crate::store::StoreStats) -> String {
    format!(
        "version {}\nstore_format {format_version}\nprotocols {}\n{middle}accounts {}\nentries {}\nstored_bytes {}\n",
        env!("CARGO_PKG_VERSION"),
        kith_protocol::PROTOCOL_VERSIONS
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
        stats.accounts,
        stats.entries,
        stats.bytes
    )
}

/// Runs a text command (not `backup`) and returns its answer.
pub fn execute(ctx: &AdminContext, cmd: &AdminCommand) -> Result<String, AdminError> {
    match cmd {
        AdminCommand::TokenCreate => Ok(format!("{}\n", crate::create_token(ctx.store.as_ref())?)),
        AdminCommand::Accounts => Ok(accounts_text(&ctx.store.accounts()?, |a| {
            ctx.live.as_ref().and_then(|l| l.last_seen_ms(a))
        })),
        AdminCommand::AccountDelete(account) => {
            let deleted = ctx
                .store
                .delete_account(account, crate::now_ms())?
                .ok_or(AdminError::NoSuchAccount(*account))?;
            if let Some(live) = &ctx.live {
                live.close_account(account);
            }
            tracing::info!(%account, rows = deleted.rows, "account deleted by the operator");
            Ok(account_deleted_text(account, deleted.rows))
        }
        AdminCommand::Status => {
            let stats = crate::RelayStore::stats(ctx.store.as_ref())?;
            let live = ctx.live.as_ref().map(|l| {
                format!(
                    "uptime_s {}\nconnections {}\n",
                    l.uptime_ms() / 1000,
                    l.connections()
                )
            });
            Ok(status_text(
                ctx.store.format_version()?,
                &format!(
                    "running {}\n{}",
                    ctx.live.is_some(),
                    live.unwrap_or_default()
                ),
                &stats,
            ))
        }
        AdminCommand::Backup => Err(AdminError::UnknownCommand(
            "backup is not a text command".into(),
        )),
    }
}

/// Binds the admin socket in `data_dir` (mode 0600), replacing a stale one
/// left by a relay that did not exit cleanly.
pub fn bind(data_dir: &Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join(SOCKET_FILE);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by a running relay", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    // Backups staged by a relay that died while streaming them.
    if let Ok(dir) = std::fs::read_dir(data_dir) {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(BACKUP_STAGING_PREFIX) && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves admin requests on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    ctx: Arc<AdminContext>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let listener = tokio::net::UnixListener::from_std(listener)?;
    // The data directory's owner is the relay's user.
    let owner_uid = std::fs::metadata(&ctx.data_dir)?.uid();
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    continue;
                }
            },
        };
        let uid = stream.peer_cred().map(|c| c.uid()).ok();
        if uid.is_none_or(|u| u != owner_uid && u != 0) {
            tracing::warn!(?uid, "admin connection from another user refused");
            continue;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return Ok(());
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, ctx).await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn handle(stream: UnixStream, ctx: Arc<AdminContext>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = Vec::new();
    let mut reader = BufReader::new(r).take(REQUEST_BYTES_MAX as u64 + 1);
    let read = tokio::time::timeout(
        Duration::from_millis(REQUEST_TIMEOUT_MS),
        reader.read_until(b'\n', &mut line),
    )
    .await;
    if !matches!(read, Ok(Ok(_))) || line.len() > REQUEST_BYTES_MAX {
        w.write_all(b"error\nrequest line missing, too slow or too long\n")
            .await?;
        return w.shutdown().await;
    }
    let text = String::from_utf8_lossy(&line).trim().to_owned();
    let cmd = match AdminCommand::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            w.write_all(format!("error\n{e}\n").as_bytes()).await?;
            return w.shutdown().await;
        }
    };
    tracing::info!(command = %cmd.line(), "admin command");
    if cmd == AdminCommand::Backup {
        let staged = ctx
            .data_dir
            .join(format!("{BACKUP_STAGING_PREFIX}{}.tmp", crate::now_ms()));
        let c = ctx.clone();
        let path = staged.clone();
        let made = tokio::task::spawn_blocking(move || {
            c.store.backup_to(&path, &c.identity, crate::now_ms())
        })
        .await
        .map_err(std::io::Error::other)?;
        let result = async {
            match made {
                Ok(info) => {
                    let mut f = tokio::fs::File::open(&staged).await?;
                    let size = f.metadata().await?.len();
                    // Unlinked while open (it streams from the handle), so the
                    // staged copy is gone before the client has its answer.
                    let _ = tokio::fs::remove_file(&staged).await;
                    tracing::info!(
                        size,
                        accounts = info.accounts,
                        entries = info.entries,
                        "backup made"
                    );
                    w.write_all(format!("ok {size}\n").as_bytes()).await?;
                    tokio::io::copy(&mut f, &mut w).await?;
                }
                Err(e) => w.write_all(format!("error\n{e}\n").as_bytes()).await?,
            }
            w.shutdown().await
        }
        .await;
        let _ = tokio::fs::remove_file(&staged).await;
        return result;
    }
    let answer = tokio::task::spawn_blocking(move || execute(&ctx, &cmd))
        .await
        .map_err(std::io::Error::other)?;
    match answer {
        Ok(text) => w.write_all(format!("ok\n{text}").as_bytes()).await?,
        Err(e) => w.write_all(format!("error\n{e}\n").as_bytes()).await?,
    }
    w.shutdown().await
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No relay listens on the socket (it is stopped).
    #[error("no relay is running on {path}")]
    NotRunning {
        /// The socket.
        path: String,
    },
    /// The relay answered with an error.
    #[error("{0}")]
    Refused(String),
    /// The socket failed or the answer is malformed.
    #[error("admin socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn connect(data_dir: &Path) -> Result<std::os::unix::net::UnixStream, ClientError> {
    let path = data_dir.join(SOCKET_FILE);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => Ok(s),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Err(ClientError::NotRunning {
                path: path.display().to_string(),
            })
        }
        Err(source) => Err(ClientError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Sends a text command to the relay running on `data_dir`; returns its answer.
pub fn request(data_dir: &Path, cmd: &AdminCommand) -> Result<String, ClientError> {
    let io = |source| ClientError::Io {
        path: data_dir.join(SOCKET_FILE).display().to_string(),
        source,
    };
    let mut s = connect(data_dir)?;
    s.write_all(format!("{}\n", cmd.line()).as_bytes())
        .map_err(io)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(io)?;
    match answer.split_once('\n') {
        Some(("ok", rest)) => Ok(rest.to_owned()),
        Some(("error", rest)) => Err(ClientError::Refused(rest.trim().to_owned())),
        _ => Err(io(std::io::Error::other("malformed answer"))),
    }
}

/// Asks the relay running on `data_dir` for a backup and writes it to the
/// new file `dest` (0600; written as `dest.partial`, renamed when complete).
/// Returns its size in bytes.
pub fn request_backup(data_dir: &Path, dest: &Path) -> Result<u64, ClientError> {
    let io = |source| ClientError::Io {
        path: data_dir.join(SOCKET_FILE).display().to_string(),
        source,
    };
    if dest.exists() {
        return Err(ClientError::Refused(format!(
            "{} exists already; choose a new file name",
            dest.display()
        )));
    }
    let s = connect(data_dir)?;
    let mut w = s.try_clone().map_err(io)?;
    w.write_all(b"backup\n").map_err(io)?;
    let mut r = std::io::BufReader::new(s);
    let mut head = String::new();
    r.by_ref()
        .take(REQUEST_BYTES_MAX as u64)
        .read_line(&mut head)
        .map_err(io)?;
    let size: u64 = match head.trim().split_once(' ') {
        Some(("ok", n)) => n
            .parse()
            .ok()
            .filter(|n| *n <= BACKUP_BYTES_MAX)
            .ok_or_else(|| io(std::io::Error::other("malformed backup size")))?,
        _ => {
            let mut rest = String::new();
            let _ = r.take(64 * 1024).read_to_string(&mut rest);
            return Err(ClientError::Refused(rest.trim().to_owned()));
        }
    };
    let partial = dest.with_extension("partial");
    let out = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&partial)?;
        let copied = std::io::copy(&mut r.take(size), &mut f)?;
        if copied != size {
            return Err(std::io::Error::other(format!(
                "the relay sent {copied} of {size} bytes"
            )));
        }
        f.sync_all()?;
        std::fs::rename(&partial, dest)
    })();
    if let Err(e) = out {
        let _ = std::fs::remove_file(&partial);
        return Err(io(e));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_refuses_the_rest() {
        assert_eq!(
            AdminCommand::parse("token create").unwrap(),
            AdminCommand::TokenCreate
        );
        assert_eq!(
            AdminCommand::parse(" accounts \n").unwrap(),
            AdminCommand::Accounts
        );
        assert_eq!(AdminCommand::parse("status").unwrap(), AdminCommand::Status);
        let id = AccountId::from(SigningKey::from_bytes(&[3; 32]).verifying_key());
        let cmd = AdminCommand::AccountDelete(id);
        assert_eq!(AdminCommand::parse(&cmd.line()).unwrap(), cmd);
        for bad in [
            "",
            "token",
            "account delete",
            "account delete xyz",
            "rm -rf /",
            "accounts x",
        ] {
            assert!(AdminCommand::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Any request line parses or is refused, never panics; every
        /// command's line parses back to it.
        #[test]
        fn request_lines_round_trip_and_garbage_is_refused(
            line in "\\PC{0,300}",
            seed in proptest::prelude::any::<[u8; 32]>(),
        ) {
            let _ = AdminCommand::parse(&line);
            let _ = AdminCommand::parse(&format!("account delete {line}"));
            // Account ids are public keys (what `accounts` prints).
            let id = AccountId::from(SigningKey::from_bytes(&seed).verifying_key());
            for cmd in [
                AdminCommand::TokenCreate,
                AdminCommand::Accounts,
                AdminCommand::AccountDelete(id),
                AdminCommand::Status,
                AdminCommand::Backup,
            ] {
                proptest::prop_assert_eq!(AdminCommand::parse(&cmd.line()).unwrap(), cmd);
            }
        }
    }

    #[test]
    fn utc_text_formats_dates() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc_text(1_798_761_599_000), "2026-12-31T23:59:59Z");
    }
}
