//! Identity, pairing and sync commands: `init` (keys), `pair`, `join`,
//! `devices`, `sync`, `serve-peer`. They run on a tokio runtime built here
//! and drive kith-net; the store is shared with the network tasks behind a
//! mutex for the duration of the command.
//!
//! The long-running ones (`sync --watch`, `sync --peer ADDR --watch`,
//! `serve-peer`, `pair --peer`) run a keeper (`kith_net::keep_store`) beside
//! the network task: it parks the store whenever it has been idle for
//! 100 ms, so redb's file lock is held only while a sync step runs and
//! `kith log` in another terminal works meanwhile; and it notices writes by
//! other processes (a change marker read from document metadata) and turns
//! them into a push to the relay, an exchange with the peer, or a `Changed`
//! announcement to watching peers. Their store waits up to
//! [`WATCH_LOCK_WAIT_MS`] for another process's lock; one-shot commands
//! wait up to [`LOCK_WAIT_MS`].
//!
//! Files in the data directory: `keys.json` (key file version 2: the
//! account id, this device's ed25519 and X25519 keys and its name; no
//! account secret; owner-only) and `sync.json` (the relay address last
//! used). The account's membership log and epoch keys live in the store.
//!
//! Pairing waits and asks: `kith pair` shows the token, waits for the new
//! device's request, shows the code that device must show and asks the user
//! to compare (or takes `--code` from a script, which must match), and only
//! then adds the device. `kith join` shows its code and waits for the
//! inviter's answer.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use kith_core::Store;
use kith_core::identity::{FileKeyStore, KeyMaterial, KeyStore};
use kith_core::sync::devices::list_devices;
use kith_core::sync::pairing::{INVITATION_TTL_MS_MAX, Incoming, PairingHost, Reply};
use kith_core::sync::{
    DeviceIdentity, Invitation, PairingMode, RelayClientConfig, RelayEvent, Token, membership,
    sync_status,
};
use kith_protocol::{DeviceId, RelayAddress};
use serde::{Deserialize, Serialize};

use crate::error::{CliError, CliResult};
use crate::render::{Out, Table};

const SYNC_FILE: &str = "sync.json";
pub(super) const TIMEOUT_MS: u64 = 120_000;
/// How long a one-shot command waits for a store another process holds
/// (a watcher holds it for milliseconds at a time).
pub(crate) const LOCK_WAIT_MS: u64 = 2_000;
/// How long a watcher waits for a store another process holds (an import
/// may hold it for seconds); meanwhile its network task waits too.
const WATCH_LOCK_WAIT_MS: u64 = 30_000;

