//! The `kith-relay` binary: parses flags / environment / TOML config, opens
//! the data directory (identity key + redb store), and runs the relay and its
//! metrics endpoint until SIGTERM or SIGINT. See docs/RELAY.md.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kith_relay::admin::{self, AdminCommand, AdminContext};
use kith_relay::store::backup::create_private_dir;
use kith_relay::store::redb_store::SCHEMA_VERSION;
use kith_relay::{
    AdminSocket, Limits, Metrics, RedbStore, RegistrationPolicy, Relay, RelayConfig, RelayStore,
};
use serde::Deserialize;

const DEFAULT_LISTEN: &str = "0.0.0.0:7447";
const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:7448";
const DEFAULT_DATA_DIR: &str = "kith-relay-data";
const KEY_FILE: &str = "relay.key";
const DB_FILE: &str = "relay.redb";

/// Kith relay: blind store-and-forward of sealed entries over QUIC.
///
/// With no arguments it serves on UDP 0.0.0.0:7447 with data in
/// ./kith-relay-data and prints the kith:// address clients use.
/// Precedence: flags, then environment variables, then the config file, then defaults.
#[derive(Debug, Parser)]
#[command(name = "kith-relay")]
struct Cli {
    /// TOML config file (keys: the long flag names with '_' for '-').
    #[arg(long, env = "KITH_RELAY_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory: identity key (relay.key, mode 0600) and store (relay.redb). Default ./kith-relay-data.
    #[arg(long, env = "KITH_RELAY_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Where the relay keeps its data: `redb` (the default: relay.redb in the data directory) or
    /// a `postgres://user@host:port/db` URL. Repeat it (or separate with commas) for several
    /// PostgreSQL shards; their order is part of the layout. A multi-host URL
    /// (`postgres://h1:5432,h2:5432/db?target_session_attrs=read-write`) stays one shard.
    /// See docs/RELAY.md, "Scaling out".
    #[arg(
        long = "store",
        env = "KITH_RELAY_STORE",
        value_delimiter = ',',
        global = true
    )]
    store: Vec<String>,
    /// Identity key file (mode 0600; created if missing). Default: relay.key in the data
    /// directory. Every node of one relay must use the same key (devices pin it).
    #[arg(long, env = "KITH_RELAY_KEY_FILE", global = true)]
    key_file: Option<PathBuf>,
    /// UDP address to serve QUIC on. Default 0.0.0.0:7447.
    #[arg(long, env = "KITH_RELAY_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// TCP address for /health and /metrics. Default 127.0.0.1:7448; "off" disables.
    #[arg(long, env = "KITH_RELAY_METRICS_LISTEN", global = true)]
    metrics_listen: Option<String>,
    /// Host name or IP printed in the kith:// address (default: the listen IP, or 127.0.0.1 if unspecified).
    #[arg(long, env = "KITH_RELAY_PUBLIC_HOST", global = true)]
    public_host: Option<String>,
    /// Who may register accounts: open (anyone with a valid certificate) or token (single-use tokens). Default open.
    #[arg(long, env = "KITH_RELAY_REGISTRATION", value_enum, global = true)]
    registration: Option<RegistrationPolicy>,
    /// Stored bytes per account. Default 1073741824 (1 GiB).
    #[arg(long, env = "KITH_RELAY_QUOTA_BYTES_PER_ACCOUNT", global = true)]
    quota_bytes_per_account: Option<u64>,
    /// Entries per account per minute. Default 6000.
    #[arg(long, env = "KITH_RELAY_QUOTA_ENTRIES_PER_MINUTE", global = true)]
    quota_entries_per_minute: Option<u32>,
    /// Largest accepted frame, bytes (at most 1048576). Default 1048576.
    #[arg(long, env = "KITH_RELAY_FRAME_BYTES_MAX", global = true)]
    frame_bytes_max: Option<usize>,
    /// Most concurrent connections. Default 20000.
    #[arg(long, env = "KITH_RELAY_CONNECTIONS_MAX", global = true)]
    connections_max: Option<usize>,
    /// Most entries per pull response. Default 1000.
    #[arg(long, env = "KITH_RELAY_PULL_ENTRIES_MAX", global = true)]
    pull_entries_max: Option<usize>,
    /// Longest (and default) pairing mailbox lifetime, seconds. Default 600.
    #[arg(long, env = "KITH_RELAY_MAILBOX_TTL_S_MAX", global = true)]
    mailbox_ttl_s_max: Option<u32>,
    /// QUIC idle timeout, ms. Default 60000.
    #[arg(long, env = "KITH_RELAY_IDLE_TIMEOUT_MS", global = true)]
    idle_timeout_ms: Option<u64>,
    /// Most bytes of one unfinished fragmented snapshot upload. Default 268435456 (256 MiB).
    #[arg(long, env = "KITH_RELAY_SNAPSHOT_UPLOAD_BYTES_MAX", global = true)]
    snapshot_upload_bytes_max: Option<u64>,
    /// Member devices one account may have. Default 32.
    #[arg(long, env = "KITH_RELAY_DEVICES_PER_ACCOUNT_MAX", global = true)]
    devices_per_account_max: Option<u32>,
    /// New accounts one source address may register per hour. Default 10.
    #[arg(long, env = "KITH_RELAY_ACCOUNTS_PER_ADDR_PER_HOUR", global = true)]
    accounts_per_addr_per_hour: Option<u32>,
    /// Live pairing mailbox blobs one account may hold at once. Default 8.
    #[arg(long, env = "KITH_RELAY_MAILBOX_BLOBS_PER_ACCOUNT_MAX", global = true)]
    mailbox_blobs_per_account_max: Option<u32>,
    /// How long a new snapshot stays pending (the entries it covers and the
    /// previous snapshot kept) when no other device opens it, ms. Default
    /// 604800000 (7 days).
    #[arg(long, env = "KITH_RELAY_SNAPSHOT_CONFIRM_WINDOW_MS", global = true)]
    snapshot_confirm_window_ms: Option<u64>,
    /// Log as JSON lines instead of text (logs go to stderr; RUST_LOG filters).
    #[arg(long, env = "KITH_RELAY_LOG_JSON", global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the relay (the default).
    Serve,
    /// Manage registration tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Print the relay's kith:// address and exit.
    Address,
    /// List accounts: id, devices, revoked devices, entries, stored bytes, created, last seen.
    Accounts,
    /// Manage one account.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Print versions, uptime, connections and store totals.
    Status,
    /// Write a consistent backup of the store and the relay key to a new FILE
    /// (works while the relay runs; mode 0600).
    Backup {
        /// The backup file to create (must not exist).
        file: PathBuf,
    },
    /// Copy a stopped redb relay's store (DIR/relay.redb) into empty PostgreSQL
    /// databases and verify every log; then run the relay with `--store URL`
    /// and the same key (`--key-file DIR/relay.key`).
    Migrate {
        /// The redb relay's data directory (the relay must be stopped).
        #[arg(long)]
        from: PathBuf,
        /// The target shards' URLs, in order (repeatable).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
    },
    /// Put a backup back into the data directory (the relay must be stopped;
    /// the replaced store is kept as relay.redb.before-restore-<ms>).
    Restore {
        /// A file written by `kith-relay backup`.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a single-use registration token and print it (only its hash is stored).
    Create,
}

