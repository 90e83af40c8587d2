//! Import, export and encrypted backup through the bindings.
//!
//! Imports take the file's bytes (the app reads them from a share sheet or a
//! document picker), parse them with kith-core (`import::vcard_drafts`,
//! `import::parse_linkedin_csv`), plan them against the store (new, imported
//! before, likely duplicate of an existing contact) and, unless `dry_run`,
//! apply the plan in one bulk write; likely duplicates are never created, the
//! report names the contact to merge them into. Listeners hear about the
//! contacts an import created or changed. Exports return the text of the
//! file (vCard, JSON, CSV). `backup` seals every document of the store with a
//! passphrase; the top-level `restore_backup` decrypts and checks a backup
//! completely before it writes anything, into an empty directory, and returns
//! the restored store opened.

use std::path::PathBuf;
use std::sync::Arc;

use kith_core::backup::{
    BackupError, BackupParams, StoreBackupError, backup_store, restore_store,
    restore_store_with_key_file,
};
use kith_core::export::{KithExport, write_json};
use kith_core::identity::KeyStore;
use kith_core::import::{ApplyOptions, ContactDraft, apply_plan, plan_for_store};
use kith_formats::write_vcards;
use kith_formats::{LinkedinLimits, VcardLimits, parse_linkedin_csv, vcard_drafts};

use crate::account::{ForeignKeyStore, KithKeyStore};
use crate::error::{KithError, KithResult};
use crate::guard::guard;
use crate::kith::Kith;
use crate::listener::ChangeSummary;
use crate::types::DuplicateReason;
use crate::types::{to_i32, to_i64};

/// A contact an import created (or, with `dry_run`, would create).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImportedContact {
    /// The new contact's id; `None` in a dry run.
    pub contact_id: Option<String>,
    /// The contact's display name.
    pub name: String,
    /// Its organisation, when the record has one.
    pub organisation: Option<String>,
    /// Line of the record in the file (BEGIN:VCARD, or the CSV row).
    pub source_line: i64,
}

/// A record imported before (matched on its import key): nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AlreadyImported {
    /// The record's display name.
    pub name: String,
    /// Line of the record in the file.
    pub source_line: i64,
    /// The contact that came from this record before.
    pub existing_contact_id: String,
}

/// A record that looks like an existing contact, or like an earlier record of
/// the same file; it was not created.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImportDuplicate {
    /// The record's display name.
    pub name: String,
    /// Line of the record in the file.
    pub source_line: i64,
    /// The contact suggested as the merge target: an existing one, or the one
    /// this import created for the earlier record (`None` in a dry run).
    pub merge_into_id: Option<String>,
    /// Line of the earlier record of the file this one looks like (`None`
    /// when it looks like an existing contact).
    pub same_as_line: Option<i64>,
    /// Why it looks like the merge target; never empty.
    pub reasons: Vec<DuplicateReason>,
}

/// A record or property of the file that could not be read (it was skipped).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImportProblem {
    /// 1-based line in the file.
    pub line: i64,
    /// What was wrong and what was skipped, for the user.
    pub message: String,
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ImportReport {
    /// True when nothing was written (a preview).
    pub dry_run: bool,
    /// Contacts created (or that would be).
    pub created: Vec<ImportedContact>,
    /// Records skipped because they were imported before.
    pub already_imported: Vec<AlreadyImported>,
    /// Records held back as likely duplicates; merge or create them by hand.
    pub likely_duplicates: Vec<ImportDuplicate>,
    /// Records that repeat an earlier record of the same file.
    pub repeated_in_input: i32,
    /// Problems met, in file order; bounded.
    pub problems: Vec<ImportProblem>,
    /// Problems beyond the listed ones (the list is bounded).
    pub problems_not_listed: i64,
}

fn line(n: usize) -> i64 {
    to_i64(n)
}

fn export_failure(e: impl std::error::Error) -> KithError {
    KithError::Internal {
        reason: e.to_string(),
    }
}

fn text(bytes: Vec<u8>) -> KithResult<String> {
    String::from_utf8(bytes).map_err(|e| KithError::Internal {
        reason: format!("an export was not UTF-8: {e}"),
    })
}