#[derive(Debug, Args)]
pub(crate) struct PairArgs {
    /// Invite through this relay (kith://KEY@HOST:PORT); default: the relay last used.
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// Invite directly over the LAN: serve on --listen until the new device joined.
    #[arg(long, conflicts_with = "relay")]
    pub(crate) peer: bool,
    /// Address to serve on with --peer.
    #[arg(long, default_value = "0.0.0.0:7448")]
    pub(crate) listen: SocketAddr,
    /// Minutes the invitation stays valid (at most 10: a relay keeps
    /// mailbox blobs for at most 600 s).
    #[arg(long, default_value_t = 10)]
    pub(crate) ttl_min: u64,
    /// For scripts: instead of asking y/N, read from stdin the code the new
    /// device shows; the device is added only if it matches (a device that
    /// used the token with another code is refused).
    #[arg(long)]
    pub(crate) code_stdin: bool,
    /// Do not print the QR code.
    #[arg(long)]
    pub(crate) no_qr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The token shown by `kith pair` (with --peer: ADDR TOKEN).
    #[arg(num_args = 1..=2, required = true)]
    pub(crate) args: Vec<String>,
    /// Join directly from the inviting device at ADDR (first argument).
    #[arg(long)]
    pub(crate) peer: bool,
    /// The relay you expect (must match the token's).
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// Name of this device.
    #[arg(long, default_value = "new device")]
    pub(crate) name: String,
    /// Registration token for a relay run with `--registration token`
    /// (needed only if the account is not registered there yet).
    #[arg(long, env = "KITH_REGISTRATION_TOKEN", hide_env_values = true)]
    pub(crate) registration_token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DevicesArgs {
    #[command(subcommand)]
    pub(crate) cmd: Option<DevicesCmd>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DevicesCmd {
    /// Revoke a device at the relay (it can no longer sync there).
    Revoke {
        /// Device id (or a unique prefix).
        id: String,
        /// Relay to tell; default: the relay last used.
        #[arg(long)]
        relay: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Relay address (kith://KEY@HOST:PORT); remembered for next time.
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// Sync directly with a device running `kith serve-peer` at ADDR.
    #[arg(long, conflicts_with = "relay")]
    pub(crate) peer: Option<String>,
    /// Stay connected (relay or --peer): exchange changes live (Ctrl-C to stop).
    #[arg(long)]
    pub(crate) watch: bool,
    /// Registration token for a relay run with `--registration token` (from
    /// `kith-relay token create`); remembered (owner-only) for next time.
    #[arg(long, env = "KITH_REGISTRATION_TOKEN", hide_env_values = true)]
    pub(crate) registration_token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Registration token for a relay run with `--registration token` (from
    /// `kith-relay token create`); kept (owner-only) for the first sync.
    #[arg(long, env = "KITH_REGISTRATION_TOKEN", hide_env_values = true)]
    pub(crate) registration_token: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServePeerArgs {
    /// Address to listen on (UDP), e.g. 0.0.0.0:7448.
    #[arg(long, default_value = "0.0.0.0:7448")]
    pub(crate) listen: SocketAddr,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SyncFile {
    relay: Option<String>,
    /// For the first registration at a relay with a token policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    registration_token: Option<String>,
}

/// The relay client settings for this data directory (its registration
/// token, if one was given).
pub(super) fn relay_cfg(dir: &Path) -> RelayClientConfig {
    RelayClientConfig {
        registration_token: read_sync_file(dir).registration_token,
        ..RelayClientConfig::default()
    }
}

/// Keeps `token` (when given) for the registrations of later rounds.
pub(crate) fn remember_registration_token(dir: &Path, token: Option<&str>) -> CliResult<()> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    if token.len() > 256 {
        return Err(CliError::input("registration token is too long"));
    }
    let mut f = read_sync_file(dir);
    f.registration_token = Some(token.to_owned());
    write_sync_file(dir, &f)
}

/// Writes `sync.json` owner-only (it may hold a registration token), through
/// a fresh exclusive temporary file renamed into place.
fn write_sync_file(dir: &Path, f: &SyncFile) -> CliResult<()> {
    use std::io::Write;
    let bytes = serde_json::to_vec_pretty(f).map_err(failure)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{SYNC_FILE}.{}.{nanos}.tmp", std::process::id()));
    let written = kith_core::private_fs::create_new_private(&tmp)
        .and_then(|mut file| file.write_all(&bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SYNC_FILE)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    Ok(())
}

pub(super) fn failure(e: impl std::fmt::Display) -> CliError {
    CliError::Failure(anyhow::anyhow!("{e}"))
}

pub(super) fn runtime() -> CliResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(failure)
}

fn now_ms() -> u64 {
    kith_net::now_ms()
}

fn load_identity(dir: &Path) -> CliResult<DeviceIdentity> {
    let keys = FileKeyStore::in_dir(dir).load().map_err(failure)?;
    let Some(keys) = keys else {
        return Err(CliError::input(format!(
            "this device has no keys in {} (run `kith init` for a new account, or `kith join TOKEN`)",
            dir.display()
        )));
    };
    DeviceIdentity::from_material(&keys).map_err(CliError::input)
}

pub(super) fn relay_from(dir: &Path, flag: Option<&str>) -> CliResult<RelayAddress> {
    let text = match flag {
        Some(t) => t.to_owned(),
        None => read_sync_file(dir).relay.ok_or_else(|| {
            CliError::input("no relay configured: pass --relay kith://KEY@HOST:PORT")
        })?,
    };
    text.parse::<RelayAddress>()
        .map_err(|e| CliError::input(format!("bad relay address '{text}': {e}")))
}

fn read_sync_file(dir: &Path) -> SyncFile {
    std::fs::read(dir.join(SYNC_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(super) fn remember_relay(dir: &Path, addr: &RelayAddress) -> CliResult<()> {
    let mut f = read_sync_file(dir);
    f.relay = Some(addr.to_string());
    write_sync_file(dir, &f)
}

pub(super) fn open_store(dir: &Path) -> CliResult<Store> {
    Store::open_waiting(dir, LOCK_WAIT_MS).map_err(super::store_failure)
}

/// The store of a long-running command: parked at once (the keeper keeps
/// it parked between uses), so other commands can open it right away.
fn open_watching(dir: &Path) -> CliResult<Store> {
    let mut s = Store::open_waiting(dir, WATCH_LOCK_WAIT_MS).map_err(super::store_failure)?;
    s.park().map_err(super::store_failure)?;
    Ok(s)
}

/// Runs `work` with a keeper beside it: the keeper parks `store` when idle
/// and calls `on_change` when another process changed the documents. Both
/// end when `work` does.
async fn with_keeper<T>(
    store: &Mutex<Store>,
    on_change: impl FnMut(),
    work: impl std::future::Future<Output = T>,
) -> T {
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let keeper = kith_net::keep_store(
        store,
        kith_net::KeeperOptions::default(),
        &mut done_rx,
        on_change,
    );
    let work = async {
        let r = work.await;
        let _ = done_tx.send(true);
        r
    };
    tokio::join!(work, keeper).0
}

fn close(store: Arc<Mutex<Store>>) -> CliResult<()> {
    match Arc::try_unwrap(store) {
        Ok(m) => m
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .close()
            .map_err(super::store_failure),
        // A network task still holds it; dropping later releases the lock.
        Err(_) => Ok(()),
    }
}

/// `kith init`: creates this device's keys and a new account (this device
/// its only member) if it has none, and shows the recovery code once.
pub(crate) fn init_identity(dir: &Path, json: bool, out: &mut Out) -> CliResult<()> {
    let ks = FileKeyStore::in_dir(dir);
    if let Some(k) = ks.load().map_err(failure)?
        && k.account.is_some()
    {
        let id = DeviceIdentity::from_material(&k).map_err(CliError::input)?;
        if !json {
            out.line(format!(
                "Account {} already set up on this device ({})",
                id.account_id(),
                id.device_name()
            ))?;
        }
        return Ok(());
    }
    let name = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().chars().take(64).collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this device".into());
    let mut keys = KeyMaterial::generate(&name);
    let mut store = open_store(dir)?;
    let (id, code) =
        membership::create_account(&mut store, &mut keys, now_ms()).map_err(failure)?;
    store.close().map_err(super::store_failure)?;
    ks.save(&keys).map_err(failure)?;
    let warning = "Write the recovery code down now and keep it offline: it is shown only \
                   once, no device stores it, and it is the only way to win the account back \
                   if a stolen device revokes yours (`kith recover`).";
    if json {
        // With --json, `kith init` prints one object for the store on
        // stdout; the code goes to the terminal (stderr), still once.
        stdout_err(&format!("Recovery code: {code}\n{warning}"))?;
    } else {
        out.line(format!("New account {}", id.account_id()))?;
        out.line(format!(
            "This device: {} ({})",
            id.device_id(),
            id.device_name()
        ))?;
        out.line(format!("Keys: {} (owner-only)", ks.path().display()))?;
        out.line(format!("Recovery code: {code}"))?;
        out.line(warning)?;
    }
    Ok(())
}

fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.to_ascii_uppercase().as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

fn show_token(inv: &Invitation, no_qr: bool, json: bool, out: &mut Out) -> CliResult<()> {
    let token = inv.token.to_string();
    if json {
        // One compact line: `pair --peer` streams a second line after it.
        out.line(
            serde_json::json!({ "token": token, "expires_at_ms": inv.expires_at_ms }).to_string(),
        )?;
        return Ok(());
    }
    out.line("On the new device run:")?;
    out.line(format!("  kith join {token}"))?;
    if !no_qr && let Some(q) = qr(&token) {
        out.line(q)?;
    }
    let mins = inv.expires_at_ms.saturating_sub(now_ms()) / 60_000;
    out.line(format!("The token works once and expires in {mins} min."))?;
    Ok(())
}

/// Shows the join request and asks the user to compare the joiner's code
/// (or, with `--code-stdin`, reads the code the joiner shows from stdin).
fn approve(
    incoming: &Incoming,
    code_stdin: bool,
    json: bool,
    out: &mut Out,
) -> CliResult<Result<(), String>> {
    let name = &incoming.request.name;
    if json {
        out.line(
            serde_json::json!({ "request": {
                "name": name,
                "device": incoming.request.card.device.to_string(),
                "code": incoming.code,
            }})
            .to_string(),
        )?;
        out.flush()?;
    }
    if code_stdin {
        if !json {
            out.line(format!(
                "Device '{name}' asks to join; type the code it shows:"
            ))?;
            out.flush()?;
        }
        let mut given = String::new();
        std::io::stdin().read_line(&mut given)?;
        return Ok(match Invitation::check_code(incoming, &given) {
            Ok(()) => Ok(()),
            Err(e) => {
                if !json {
                    out.line(format!("Refused '{name}': {e}"))?;
                }
                Err("the code given on the inviting device does not match this device's".into())
            }
        });
    }
    if json || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(CliError::input(
            "a device asked to join, but there is no terminal to ask: pass --code-stdin and write the code the new device shows to stdin",
        ));
    }
    out.line(format!(
        "Device '{name}' asks to join. Does it show the code {}? [y/N]",
        incoming.code
    ))?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(if answer.trim().eq_ignore_ascii_case("y") {
        Ok(())
    } else {
        Err("the user of the inviting device did not approve (codes differ?)".into())
    })
}

/// `kith pair`.
pub(crate) fn pair(dir: &Path, a: PairArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let id = load_identity(dir)?;
    let ttl_ms = (a.ttl_min.max(1) * 60_000).min(INVITATION_TTL_MS_MAX);
    if a.ttl_min * 60_000 > INVITATION_TTL_MS_MAX && !json {
        out.line("Note: invitations last at most 10 min (a relay keeps mailbox blobs 600 s).")?;
    }
    let rt = runtime()?;
    if a.peer {
        let inv = Invitation::create(PairingMode::Peer, ttl_ms, now_ms());
        // quinn binds its socket on the runtime.
        let _entered = rt.enter();
        let server = kith_net::PeerServer::bind(a.listen, &id).map_err(failure)?;
        let local = server.local_addr().map_err(failure)?;
        show_token(&inv, a.no_qr, json, out)?;
        if json {
            out.line(serde_json::json!({ "listening": local.to_string() }).to_string())?;
        } else {
            out.line(format!(
                "Serving on {local}: kith join --peer {local} TOKEN"
            ))?;
        }
        out.flush()?;
        let host = Arc::new(Mutex::new(PairingHost::default()));
        host.lock()
            .unwrap_or_else(|e| e.into_inner())
            .offer(inv.clone());
        let store = Arc::new(Mutex::new(open_watching(dir)?));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let expires = inv.expires_at_ms;
        let notifier = server.notifier();
        let (s2, h2, id2) = (store.clone(), host.clone(), id.clone());
        let server_task = rt.spawn(async move {
            let st = s2.clone();
            with_keeper(&st, move || notifier.notify(), async move {
                let stop = async move {
                    let _ = stop_rx.wait_for(|s| *s).await;
                };
                server
                    .run(s2.clone(), id2, h2, stop, move |r| {
                        let _ = done_tx.send(r.is_ok_and(|r| r.peer.is_some()));
                    })
                    .await
            })
            .await
        });
        // The joiner's request arrives in the host's mailbox (polled: it has
        // no notification), bounded by the expiry.
        let join_slot = inv.token.join_slot();
        let blob = rt.block_on(async {
            while now_ms() < expires {
                let b = host
                    .lock()
                    .ok()
                    .and_then(|mut h| h.take(&join_slot, now_ms()));
                if b.is_some() {
                    return b;
                }
                tokio::time::sleep(std::time::Duration::from_millis(
                    kith_net::relay::MAILBOX_POLL_MS,
                ))
                .await;
            }
            None
        });
        let outcome = (|| -> CliResult<bool> {
            let Some(blob) = blob else {
                return Err(CliError::input("the invitation expired unused"));
            };
            let incoming = inv.open_request(&blob).map_err(CliError::input)?;
            let decision = approve(&incoming, a.code_stdin, json, out)?;
            let approved = decision.is_ok();
            let reply = match decision {
                Ok(()) => {
                    // Direct pairing has no relay to order the op: this
                    // device appends it; the relay learns it from the next
                    // `Auth` of either device.
                    let mut st = store.lock().unwrap_or_else(|e| e.into_inner());
                    let op =
                        membership::add_op(&mut st, &id, incoming.request.card.clone(), now_ms())
                            .map_err(failure)?;
                    membership::absorb(&mut st, &id, &[op]).map_err(failure)?;
                    Reply::Welcome {
                        account: id.account_id(),
                        inviter: id.device_id(),
                        inviter_name: id.device_name().to_owned(),
                    }
                }
                Err(reason) => Reply::Refused { reason },
            };
            let sealed = inv.reply(&reply).map_err(failure)?;
            host.lock().unwrap_or_else(|e| e.into_inner()).put(
                inv.token.reply_slot(),
                sealed,
                now_ms(),
            );
            if approved {
                // Serve until the new device synced with us (or expiry).
                let wait =
                    std::time::Duration::from_millis(expires.saturating_sub(now_ms()) + 1000);
                rt.block_on(async {
                    let _ = tokio::time::timeout(wait, async {
                        while let Some(ok) = done_rx.recv().await {
                            if ok {
                                break;
                            }
                        }
                    })
                    .await;
                });
            }
            Ok(approved)
        })();
        let _ = stop_tx.send(true);
        let served = rt.block_on(server_task).map_err(failure)?;
        served.map_err(failure)?;
        close(store)?;
        if !outcome? {
            return Err(CliError::input(
                "the device was not added (its code was not confirmed); make a new invitation",
            ));
        }
        if !json {
            out.line("Pairing server stopped.")?;
        }
        return Ok(());
    }
    let addr = relay_from(dir, a.relay.as_deref())?;
    let inv = Invitation::create(
        PairingMode::Relay {
            address: addr.to_string(),
        },
        ttl_ms,
        now_ms(),
    );
    remember_relay(dir, &addr)?;
    show_token(&inv, a.no_qr, json, out)?;
    if !json {
        out.line("Waiting for the new device...")?;
    }
    out.flush()?;
    let incoming = rt
        .block_on(kith_net::relay::await_join_request(&addr, &inv))
        .map_err(join_error)?;
    let decision = approve(&incoming, a.code_stdin, json, out)?;
    let approved = decision.is_ok();
    let store = Mutex::new(open_store(dir)?);
    rt.block_on(kith_net::relay::answer_join_request(
        &store, &id, &addr, &inv, &incoming, decision, TIMEOUT_MS,
    ))
    .map_err(join_error)?;
    store
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .close()
        .map_err(super::store_failure)?;
    if !approved {
        return Err(CliError::input(format!(
            "device '{}' was not added (its code was not confirmed); make a new invitation",
            incoming.request.name
        )));
    }
    if json {
        out.line(
            serde_json::json!({
                "added": incoming.request.card.device.to_string(),
                "name": incoming.request.name,
            })
            .to_string(),
        )?;
    } else {
        out.line(format!(
            "Added {} ('{}')",
            incoming.request.card.device, incoming.request.name
        ))?;
    }
    Ok(())
}

/// `kith join TOKEN` / `kith join --peer ADDR TOKEN`.
pub(crate) fn join(dir: &Path, a: JoinArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let ks = FileKeyStore::in_dir(dir);
    let existing = ks.load().map_err(failure)?;
    if existing.as_ref().is_some_and(|k| k.account.is_some()) {
        return Err(CliError::input(format!(
            "this data directory already belongs to an account; join from an empty one (--data DIR) \
             (keys: {})",
            ks.path().display()
        )));
    }
    let mut keys = existing.unwrap_or_else(|| KeyMaterial::generate(&a.name));
    keys.device_name.clone_from(&a.name);
    let (peer, token_text) = match (a.peer, a.args.as_slice()) {
        (true, [addr, token]) => (Some(addr.clone()), token.clone()),
        (true, _) => return Err(CliError::input("usage: kith join --peer ADDR TOKEN")),
        (false, [token]) => (None, token.clone()),
        (false, _) => return Err(CliError::input("usage: kith join TOKEN")),
    };
    let token = Token::parse(&token_text).map_err(CliError::input)?;
    let rt = runtime()?;
    kith_core::private_fs::ensure_private_dir(dir)?;
    remember_registration_token(dir, a.registration_token.as_deref())?;
    // Keep the keys from the start: the request names them.
    ks.save(&keys).map_err(failure)?;
    let show_code = |code: &str, out: &mut Out| -> CliResult<()> {
        if json {
            out.line(serde_json::json!({ "code": code }).to_string())?;
        } else {
            out.line(format!(
                "Check that the inviting device shows the code {code}, then approve there. Waiting..."
            ))?;
        }
        out.flush()?;
        Ok(())
    };
    match peer {
        Some(addr) => {
            let sock: SocketAddr = addr
                .parse()
                .map_err(|_| CliError::input(format!("bad peer address '{addr}' (HOST:PORT)")))?;
            let (id, inviter) = rt
                .block_on(kith_net::join_via_peer(sock, &token, &mut keys, |c| {
                    // Shown while waiting for the inviter's answer.
                    let _ = show_code(c, &mut *out);
                }))
                .map_err(join_error)?;
            ks.save(&keys).map_err(failure)?;
            let store = Mutex::new(open_store(dir)?);
            let r = rt
                .block_on(kith_net::sync_with_peer(&store, &id, sock))
                .map_err(failure)?;
            close(Arc::new(store))?;
            report_join(&id, &inviter, json, out)?;
            if !json {
                out.line(format!(
                    "Synced with {inviter}: {} changes received.",
                    r.stats.changes_received
                ))?;
            }
        }
        None => {
            let given = match &a.relay {
                Some(t) => Some(
                    t.parse::<RelayAddress>()
                        .map_err(|e| CliError::input(format!("bad relay address: {e}")))?
                        .key,
                ),
                None => None,
            };
            let (code, addr) = rt
                .block_on(kith_net::relay::post_join_request(
                    &token,
                    given.as_ref(),
                    &keys,
                ))
                .map_err(join_error)?;
            show_code(&code, out)?;
            let (id, inviter) = rt
                .block_on(kith_net::relay::await_welcome(&token, &addr, &mut keys))
                .map_err(join_error)?;
            ks.save(&keys).map_err(failure)?;
            remember_relay(dir, &addr)?;
            let store = Mutex::new(open_store(dir)?);
            let r = rt
                .block_on(kith_net::relay_round(
                    &store,
                    &id,
                    &addr,
                    relay_cfg(dir),
                    vec![],
                    TIMEOUT_MS,
                    |_| {},
                ))
                .map_err(failure)?;
            close(Arc::new(store))?;
            report_join(&id, &inviter, json, out)?;
            if !json {
                out.line(format!(
                    "First sync: {} interactions, {} contacts received.",
                    r.interactions_changed, r.contacts_changed
                ))?;
            }
        }
    }
    Ok(())
}

fn join_error(e: kith_net::JoinError) -> CliError {
    match e {
        kith_net::JoinError::Pair(p) => CliError::input(p),
        kith_net::JoinError::Net(n) => failure(n),
    }
}

fn report_join(id: &DeviceIdentity, inviter: &str, json: bool, out: &mut Out) -> CliResult<()> {
    if json {
        // One compact line: it follows the `code` line on the same stream.
        out.line(
            serde_json::json!({
                "account": id.account_id().to_string(),
                "device": id.device_id().to_string(),
            })
            .to_string(),
        )?;
    } else {
        out.line(format!(
            "Joined account {} (invited by {inviter}); this device is {}",
            id.account_id(),
            id.device_id()
        ))?;
    }
    Ok(())
}

fn fmt_ms(ms: u64) -> String {
    if ms == 0 {
        return "never".into();
    }
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".into())
}

/// `kith devices` and `kith devices revoke ID`.
pub(crate) fn devices(dir: &Path, a: DevicesArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let id = load_identity(dir)?;
    let mut store = open_store(dir)?;
    let list = list_devices(&mut store).map_err(super::store_failure)?;
    match a.cmd {
        None => {
            let quarantined = sync_status(&mut store)
                .map_err(super::store_failure)?
                .quarantined;
            store.close().map_err(super::store_failure)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id.to_string(), "name": d.name, "added_ms": d.added_ms,
                            "last_seen_ms": d.last_seen_ms, "revoked_at_ms": d.revoked_at_ms,
                            "this_device": d.id == id.device_id(),
                            "quarantined_entries": d.quarantined_entries,
                        })
                    })
                    .collect();
                out.json(&rows)?;
                return Ok(());
            }
            let mut t = Table::new(&["id", "name", "added", "last seen", "status"]);
            for d in &list {
                let status = if d.id == id.device_id() {
                    "this device".to_string()
                } else if let Some(r) = d.revoked_at_ms {
                    format!("revoked {}", fmt_ms(r))
                } else if d.quarantined_entries > 0 {
                    format!("WARNING: {} bad entries skipped", d.quarantined_entries)
                } else {
                    String::new()
                };
                t.row(vec![
                    d.id.to_string(),
                    d.name.clone(),
                    fmt_ms(d.added_ms),
                    fmt_ms(d.last_seen_ms),
                    status,
                ]);
            }
            out.table(&t)?;
            for line in quarantine_warnings(&quarantined, &list) {
                out.line(line)?;
            }
            Ok(())
        }
        Some(DevicesCmd::Revoke { id: want, relay }) => {
            let want = want.trim().to_ascii_lowercase();
            let matches: Vec<DeviceId> = list
                .iter()
                .filter(|d| d.id.to_string().starts_with(&want))
                .map(|d| d.id)
                .collect();
            let target = match matches.as_slice() {
                [one] => *one,
                [] => {
                    // Not seen yet, but a full id is still revocable.
                    want.parse::<DeviceId>().map_err(|_| {
                        CliError::input(format!(
                            "no known device matches '{want}' (see `kith devices`)"
                        ))
                    })?
                }
                _ => return Err(CliError::input(format!("'{want}' matches several devices"))),
            };
            if target == id.device_id() {
                return Err(CliError::input("refusing to revoke this device itself"));
            }
            let addr = relay_from(dir, relay.as_deref())?;
            let store = Mutex::new(store);
            let rt = runtime()?;
            let mut done = false;
            rt.block_on(kith_net::relay_round(
                &store,
                &id,
                &addr,
                relay_cfg(dir),
                vec![kith_net::relay::Extra::Revoke(target)],
                TIMEOUT_MS,
                |e| done |= *e == RelayEvent::Revoked { device: target },
            ))
            .map_err(failure)?;
            let store = store.into_inner().unwrap_or_else(|e| e.into_inner());
            store.close().map_err(super::store_failure)?;
            if !done {
                return Err(failure("the relay did not confirm the revocation"));
            }
            if json {
                out.json(&serde_json::json!({ "revoked": target.to_string() }))?;
            } else {
                out.line(format!("Revoked {target} at {addr}"))?;
            }
            Ok(())
        }
    }
}

fn describe(e: &RelayEvent) -> Option<String> {
    Some(match e {
        RelayEvent::Received {
            entries,
            bytes,
            live,
        } => format!(
            "{} {entries} entries ({bytes} bytes)",
            if *live { "live:" } else { "received" }
        ),
        RelayEvent::Applied {
            doc,
            contacts,
            interactions,
            pending,
        } if *contacts + *interactions + *pending > 0 => format!(
            "  {doc}: {contacts} contacts, {interactions} interactions changed{}",
            if *pending > 0 {
                format!(", {pending} changes waiting for others")
            } else {
                String::new()
            }
        ),
        RelayEvent::Pushed {
            entries,
            bytes,
            acked_seq,
        } => format!("sent {entries} entries ({bytes} bytes), acknowledged up to #{acked_seq}"),
        RelayEvent::SnapshotApplied { docs, bytes } => {
            format!("started from the snapshot ({docs} documents, {bytes} bytes)")
        }
        RelayEvent::SnapshotStored {
            bytes,
            pruned_entries,
        } => {
            format!("uploaded a snapshot ({bytes} bytes; relay pruned {pruned_entries} entries)")
        }
        RelayEvent::SnapshotUnreadable { device, reason } => format!(
            "warning: the relay's snapshot made by device {device} was skipped ({reason}); syncing from an older snapshot or the log instead"
        ),
        RelayEvent::SnapshotConfirmed { pruned_entries } => format!(
            "checked another device's snapshot; the relay pruned {pruned_entries} entries it covers"
        ),
        RelayEvent::RateLimited { retry_after_ms } => {
            format!("relay rate limit: retrying in {retry_after_ms} ms")
        }
        RelayEvent::Lagged => "fell behind live events; catching up".into(),
        RelayEvent::Repaired { device, seq } => format!(
            "entry #{seq} of device {device}, skipped before, now reads correctly (the relay's copy was repaired) and was applied"
        ),
        RelayEvent::Quarantined {
            device,
            seq,
            reason,
        } => format!("warning: skipped entry #{seq} of device {device}: {reason}"),
        RelayEvent::RelayHealed { from_seq, to_seq } => format!(
            "the relay had lost entries #{from_seq}..#{to_seq} of this device (restored from a backup): sending them again"
        ),
        _ => return None,
    })
}

/// The JSON object for a peer exchange.
fn peer_json(r: &kith_net::PeerReport) -> serde_json::Value {
    serde_json::json!({
        "peer": r.peer.as_ref().map(|c| c.device.to_string()),
        "changes_sent": r.stats.changes_sent,
        "changes_received": r.stats.changes_received,
        "contacts_changed": r.stats.contacts_changed,
        "interactions_changed": r.stats.interactions_changed,
        "bytes_sent": r.wire_sent_bytes, "bytes_received": r.wire_received_bytes,
        "elapsed_ms": r.elapsed_ms,
    })
}

/// One line (text, or compact JSON for streaming) for a peer exchange.
fn peer_line(r: &kith_net::PeerReport, json: bool) -> String {
    if json {
        return peer_json(r).to_string();
    }
    format!(
        "Synced with {}: sent {} changes, received {} ({} contacts, {} interactions changed); {} + {} bytes in {} ms",
        r.peer.as_ref().map(|c| c.name.as_str()).unwrap_or_default(),
        r.stats.changes_sent,
        r.stats.changes_received,
        r.stats.contacts_changed,
        r.stats.interactions_changed,
        r.wire_sent_bytes,
        r.wire_received_bytes,
        r.elapsed_ms
    )
}

/// A stop signal that turns true on Ctrl-C.
fn ctrl_c_stop() -> tokio::sync::watch::Receiver<bool> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop_tx.send(true);
    });
    stop_rx
}