#[derive(Debug, Subcommand)]
enum AccountAction {
    /// Delete every row of the account (entries, snapshot, devices); its devices are refused afterwards.
    Delete {
        /// The account id, as `kith-relay accounts` prints it.
        id: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    store: Option<Vec<String>>,
    key_file: Option<PathBuf>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<String>,
    public_host: Option<String>,
    registration: Option<RegistrationPolicy>,
    quota_bytes_per_account: Option<u64>,
    quota_entries_per_minute: Option<u32>,
    frame_bytes_max: Option<usize>,
    connections_max: Option<usize>,
    pull_entries_max: Option<usize>,
    mailbox_ttl_s_max: Option<u32>,
    idle_timeout_ms: Option<u64>,
    snapshot_upload_bytes_max: Option<u64>,
    devices_per_account_max: Option<u32>,
    accounts_per_addr_per_hour: Option<u32>,
    mailbox_blobs_per_account_max: Option<u32>,
    snapshot_confirm_window_ms: Option<u64>,
}

/// Which store the relay runs on.
#[derive(Debug, Clone)]
enum StoreChoice {
    /// relay.redb in the data directory.
    Redb,
    /// PostgreSQL shards, in order.
    Postgres(Vec<String>),
}

struct Settings {
    data_dir: PathBuf,
    store: StoreChoice,
    key_file: Option<PathBuf>,
    listen: SocketAddr,
    metrics_listen: Option<SocketAddr>,
    public_host: Option<String>,
    config: RelayConfig,
}

fn settings(cli: &Cli) -> Result<Settings> {
    let file = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config file {}", p.display()))?;
            toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("parsing config file {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let d = Limits::default();
    let frame_bytes_max = cli
        .frame_bytes_max
        .or(file.frame_bytes_max)
        .unwrap_or(d.frame_bytes_max);
    if !(1024..=kith_protocol::FRAME_BYTES_MAX).contains(&frame_bytes_max) {
        bail!(
            "frame-bytes-max must be between 1024 and {}",
            kith_protocol::FRAME_BYTES_MAX
        );
    }
    let limits = Limits {
        frame_bytes_max,
        quota_bytes_per_account: cli
            .quota_bytes_per_account
            .or(file.quota_bytes_per_account)
            .unwrap_or(d.quota_bytes_per_account),
        quota_entries_per_minute: cli
            .quota_entries_per_minute
            .or(file.quota_entries_per_minute)
            .unwrap_or(d.quota_entries_per_minute),
        connections_max: cli
            .connections_max
            .or(file.connections_max)
            .unwrap_or(d.connections_max),
        pull_entries_max: cli
            .pull_entries_max
            .or(file.pull_entries_max)
            .unwrap_or(d.pull_entries_max),
        mailbox_ttl_s_max: cli
            .mailbox_ttl_s_max
            .or(file.mailbox_ttl_s_max)
            .unwrap_or(d.mailbox_ttl_s_max),
        idle_timeout_ms: cli
            .idle_timeout_ms
            .or(file.idle_timeout_ms)
            .unwrap_or(d.idle_timeout_ms),
        snapshot_upload_bytes_max: cli
            .snapshot_upload_bytes_max
            .or(file.snapshot_upload_bytes_max)
            .unwrap_or(d.snapshot_upload_bytes_max),
        devices_per_account_max: cli
            .devices_per_account_max
            .or(file.devices_per_account_max)
            .unwrap_or(d.devices_per_account_max),
        accounts_per_addr_per_hour: cli
            .accounts_per_addr_per_hour
            .or(file.accounts_per_addr_per_hour)
            .unwrap_or(d.accounts_per_addr_per_hour),
        mailbox_blobs_per_account_max: cli
            .mailbox_blobs_per_account_max
            .or(file.mailbox_blobs_per_account_max)
            .unwrap_or(d.mailbox_blobs_per_account_max),
        snapshot_confirm_window_ms: cli
            .snapshot_confirm_window_ms
            .or(file.snapshot_confirm_window_ms)
            .unwrap_or(d.snapshot_confirm_window_ms),
        ..d
    };
    let metrics_listen = cli
        .metrics_listen
        .clone()
        .or(file.metrics_listen)
        .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.to_owned());
    let metrics_listen = if metrics_listen == "off" {
        None
    } else {
        Some(
            metrics_listen
                .parse()
                .with_context(|| format!("invalid metrics-listen '{metrics_listen}'"))?,
        )
    };
    let listen = match cli.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_LISTEN.parse().context("default listen address")?,
    };
    let store_args = if cli.store.is_empty() {
        file.store.clone().unwrap_or_default()
    } else {
        rejoin_multi_host(&cli.store)
    };
    let store = match store_args.as_slice() {
        [] => StoreChoice::Redb,
        [one] if one == "redb" => StoreChoice::Redb,
        urls => {
            for u in urls {
                if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                    bail!(
                        "--store takes `redb` or postgres:// URLs (one per shard), not '{}'",
                        u.split('@').next_back().unwrap_or(u)
                    );
                }
            }
            StoreChoice::Postgres(urls.to_vec())
        }
    };
    Ok(Settings {
        store,
        key_file: cli.key_file.clone().or(file.key_file),
        data_dir: cli
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen,
        metrics_listen,
        public_host: cli.public_host.clone().or(file.public_host),
        config: RelayConfig {
            registration: cli
                .registration
                .or(file.registration)
                .unwrap_or(RegistrationPolicy::Open),
            limits,
            clock: kith_relay::Clock::system(),
        },
    })
}