/// Maps a backup error; `restoring` tells a payload that fails to decode
/// (damage) from one that fails to encode (a bug).
fn backup_error(e: StoreBackupError, restoring: bool) -> KithError {
    let reason = e.to_string();
    match e {
        StoreBackupError::Backup(
            BackupError::WrongPassphrase
            | BackupError::EmptyPassphrase
            | BackupError::WeakPassphrase { .. },
        ) => KithError::invalid("passphrase", reason),
        StoreBackupError::Backup(
            BackupError::NotABackup
            | BackupError::NewerVersion { .. }
            | BackupError::UnknownAlgorithm { .. }
            | BackupError::Damaged { .. }
            | BackupError::InvalidParams { .. }
            | BackupError::NewerPayload { .. },
        )
        | StoreBackupError::BadDocument { .. }
        | StoreBackupError::BadKeys { .. } => KithError::invalid("backup", reason),
        StoreBackupError::Backup(BackupError::Payload(_)) if restoring => {
            KithError::invalid("backup", reason)
        }
        StoreBackupError::Backup(BackupError::TooLarge { .. }) if restoring => {
            KithError::invalid("backup", reason)
        }
        StoreBackupError::Backup(
            BackupError::Payload(_) | BackupError::TooLarge { .. } | BackupError::Random(_),
        ) => KithError::Internal { reason },
        StoreBackupError::TargetNotEmpty { .. } => KithError::invalid("data_dir", reason),
        StoreBackupError::Store(s) => s.into(),
        StoreBackupError::Io { .. } | StoreBackupError::Keys(_) => KithError::Storage { reason },
    }
}

struct Parsed {
    drafts: Vec<ContactDraft>,
    problems: Vec<ImportProblem>,
    problems_not_listed: i64,
}

impl Kith {
    /// Plans `parsed` against the store and applies it unless `dry_run`.
    fn import(
        &self,
        parse: impl FnOnce(Option<&str>) -> KithResult<Parsed>,
        dry_run: bool,
    ) -> KithResult<ImportReport> {
        let (report, changed) = self.with_store(|store| {
            let my_org = store.settings()?.my_organisation;
            let parsed = parse(my_org.as_deref())?;
            let plan = plan_for_store(store, parsed.drafts)?;
            let applied = if dry_run || plan.is_empty() {
                None
            } else {
                let now_ms = chrono::Utc::now().timestamp_millis();
                Some(apply_plan(
                    store,
                    &plan,
                    &ApplyOptions {
                        create_likely_duplicates: false,
                        now_ms,
                    },
                )?)
            };
            let created_ids = applied
                .as_ref()
                .map(|a| a.created.as_slice())
                .unwrap_or(&[]);
            let report = ImportReport {
                dry_run,
                created: plan
                    .create
                    .iter()
                    .enumerate()
                    .map(|(i, d)| ImportedContact {
                        contact_id: created_ids.get(i).map(ToString::to_string),
                        name: d.name.clone(),
                        organisation: d.organisation.clone(),
                        source_line: line(d.source_line),
                    })
                    .collect(),
                already_imported: plan
                    .already_imported
                    .iter()
                    .map(|a| AlreadyImported {
                        name: a.draft.name.clone(),
                        source_line: line(a.draft.source_line),
                        existing_contact_id: a.existing.to_string(),
                    })
                    .collect(),
                likely_duplicates: plan
                    .likely_duplicates
                    .iter()
                    .map(|d| ImportDuplicate {
                        name: d.draft.name.clone(),
                        source_line: line(d.draft.source_line),
                        merge_into_id: applied
                            .as_ref()
                            .map_or(d.merge_into.existing(), |a| a.merge_target(d.merge_into))
                            .map(|id| id.to_string()),
                        same_as_line: d.merge_into.same_as_line().map(line),
                        reasons: d.reasons.iter().cloned().map(Into::into).collect(),
                    })
                    .collect(),
                repeated_in_input: to_i32(plan.repeated_in_input.len()),
                problems: parsed.problems,
                problems_not_listed: parsed.problems_not_listed,
            };
            let changed = applied.map(|a| {
                let mut ids = a.created;
                ids.extend(a.keys_added);
                ChangeSummary::contacts(ids)
            });
            Ok((report, changed))
        })?;
        if let Some(summary) = changed.filter(|s| !s.contact_ids.is_empty()) {
            self.local_changed(&summary);
        }
        Ok(report)
    }
}