/// `kith sync`.
pub(crate) fn sync(dir: &Path, a: SyncArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let id = load_identity(dir)?;
    let rt = runtime()?;
    if let Some(peer) = a.peer {
        let sock: SocketAddr = peer
            .parse()
            .map_err(|_| CliError::input(format!("bad peer address '{peer}' (HOST:PORT)")))?;
        if a.watch {
            return peer_watch(dir, &rt, &id, sock, json, out);
        }
        let store = Mutex::new(open_store(dir)?);
        let r = rt
            .block_on(kith_net::sync_with_peer(&store, &id, sock))
            .map_err(failure)?;
        close(Arc::new(store))?;
        if json {
            out.json(&peer_json(&r))?;
        } else {
            out.line(peer_line(&r, false))?;
        }
        return Ok(());
    }
    let addr = relay_from(dir, a.relay.as_deref())?;
    remember_relay(dir, &addr)?;
    remember_registration_token(dir, a.registration_token.as_deref())?;
    if a.watch {
        if !json {
            out.line(format!("Watching {addr} (Ctrl-C to stop)"))?;
            out.flush()?;
        }
        let store = Mutex::new(open_watching(dir)?);
        // Bounded: the keeper's signals coalesce (a full channel already
        // means "push"), and relay_watch drains bursts into one push.
        let (local_tx, mut local_rx) = tokio::sync::mpsc::channel(8);
        let res = rt.block_on(async {
            let mut stop_rx = ctrl_c_stop();
            let mut stdout = Out::stdout();
            with_keeper(
                &store,
                move || {
                    let _ = local_tx.try_send(());
                },
                kith_net::relay_watch(
                    &store,
                    &id,
                    &addr,
                    relay_cfg(dir),
                    kith_net::WatchOptions::default(),
                    &mut local_rx,
                    &mut stop_rx,
                    |e| {
                        if let Some(p) = super::sync_progress::progress_line(e) {
                            let _ = super::sync_progress::to_stderr(&p);
                        } else if let Some(line) = describe(e) {
                            let _ = stdout.line(line);
                            let _ = stdout.flush();
                        }
                    },
                    |e, delay| {
                        let _ = stdout_err(&format!(
                            "connection problem ({e}); retrying in {delay} ms"
                        ));
                    },
                ),
            )
            .await
        });
        close(Arc::new(store))?;
        return res.map_err(failure);
    }
    let store = Arc::new(Mutex::new(open_store(dir)?));
    let mut lines = Vec::new();
    let r = rt
        .block_on(kith_net::relay_round(
            &store,
            &id,
            &addr,
            relay_cfg(dir),
            vec![],
            TIMEOUT_MS,
            |e| {
                if let Some(l) = describe(e) {
                    lines.push(l);
                }
            },
        ))
        .map_err(failure)?;
    let (status, known) = {
        let mut s = store.lock().unwrap_or_else(|e| e.into_inner());
        (
            sync_status(&mut s).map_err(super::store_failure)?,
            list_devices(&mut s).map_err(super::store_failure)?,
        )
    };
    close(store)?;
    if json {
        let quarantined: Vec<_> = status
            .quarantined
            .iter()
            .map(|q| {
                serde_json::json!({
                    "device": q.device.to_string(), "seq": q.seq, "reason": q.reason,
                    "at_ms": q.at_ms,
                })
            })
            .collect();
        out.json(&serde_json::json!({
            "pushed_entries": r.pushed_entries, "pushed_bytes": r.pushed_bytes,
            "received_entries": r.received_entries, "received_bytes": r.received_bytes,
            "contacts_changed": r.contacts_changed, "interactions_changed": r.interactions_changed,
            "pending_changes": status.pending_changes, "wire_bytes_sent": r.wire_sent_bytes,
            "wire_bytes_received": r.wire_received_bytes, "elapsed_ms": r.elapsed_ms,
            "quarantined": quarantined,
        }))?;
        return Ok(());
    }
    for l in lines {
        out.line(l)?;
    }
    out.line(format!(
        "Synced with {addr} in {} ms: sent {} entries, received {} ({} contacts, {} interactions changed).",
        r.elapsed_ms, r.pushed_entries, r.received_entries, r.contacts_changed, r.interactions_changed
    ))?;
    if status.pending_changes > 0 {
        out.line(format!(
            "{} changes wait for changes from other devices that have not reached the relay yet.",
            status.pending_changes
        ))?;
    }
    for line in quarantine_warnings(&status.quarantined, &known) {
        out.line(line)?;
    }
    Ok(())
}