/// Undoes the comma split of `--store`/`KITH_RELAY_STORE` inside a libpq
/// multi-host URL (`postgres://h1:5432,h2:5432/db`): a piece that starts no
/// store (`redb`, `postgres://`, `postgresql://`) continues the previous one.
fn rejoin_multi_host(parts: &[String]) -> Vec<String> {
    let starts_store =
        |p: &str| p == "redb" || p.starts_with("postgres://") || p.starts_with("postgresql://");
    let mut out: Vec<String> = Vec::with_capacity(parts.len());
    for p in parts {
        match out.last_mut() {
            Some(prev) if !starts_store(p) && prev != "redb" => {
                prev.push(',');
                prev.push_str(p);
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

/// The identity key: `--key-file`, or relay.key in the data directory.
fn load_key(s: &Settings) -> Result<ed25519_dalek::SigningKey> {
    let path = match &s.key_file {
        Some(p) => p.clone(),
        None => {
            private_data_dir(&s.data_dir)?;
            s.data_dir.join(KEY_FILE)
        }
    };
    let (key, created) = kith_relay::identity::load_or_create(&path)
        .with_context(|| format!("loading the identity key {}", path.display()))?;
    if created {
        tracing::info!(path = %path.display(), "created relay identity key");
    }
    Ok(key)
}

/// Connects to the PostgreSQL shards (applying schema migrations).
fn open_postgres(urls: &[String]) -> Result<Arc<kith_relay::PgStore>> {
    let store = kith_relay::PgStore::connect(urls).context("opening the PostgreSQL store")?;
    Ok(Arc::new(store))
}

fn private_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_private_dir(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    // The data directory holds the key, the store and the admin socket: only
    // the relay's user may enter it.
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (chmod 700)", dir.display()))?;
        tracing::info!(path = %dir.display(), "data directory made private (0700)");
    }
    Ok(())
}

fn open_data_dir(s: &Settings) -> Result<(ed25519_dalek::SigningKey, Arc<RedbStore>)> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &s.data_dir;
    private_data_dir(dir)?;
    let key = load_key(s)?;
    let store = RedbStore::open(&dir.join(DB_FILE)).with_context(|| {
        format!(
            "opening store in {} (is another kith-relay running on this data directory?)",
            dir.display()
        )
    })?;
    std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("making {} private", dir.join(DB_FILE).display()))?;
    Ok((key, Arc::new(store)))
}

/// `--version`: the binary's, the store format it writes and the protocols it speaks.
fn version_text() -> String {
    format!(
        "{} (store format {SCHEMA_VERSION}, protocols {})",
        env!("CARGO_PKG_VERSION"),
        kith_protocol::PROTOCOL_VERSIONS
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// Refuses to write into another user's data directory as root: the files
/// would become root's and the relay (its own user) could not open them.
fn check_owner(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    let euid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if euid == Some(0) && meta.uid() != 0 {
        bail!(
            "{} belongs to another user and the relay is not running: run this as that user \
             (e.g. sudo -u kith-relay kith-relay ...) so its files stay theirs",
            dir.display()
        );
    }
    Ok(())
}

/// Runs an admin command: through the running relay's socket, or on the
/// store directly when no relay runs on this data directory.
fn admin_command(s: &Settings, cmd: &AdminCommand) -> Result<()> {
    if let StoreChoice::Postgres(urls) = &s.store {
        // Every node shares the database: commands go to it directly.
        return match cmd {
            AdminCommand::TokenCreate => {
                let store = open_postgres(urls)?;
                let token = kith_relay::create_token(store.as_ref()).context("token create")?;
                out(&token)
            }
            // When a device was last seen is known only to the node it
            // reached: `-` here, as with a stopped redb relay.
            AdminCommand::Accounts => {
                let store = open_postgres(urls)?;
                let list = store.accounts().context("accounts")?;
                print_text(&admin::accounts_text(&list, |_| None))
            }
            AdminCommand::Status => {
                let store = open_postgres(urls)?;
                let stats = kith_relay::RelayStore::stats(store.as_ref()).context("status")?;
                // Nodes are not known to the database: their uptime and
                // connections are on each node's /metrics.
                let middle = format!("store postgresql\nshards {}\n", store.shard_count());
                print_text(&admin::status_text(store.format_version(), &middle, &stats))
            }
            // Every node closes the account's connections: the store
            // notifies them after the commit.
            AdminCommand::AccountDelete(account) => {
                let store = open_postgres(urls)?;
                let deleted = store
                    .delete_account(account, kith_relay::now_ms())
                    .context("account delete")?
                    .ok_or(admin::AdminError::NoSuchAccount(*account))?;
                print_text(&admin::account_deleted_text(account, deleted.rows))
            }
            other => bail!(
                "`{}` is not available with a PostgreSQL store: query the database \
                 (docs/RELAY.md, \"Scaling out\")",
                other.line()
            ),
        };
    }
    match admin::request(&s.data_dir, cmd) {
        Ok(text) => return print_text(&text),
        Err(admin::ClientError::NotRunning { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    check_owner(&s.data_dir)?;
    let (identity, store) = open_data_dir(s)?;
    let ctx = AdminContext {
        store,
        identity,
        data_dir: s.data_dir.clone(),
        live: None,
    };
    let text = admin::execute(&ctx, cmd)?;
    print_text(&text)
}

fn print_text(text: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn backup(s: &Settings, file: &Path) -> Result<()> {
    if matches!(s.store, StoreChoice::Postgres(_)) {
        bail!(
            "with a PostgreSQL store, back up the database (pg_basebackup, pg_dump) and the key file"
        );
    }
    match admin::request_backup(&s.data_dir, file) {
        Ok(size) => {
            return out(&format!(
                "backup written to {} ({size} bytes)",
                file.display()
            ));
        }
        Err(admin::ClientError::NotRunning { .. }) => {}
        Err(e) => return Err(e).context("backup through the running relay"),
    }
    check_owner(&s.data_dir)?;
    let (identity, store) = open_data_dir(s)?;
    let info = store
        .backup_to(file, &identity, kith_relay::now_ms())
        .context("backup")?;
    out(&format!(
        "backup written to {} ({} accounts, {} entries, store format {})",
        file.display(),
        info.accounts,
        info.entries,
        info.format_version
    ))
}

fn restore(s: &Settings, file: &Path) -> Result<()> {
    if matches!(s.store, StoreChoice::Postgres(_)) {
        bail!("with a PostgreSQL store, restore the database with PostgreSQL's tools");
    }
    if admin::request(&s.data_dir, &AdminCommand::Status).is_ok() {
        bail!(
            "the relay is running on {}: stop it first (systemctl stop kith-relay)",
            s.data_dir.display()
        );
    }
    check_owner(&s.data_dir)?;
    let info = kith_relay::store::backup::restore(file, &s.data_dir, kith_relay::now_ms())
        .context("restore")?;
    out(&format!(
        "restored {} ({} accounts, store format {}) into {}",
        file.display(),
        info.accounts,
        info.format_version,
        s.data_dir.display()
    ))?;
    if let Some(p) = info.previous {
        out(&format!("the replaced store is kept as {}", p.display()))?;
    }
    out("start the relay; each device re-sends what the backup lacks on its next sync")
}

fn migrate(from: &Path, to: &[String]) -> Result<()> {
    let store = RedbStore::open(&from.join(DB_FILE)).with_context(|| {
        format!(
            "opening {} (stop the redb relay first)",
            from.join(DB_FILE).display()
        )
    })?;
    let target = open_postgres(to)?;
    let r = kith_relay::store::migrate::migrate(&store, &target).context("migrate")?;
    out(&format!(
        "migrated and verified: {} accounts, {} entries, {} snapshots, {} membership ops, {} tokens, {} mailbox slots",
        r.accounts, r.entries, r.snapshots, r.membership_ops, r.tokens, r.mailbox_slots
    ))?;
    out(&format!(
        "now run every node with --store {} --key-file {}",
        to.join(" --store "),
        from.join(KEY_FILE).display()
    ))
}

fn address_line(relay: &Relay, bound: SocketAddr, public_host: Option<&str>) -> String {
    let mut a = relay.address(bound);
    if let Some(h) = public_host {
        h.clone_into(&mut a.host);
    } else if bound.ip().is_unspecified() {
        "127.0.0.1".clone_into(&mut a.host);
    }
    a.to_string()
}

fn out(line: &str) -> Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}")?;
    o.flush()?;
    Ok(())
}

fn main() -> Result<()> {
    // The version line names the store format, so it is built at run time.
    let version: &'static str = Box::leak(version_text().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    let s = settings(&cli)?;
    let command = cli.command.unwrap_or(Command::Serve);
    match &command {
        Command::Token {
            action: TokenAction::Create,
        } => return admin_command(&s, &AdminCommand::TokenCreate),
        Command::Accounts => return admin_command(&s, &AdminCommand::Accounts),
        Command::Account {
            action: AccountAction::Delete { id },
        } => {
            let account = id
                .parse()
                .map_err(|e| anyhow::anyhow!("not an account id '{id}': {e}"))?;
            return admin_command(&s, &AdminCommand::AccountDelete(account));
        }
        Command::Status => return admin_command(&s, &AdminCommand::Status),
        Command::Backup { file } => return backup(&s, file),
        Command::Restore { file } => return restore(&s, file),
        Command::Migrate { from, to } => return migrate(from, to),
        Command::Address => {
            // Only the key: the running relay holds the store's lock.
            let path = s
                .key_file
                .clone()
                .unwrap_or_else(|| s.data_dir.join(KEY_FILE));
            let key = if path.exists() || matches!(s.store, StoreChoice::Postgres(_)) {
                load_key(&s)?
            } else {
                check_owner(&s.data_dir)?;
                open_data_dir(&s)?.0
            };
            let mut a = kith_protocol::RelayAddress {
                key: kith_protocol::RelayKey::from(key.verifying_key()),
                host: s.listen.ip().to_string(),
                port: s.listen.port(),
            };
            if let Some(h) = &s.public_host {
                h.clone_into(&mut a.host);
            } else if s.listen.ip().is_unspecified() {
                "127.0.0.1".clone_into(&mut a.host);
            }
            return out(&a.to_string());
        }
        Command::Serve => {}
    }
    let metrics = Arc::new(Metrics::default());
    let (key, store, admin_store): (_, Arc<dyn RelayStore>, _) = match &s.store {
        StoreChoice::Redb => {
            let (key, store) = open_data_dir(&s)?;
            metrics.store_format_version.store(
                store.format_version().context("reading the store format")?,
                std::sync::atomic::Ordering::Relaxed,
            );
            (key, store.clone(), Some(store))
        }
        StoreChoice::Postgres(urls) => {
            let key = load_key(&s)?;
            let store = open_postgres(urls)?;
            metrics
                .store_format_version
                .store(store.format_version(), std::sync::atomic::Ordering::Relaxed);
            tracing::info!(shards = store.shard_count(), "relay store: PostgreSQL");
            (key, store as Arc<dyn RelayStore>, None)
        }
    };
    let relay = Relay {
        config: s.config.clone(),
        identity: key,
        store,
        metrics,
    };
    serve(relay, admin_store, s)
}

/// Runs the relay; the admin socket only with the redb store (with
/// PostgreSQL, the admin commands go to the database).
fn serve(relay: Relay, admin_store: Option<Arc<RedbStore>>, s: Settings) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let socket =
            UdpSocket::bind(s.listen).with_context(|| format!("binding UDP {}", s.listen))?;
        let bound = socket.local_addr()?;
        // Bound before the address is printed: whoever waits for that line
        // can use the admin commands at once.
        let admin = match admin_store {
            Some(store) => Some(AdminSocket {
                listener: admin::bind(&s.data_dir).with_context(|| {
                    format!("binding the admin socket in {}", s.data_dir.display())
                })?,
                store,
                data_dir: s.data_dir.clone(),
            }),
            None => None,
        };
        out(&address_line(&relay, bound, s.public_host.as_deref()))?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics_task = match s.metrics_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics TCP {addr}"))?;
                out(&format!(
                    "metrics http://{}/metrics",
                    listener.local_addr()?
                ))?;
                let store: Arc<dyn RelayStore> = relay.store.clone();
                let mut stop = stop_rx.clone();
                Some(tokio::spawn(kith_relay::serve_metrics(
                    listener,
                    relay.metrics.clone(),
                    store,
                    async move {
                        let _ = stop.wait_for(|v| *v).await;
                    },
                )))
            }
            None => None,
        };
        let signals = async move {
            wait_for_signal().await;
            tracing::info!("signal received, shutting down");
            let _ = stop_tx.send(true);
        };
        kith_relay::run_with_admin(relay, socket, signals, admin).await?;
        let _ = std::fs::remove_file(s.data_dir.join(admin::SOCKET_FILE));
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::rejoin_multi_host;

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn a_multi_host_url_stays_one_shard_and_shards_stay_apart() {
        // What clap's comma split makes of one multi-host URL ...
        assert_eq!(
            rejoin_multi_host(&v(&[
                "postgres://u@h1:5432",
                "h2:5433",
                "h3:5434/kith?target_session_attrs=read-write"
            ])),
            v(&["postgres://u@h1:5432,h2:5433,h3:5434/kith?target_session_attrs=read-write"])
        );
        // ... and of two shards, one of them multi-host.
        assert_eq!(
            rejoin_multi_host(&v(&[
                "postgres://a/s0",
                "postgresql://b1",
                "b2/s1",
                "postgres://c/s2"
            ])),
            v(&[
                "postgres://a/s0",
                "postgresql://b1,b2/s1",
                "postgres://c/s2"
            ])
        );
        // Nothing continues `redb`, and a stray first piece stays (refused later).
        assert_eq!(rejoin_multi_host(&v(&["redb", "x"])), v(&["redb", "x"]));
        assert_eq!(rejoin_multi_host(&v(&["x", "y"])), v(&["x,y"]));
    }
}