// Rust API: the blocking implementation. The foreign API (async where this touches the
// disk or the network) is the `ffi_*` façade in crate::api, one method per operation.
impl Kith {
    /// Imports the contacts of a vCard file (versions 2.1, 3.0 and 4.0).
    /// `dry_run` reports what would happen and writes nothing. A file that
    /// cannot be read at all fails with `InvalidInput("bytes")`; records that
    /// cannot be read are skipped and listed in `problems`.
    pub fn import_vcard(&self, bytes: Vec<u8>, dry_run: bool) -> KithResult<ImportReport> {
        guard("import_vcard", || {
            self.import(
                |my_org| {
                    let batch = vcard_drafts(&bytes, &VcardLimits::default(), my_org)
                        .map_err(|e| KithError::invalid("bytes", e.to_string()))?;
                    Ok(Parsed {
                        drafts: batch.drafts,
                        problems: batch
                            .errors
                            .into_iter()
                            .map(|e| ImportProblem {
                                line: line(e.line),
                                message: e.message,
                            })
                            .collect(),
                        problems_not_listed: line(batch.errors_dropped),
                    })
                },
                dry_run,
            )
        })
    }

    /// Imports LinkedIn's Connections.csv export; otherwise as `import_vcard`.
    pub fn import_linkedin_csv(&self, bytes: Vec<u8>, dry_run: bool) -> KithResult<ImportReport> {
        guard("import_linkedin_csv", || {
            self.import(
                |my_org| {
                    let batch = parse_linkedin_csv(&bytes, &LinkedinLimits::default(), my_org)
                        .map_err(|e| KithError::invalid("bytes", e.to_string()))?;
                    Ok(Parsed {
                        drafts: batch.drafts,
                        problems: batch
                            .errors
                            .into_iter()
                            .map(|e| ImportProblem {
                                line: line(e.line),
                                message: e.message,
                            })
                            .collect(),
                        problems_not_listed: line(batch.errors_dropped),
                    })
                },
                dry_run,
            )
        })
    }

    /// Every live contact (not merged away) as a vCard 4.0 file.
    pub fn export_vcard(&self) -> KithResult<String> {
        guard("export_vcard", || {
            self.with_store(|store| {
                let contacts = store.all_contacts()?;
                Ok(write_vcards(
                    contacts.iter().filter(|c| c.merged_into.is_none()),
                ))
            })
        })
    }

    /// Everything (settings, contacts, interactions, projects, goals) as a
    /// `kith-export` JSON file, ids kept.
    pub fn export_json(&self) -> KithResult<String> {
        guard("export_json", || {
            self.with_store(|store| {
                let export = KithExport::from_store(store, chrono::Utc::now().timestamp_millis())?;
                let mut buf = Vec::new();
                write_json(&export, &mut buf).map_err(export_failure)?;
                text(buf)
            })
        })
    }

    /// Contacts as CSV (one row per contact, a header row first).
    pub fn export_contacts_csv(&self) -> KithResult<String> {
        guard("export_contacts_csv", || {
            self.with_store(|store| {
                let contacts = store.all_contacts()?;
                let mut buf = Vec::new();
                kith_formats::csv_out::write_contacts_csv(&mut buf, &contacts)
                    .map_err(export_failure)?;
                text(buf)
            })
        })
    }

    /// Interactions as CSV, participants and project by name.
    pub fn export_interactions_csv(&self) -> KithResult<String> {
        guard("export_interactions_csv", || {
            self.with_store(|store| {
                let contacts = store.all_contacts()?;
                let interactions = store.all_interactions()?;
                let projects = store.all_projects()?;
                let mut buf = Vec::new();
                kith_formats::csv_out::write_interactions_csv(
                    &mut buf,
                    &interactions,
                    &contacts,
                    &projects,
                )
                .map_err(export_failure)?;
                text(buf)
            })
        })
    }