/// One warning per device with skipped (quarantined) entries, naming it.
fn quarantine_warnings(
    quarantined: &[kith_core::sync::QuarantinedEntry],
    known: &[kith_core::sync::devices::DeviceInfo],
) -> Vec<String> {
    let mut by_device: std::collections::BTreeMap<
        DeviceId,
        Vec<&kith_core::sync::QuarantinedEntry>,
    > = std::collections::BTreeMap::new();
    for q in quarantined {
        by_device.entry(q.device).or_default().push(q);
    }
    by_device
        .into_iter()
        .map(|(device, qs)| {
            let name = known
                .iter()
                .find(|d| d.id == device)
                .map_or_else(|| "an unknown device".to_string(), |d| format!("'{}'", d.name));
            let last = qs.last().map(|q| q.reason.as_str()).unwrap_or_default();
            // Seq 0 records a snapshot of that device that could not be opened.
            let snapshots = qs.iter().filter(|q| q.seq == 0).count();
            let what = match (qs.len() - snapshots, snapshots) {
                (n, 0) => format!("{n} entries"),
                (0, m) => format!("{m} snapshot(s)"),
                (n, m) => format!("{n} entries and {m} snapshot(s)"),
            };
            format!(
                "Warning: {what} from {name} ({device}) were skipped because they do not verify, decrypt or parse (last: {last}). That device may be damaged or hostile, or the relay's copy damaged; everything else synced.",
            )
        })
        .collect()
}

