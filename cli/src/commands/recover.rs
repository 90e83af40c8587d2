//! `kith recover`: wins the account back with the recovery code written down
//! at `kith init` (docs/SECURITY.md §3.7).
//!
//! Reads the code without echo (or one line from stdin with `--code-stdin`),
//! decides who this device is afterwards, runs one recovery session at the
//! relay (`kith_net::recover_account`: the relay's membership log fetched and
//! verified, a `Recover` op keeping exactly the chosen devices, every other
//! one revoked, a new key epoch) and then one normal sync round.
//!
//! Who this device is:
//! - it has keys and its store holds the account's membership log (a device
//!   that was a member, perhaps revoked by a thief): it keeps its keys;
//! - its keys came from a backup (`kith restore`: keys but no membership log
//!   in the store): those keys are a lost device's, so this device gets new
//!   keys and the restored ones are only used to open the epoch keys sealed to
//!   the lost device, which the new epoch then carries to this one. The
//!   restored keys wait in `keys.restored.json` (owner-only) until the
//!   recovery succeeded, so an interrupted recovery can be run again;
//! - it has no keys (a new device, or a backup made without keys): new keys;
//!   it reads what the backup held but none of the relay's older entries.

use std::path::Path;
use std::sync::Mutex;

use clap::Args;
use kith_core::Store;
use kith_core::identity::{FileKeyStore, KeyMaterial, KeyStore};
use kith_core::sync::authority::RecoveryCode;
use kith_core::sync::devices::list_devices;
use kith_core::sync::relay::RecoverError;
use kith_core::sync::{DeviceIdentity, membership};
use kith_protocol::DeviceId;

use super::sync::{
    TIMEOUT_MS, failure, open_store, relay_cfg, relay_from, remember_relay, runtime,
};
use crate::error::{CliError, CliResult};
use crate::render::Out;

/// The key file holding a restored (lost) device's keys during a recovery.
const RESTORED_KEYS_FILE: &str = "keys.restored.json";
/// Longest line read as a recovery code.
const CODE_LINE_BYTES_MAX: u64 = 1024;

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Relay of the account (kith://KEY@HOST:PORT); default: the relay last used.
    #[arg(long)]
    pub(crate) relay: Option<String>,
    /// A device to keep as a member (id or unique prefix; repeatable). This
    /// device is kept by default; with --keep, only the devices named (name
    /// `this` for this device). Every other device is revoked.
    #[arg(long = "keep", value_name = "DEVICE")]
    pub(crate) keep: Vec<String>,
    /// For scripts: read the recovery code from one line of stdin instead of
    /// asking for it without echo.
    #[arg(long)]
    pub(crate) code_stdin: bool,
    /// Name of this device when it gets new keys (a new or restored device).
    #[arg(long)]
    pub(crate) name: Option<String>,
}

fn read_code(code_stdin: bool) -> CliResult<RecoveryCode> {
    use std::io::{BufRead, IsTerminal, Read};
    let text = if code_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .take(CODE_LINE_BYTES_MAX)
            .read_line(&mut line)?;
        line
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Recovery code (kithr1-...): ").map_err(failure)?
    } else {
        return Err(CliError::input(
            "the recovery code is read from the terminal without echo; from a script pass --code-stdin",
        ));
    };
    let code = RecoveryCode::parse(text.trim()).map_err(CliError::input);
    // The code is the account's root key: do not keep the text around.
    zeroize::Zeroize::zeroize(&mut text.into_bytes());
    code
}

/// Who this device is after the recovery, and the restored keys (if any)
/// whose epoch keys it carries over. Writes new keys before anything is sent
/// (a recovery that kept unsaved keys would lock the owner out).
fn identities(
    dir: &Path,
    store: &mut Store,
    code: &RecoveryCode,
    name: Option<&str>,
) -> CliResult<(DeviceIdentity, Option<DeviceIdentity>)> {
    let account = code.account();
    let ks = FileKeyStore::in_dir(dir);
    let restored_ks = FileKeyStore::new(dir.join(RESTORED_KEYS_FILE));
    let keys = ks.load().map_err(failure)?;
    let restored = restored_ks.load().map_err(failure)?;
    let has_log = !membership::ops(store).map_err(failure)?.is_empty();
    let other = |a: [u8; 32]| {
        CliError::input(RecoverError::OtherAccount {
            code_account: account,
            account: kith_protocol::AccountId(a),
        })
    };
    let fresh = |name: String| {
        let mut k = KeyMaterial::generate(&name);
        k.account = Some(account.0);
        k
    };
    let (mine, former) = match keys {
        Some(k) if k.account.is_some_and(|a| a != account.0) => {
            return Err(other(k.account.unwrap_or_default()));
        }
        // A member (or a revoked member) with its own log, or a restored
        // device whose interrupted recovery already gave it new keys (the
        // restored ones wait aside): same keys.
        Some(k) if k.account.is_some() && (has_log || restored.is_some()) => (k, restored),
        // Keys restored from a backup: a lost device's. New keys for this
        // device; the restored ones are kept aside until the recovery is done.
        Some(k) if k.account.is_some() => {
            restored_ks.save(&k).map_err(failure)?;
            let n = name.map_or_else(|| k.device_name.clone(), str::to_owned);
            let new = fresh(n);
            ks.save(&new).map_err(failure)?;
            (new, Some(k))
        }
        Some(mut k) => {
            // Keys without an account (never joined): this device as it is.
            k.account = Some(account.0);
            if let Some(n) = name {
                n.clone_into(&mut k.device_name);
            }
            ks.save(&k).map_err(failure)?;
            (k, restored)
        }
        None => {
            let new = fresh(name.unwrap_or("recovered device").to_owned());
            ks.save(&new).map_err(failure)?;
            (new, restored)
        }
    };
    if let Some(f) = &former
        && f.account.is_some_and(|a| a != account.0)
    {
        return Err(other(f.account.unwrap_or_default()));
    }
    let me = DeviceIdentity::from_material(&mine).map_err(CliError::input)?;
    let former = former
        .map(|f| DeviceIdentity::from_material(&f).map_err(CliError::input))
        .transpose()?;
    Ok((me, former))
}