    /// The whole store, encrypted with `passphrase` (Argon2id, 64 MiB, then
    /// XChaCha20-Poly1305): save the bytes anywhere; `restore_backup` reads
    /// them back. With `include_keys` (the default) the device's key material
    /// (account secret, device key, certificate) goes in too, so a restored
    /// device is the same device in sync; without it the backup holds data
    /// only. Takes about a second (the key derivation is slow on purpose):
    /// call it off the UI thread.
    pub fn backup(&self, passphrase: String, include_keys: bool) -> KithResult<Vec<u8>> {
        guard("backup", || {
            if passphrase.is_empty() {
                return Err(KithError::invalid("passphrase", "must not be empty"));
            }
            // Read before taking the store: the key store may be a foreign
            // callback, which must not run under the store's lock.
            let keys = if include_keys {
                self.keys.load()?
            } else {
                None
            };
            self.with_store(|store| {
                backup_store(
                    store,
                    &passphrase,
                    &BackupParams::default(),
                    keys.as_ref(),
                    chrono::Utc::now().timestamp_millis(),
                )
                .map_err(|e| backup_error(e, false))
            })
        })
    }
}

/// Restores a backup made by `Kith.backup` into `data_dir` (which must be
/// missing or empty) and returns the restored store, open. The backup is
/// decrypted and checked completely first: a wrong passphrase fails with
/// `InvalidInput("passphrase")`, a damaged or foreign file with
/// `InvalidInput("backup")`, and neither writes anything.
///
/// Key material in the backup goes to `key_store` when given (the app's
/// Keychain/Keystore; the returned `Kith` uses it), else to `keys.json` in
/// `data_dir` (owner-only). If the key store refuses it, the restored
/// directory is removed again and the error returned: nothing half-restored
/// is left behind.
/// (Rust API, blocking; exported as the async `restore_backup` in crate::api.)
pub fn restore_backup(
    data_dir: String,
    passphrase: String,
    backup: Vec<u8>,
    key_store: Option<Arc<dyn KithKeyStore>>,
) -> KithResult<Arc<Kith>> {
    guard("restore_backup", || {
        if data_dir.trim().is_empty() {
            return Err(KithError::invalid("data_dir", "must not be empty"));
        }
        if passphrase.is_empty() {
            return Err(KithError::invalid("passphrase", "must not be empty"));
        }
        let path = PathBuf::from(data_dir);
        let Some(foreign) = key_store else {
            let restored = restore_store_with_key_file(&path, &passphrase, &backup)
                .map_err(|e| backup_error(e, true))?;
            return Kith::from_store(path, restored.store);
        };
        let restored =
            restore_store(&path, &passphrase, &backup).map_err(|e| backup_error(e, true))?;
        let keys: Arc<dyn KeyStore> = Arc::new(ForeignKeyStore(foreign));
        if let Some(material) = &restored.keys
            && let Err(e) = keys.save(material)
        {
            // The directory was missing or empty before: removing what the
            // restore created puts it back as it was.
            let _ = restored.store.close();
            let _ = std::fs::remove_dir_all(&path);
            return Err(e.into());
        }
        Kith::from_store_with_keys(path, restored.store, keys)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: KithError) -> String {
        match e {
            KithError::InvalidInput { field, .. } => field,
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn backup_errors_name_what_the_user_can_fix() {
        let b = |e: BackupError| StoreBackupError::Backup(e);
        assert_eq!(
            field(backup_error(b(BackupError::WrongPassphrase), true)),
            "passphrase"
        );
        assert_eq!(
            field(backup_error(b(BackupError::EmptyPassphrase), false)),
            "passphrase"
        );
        assert_eq!(
            field(backup_error(b(BackupError::NotABackup), true)),
            "backup"
        );
        assert_eq!(
            field(backup_error(b(BackupError::Damaged { what: "tag" }), true)),
            "backup"
        );
        let too_large = || {
            b(BackupError::TooLarge {
                size_bytes: 2,
                size_bytes_max: 1,
            })
        };
        assert_eq!(field(backup_error(too_large(), true)), "backup");
        assert!(matches!(
            backup_error(too_large(), false),
            KithError::Internal { .. }
        ));
        let not_empty = StoreBackupError::TargetNotEmpty {
            path: PathBuf::from("x"),
        };
        assert_eq!(field(backup_error(not_empty, true)), "data_dir");
        let io = StoreBackupError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::other("disk full"),
        };
        assert!(matches!(backup_error(io, true), KithError::Storage { .. }));
    }
}