fn stdout_err(s: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(std::io::stderr(), "{s}")
}

/// `kith sync --peer ADDR --watch`: one kept connection, an exchange
/// whenever either side has something new; reconnects when the peer goes away.
fn peer_watch(
    dir: &Path,
    rt: &tokio::runtime::Runtime,
    id: &DeviceIdentity,
    sock: SocketAddr,
    json: bool,
    out: &mut Out,
) -> CliResult<()> {
    if !json {
        out.line(format!("Watching peer {sock} (Ctrl-C to stop)"))?;
        out.flush()?;
    }
    let store = Mutex::new(open_watching(dir)?);
    let (local_tx, mut local_rx) = tokio::sync::mpsc::channel(8);
    let res = rt.block_on(async {
        let mut stop_rx = ctrl_c_stop();
        let mut stdout = Out::stdout();
        with_keeper(
            &store,
            move || {
                let _ = local_tx.try_send(());
            },
            kith_net::peer_watch(
                &store,
                id,
                sock,
                kith_net::WatchOptions::default(),
                &mut local_rx,
                &mut stop_rx,
                |r| {
                    // Quiet when nothing moved (the keeper's echo of a merge).
                    if r.stats.changes_sent + r.stats.changes_received > 0 {
                        let _ = stdout.line(peer_line(r, json));
                        let _ = stdout.flush();
                    }
                },
                |e, delay| {
                    let _ = stdout_err(&format!("peer problem ({e}); retrying in {delay} ms"));
                },
            ),
        )
        .await
    });
    close(Arc::new(store))?;
    res.map_err(failure)
}