/// Resolves `--keep` names against the devices this store knows.
fn keep_list(
    store: &mut Store,
    me: &DeviceIdentity,
    wanted: &[String],
) -> CliResult<Vec<DeviceId>> {
    if wanted.is_empty() {
        return Ok(vec![me.device_id()]);
    }
    let known = list_devices(store).map_err(super::store_failure)?;
    let mut out = Vec::new();
    for w in wanted {
        let w = w.trim().to_ascii_lowercase();
        let d = if w == "this" {
            me.device_id()
        } else {
            let m: Vec<DeviceId> = known
                .iter()
                .filter(|d| d.id.to_string().starts_with(&w))
                .map(|d| d.id)
                .collect();
            match m.as_slice() {
                [one] => *one,
                [] => w.parse::<DeviceId>().map_err(|_| {
                    CliError::input(format!(
                        "no known device matches '{w}' (see `kith devices`, or give the full id)"
                    ))
                })?,
                _ => return Err(CliError::input(format!("'{w}' matches several devices"))),
            }
        };
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

fn recover_error(e: kith_net::NetError) -> CliError {
    match e {
        kith_net::NetError::Recover(RecoverError::Relay { .. }) => failure(e),
        kith_net::NetError::Recover(r) => CliError::input(r),
        other if other.is_retryable() => failure(format!(
            "{other} (the relay is unreachable: nothing was changed; try again)"
        )),
        other => failure(other),
    }
}

/// `kith recover`.
pub(crate) fn recover(dir: &Path, a: RecoverArgs, json: bool, out: &mut Out) -> CliResult<()> {
    let addr = relay_from(dir, a.relay.as_deref())?;
    let code = read_code(a.code_stdin)?;
    kith_core::private_fs::ensure_private_dir(dir)?;
    let mut store = open_store(dir)?;
    let (me, former) = identities(dir, &mut store, &code, a.name.as_deref())?;
    let keep = keep_list(&mut store, &me, &a.keep)?;
    let carried = former.is_some();
    let store = Mutex::new(store);
    let rt = runtime()?;
    let done = rt
        .block_on(kith_net::recover_account(
            &store, &addr, code, &me, former, keep, TIMEOUT_MS,
        ))
        .map_err(recover_error)?;
    remember_relay(dir, &addr)?;
    if carried {
        // The lost device's keys did their job (the new epoch wraps what
        // they opened); they must not linger.
        let _ = std::fs::remove_file(dir.join(RESTORED_KEYS_FILE));
    }
    let still_member = done.members.contains(&me.device_id());
    let round = if still_member {
        Some(
            rt.block_on(kith_net::relay_round(
                &store,
                &me,
                &addr,
                relay_cfg(dir),
                vec![],
                TIMEOUT_MS,
                |_| {},
            ))
            .map_err(failure)?,
        )
    } else {
        None
    };
    let store = store.into_inner().unwrap_or_else(|e| e.into_inner());
    store.close().map_err(super::store_failure)?;
    if json {
        out.json(&serde_json::json!({
            "account": me.account_id().to_string(),
            "device": me.device_id().to_string(),
            "members": done.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "revoked": done.revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "epoch": done.epoch,
            "epochs_carried": done.epochs_wrapped,
            "received_interactions": round.as_ref().map(|r| r.interactions_changed),
        }))?;
        return Ok(());
    }
    out.line(format!(
        "Recovered account {} at {addr}: key epoch {} starts now.",
        me.account_id(),
        done.epoch
    ))?;
    for d in &done.members {
        let this = if *d == me.device_id() {
            " (this device)"
        } else {
            ""
        };
        out.line(format!("  kept    {d}{this}"))?;
    }
    for d in &done.revoked {
        out.line(format!("  revoked {d}"))?;
    }
    if done.epochs_wrapped == 0 {
        out.line(
            "This device held no earlier keys: entries the relay holds from before cannot be read here \
             (what a backup restored is still here).",
        )?;
    }
    if let Some(r) = round {
        out.line(format!(
            "Synced: {} interactions, {} contacts received.",
            r.interactions_changed, r.contacts_changed
        ))?;
    }
    Ok(())
}