/// `kith serve-peer`.
pub(crate) fn serve_peer(dir: &Path, a: ServePeerArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let id = load_identity(dir)?;
    let rt = runtime()?;
    let _entered = rt.enter();
    let server = kith_net::PeerServer::bind(a.listen, &id).map_err(failure)?;
    let local = server.local_addr().map_err(failure)?;
    if json {
        out.line(
            serde_json::json!({ "listening": local.to_string(), "device": id.device_id().to_string() })
                .to_string(),
        )?;
    } else {
        out.line(format!("Serving peer sync on {local} (Ctrl-C to stop)"))?;
    }
    out.flush()?;
    let store = Arc::new(Mutex::new(open_watching(dir)?));
    let host = Arc::new(Mutex::new(PairingHost::default()));
    let notifier = server.notifier();
    let s2 = store.clone();
    rt.block_on(with_keeper(
        &s2,
        move || notifier.notify(),
        server.run(
            store.clone(),
            id,
            host,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            |r| {
                let line = match r {
                    Ok(r) if r.stats.changes_sent + r.stats.changes_received == 0 => return,
                    Ok(r) => format!(
                        "session with {}: sent {}, received {} changes",
                        r.peer
                            .map(|c| c.name)
                            .unwrap_or_else(|| "a pairing device".into()),
                        r.stats.changes_sent,
                        r.stats.changes_received
                    ),
                    Err(e) => format!("session refused or failed: {e}"),
                };
                let _ = stdout_err(&line);
            },
        ),
    ))
    .map_err(failure)?;
    drop(s2);
    close(store)
}
