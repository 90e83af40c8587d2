//! The foreign API of `Kith`: every method Kotlin, Swift and Python see, in one place.
//!
//! The threading rule an app follows is one sentence: **every call that touches the
//! store's files, the key store or the network is `async`** (a Kotlin `suspend fun`, a
//! Swift `async` function, a Python coroutine) and runs on Kith's runtime
//! ([`crate::runtime`]), so no call can block the main thread with an fsync, a backup's
//! key derivation, an import, the insights or a sync round; the few that stay
//! synchronous only read or set memory (`data_dir`, `is_in_foreground`,
//! `is_released`, `add_listener`, `remove_listener`, `stop_sync`,
//! `set_sync_timeout_ms`, `set_registration_token`, the pairing objects' `token()`,
//! `expires_at_ms()` and `code()`, and the logger functions).
//!
//! Data flow: the generated binding calls an `ffi_*` method here (its exported name
//! drops the prefix); a blocking operation's arguments move into
//! [`run_blocking`], which runs the Rust method of the same name (in `kith`,
//! `account`, `insights`, `meetings`, `transfer`) under the panic guard on the
//! runtime's blocking pool, while the foreign side awaits the future; network
//! operations are async in Rust already and are awaited as they are. The Rust methods
//! stay blocking for Rust callers (tests, benches, a Rust app) and are the one
//! implementation: this façade only decides how each crosses the boundary.
//!
//! Listener callbacks after a write therefore run on a thread of Kith's runtime (the
//! one that did the write), like sync's callbacks: post to the UI thread from them.

use std::sync::Arc;

use crate::runtime::run_blocking;
#[allow(clippy::wildcard_imports)]
use crate::*;

#[uniffi::export]
impl Kith {
    // ------------------------------------------------------------ lifecycle

    /// Opens (creating when missing) the store in `data_dir`, or a new handle on it when this
    /// process has it open already (every handle shares one engine: see `Kith`). Another
    /// process holding the store for writing (an app extension) makes writes fail with
    /// `Locked`; `open_waiting` waits for it instead.
    #[uniffi::constructor(name = "open")]
    pub async fn ffi_open(data_dir: String) -> KithResult<Arc<Kith>> {
        run_blocking("open", move || Kith::open(data_dir)).await
    }

    /// Like `open`, with this device's key material kept by the app's
    /// `key_store` (Keychain, Keystore) instead of `keys.json` in `data_dir`.
    /// A handle on a store this process has open already uses the key store that first
    /// opened it.
    #[uniffi::constructor(name = "open_with_key_store")]
    pub async fn ffi_open_with_key_store(
        data_dir: String,
        key_store: Arc<dyn crate::account::KithKeyStore>,
    ) -> KithResult<Arc<Kith>> {
        run_blocking("open_with_key_store", move || {
            Kith::open_with_key_store(data_dir, key_store)
        })
        .await
    }

    /// For share sheets, widgets and notification services (another process than the app):
    /// opens the store like `open`, and each later write waits up to `lock_wait_ms` (at most
    /// 10,000) while the main app holds the store, instead of failing with `Locked` at once.
    /// Close it as soon as the work is done: the main app waits for it the same way.
    #[uniffi::constructor(name = "open_waiting")]
    pub async fn ffi_open_waiting(data_dir: String, lock_wait_ms: i64) -> KithResult<Arc<Kith>> {
        run_blocking("open_waiting", move || {
            Kith::open_waiting(data_dir, lock_wait_ms)
        })
        .await
    }

    /// The directory this store lives in.
    #[uniffi::method(name = "data_dir")]
    pub fn ffi_data_dir(&self) -> String {
        self.data_dir()
    }

    /// Closes this handle: its listeners are removed, and later calls on it fail with
    /// `Locked`. The store itself (sync, the file lock) closes with the last handle, and is
    /// released when no other handle is in the foreground. Closing twice is fine.
    #[uniffi::method(name = "close")]
    pub async fn ffi_close(self: Arc<Self>) -> KithResult<()> {
        run_blocking("close", move || self.close()).await
    }

    /// The app (or this handle's worker) went to the background: this handle gives back its
    /// lease. When no handle of the process is in the foreground any more, background sync
    /// stops and the store's file lock is released (iOS kills suspended apps that hold one),
    /// on Kith's runtime: the caller awaits it and never blocks its thread. Calls on any
    /// handle then fail with `Locked` until one comes back with `enter_foreground`. Another
    /// handle in the foreground (a WorkManager worker) keeps the store open and syncing.
    /// Idempotent.
    #[uniffi::method(name = "enter_background")]
    pub async fn ffi_enter_background(self: Arc<Self>) -> KithResult<()> {
        self.enter_background().await
    }

    /// Back in the foreground: this handle takes its lease again, the store reopens if it was
    /// released, and background sync restarts if it ran when the store was released.
    /// Idempotent.
    #[uniffi::method(name = "enter_foreground")]
    pub async fn ffi_enter_foreground(self: Arc<Self>) -> KithResult<()> {
        self.enter_foreground().await
    }

    /// Whether this handle is in the foreground (open and not sent to the background).
    #[uniffi::method(name = "is_in_foreground")]
    pub fn ffi_is_in_foreground(&self) -> bool {
        self.is_in_foreground()
    }

    /// Whether the store is released: no handle of this process is in the foreground, so
    /// calls fail with `Locked` and another process may open it.
    #[uniffi::method(name = "is_released")]
    pub fn ffi_is_released(&self) -> bool {
        self.is_released()
    }

    // ------------------------------------------------------------ listeners

    /// Registers a listener for changes; it immediately gets the current sync
    /// state. Returns the handle for `remove_listener`.
    #[uniffi::method(name = "add_listener")]
    pub fn ffi_add_listener(&self, listener: Arc<dyn KithListener>) -> KithResult<i64> {
        self.add_listener(listener)
    }

    /// Removes a listener; returns whether it was registered.
    #[uniffi::method(name = "remove_listener")]
    pub fn ffi_remove_listener(&self, handle: i64) -> bool {
        self.remove_listener(handle)
    }

    // ------------------------------------------------------------ contacts

    /// Adds a contact.
    #[uniffi::method(name = "add_contact")]
    pub async fn ffi_add_contact(self: Arc<Self>, contact: NewContact) -> KithResult<Contact> {
        run_blocking("add_contact", move || self.add_contact(contact)).await
    }

    /// Changes some fields of a contact.
    #[uniffi::method(name = "edit_contact")]
    pub async fn ffi_edit_contact(
        self: Arc<Self>,
        id: String,
        patch: ContactPatch,
    ) -> KithResult<Contact> {
        run_blocking("edit_contact", move || self.edit_contact(id, patch)).await
    }

    /// One contact (also when archived or merged away).
    #[uniffi::method(name = "get_contact")]
    pub async fn ffi_get_contact(self: Arc<Self>, id: String) -> KithResult<Contact> {
        run_blocking("get_contact", move || self.get_contact(id)).await
    }

    /// A page of the contact list.
    #[uniffi::method(
        name = "list_contacts",
        default(offset = 0, limit = 50, include_archived = false)
    )]
    pub async fn ffi_list_contacts(
        self: Arc<Self>,
        sort: ContactSort,
        offset: i32,
        limit: i32,
        include_archived: bool,
    ) -> KithResult<Vec<Contact>> {
        run_blocking("list_contacts", move || {
            self.list_contacts(sort, offset, limit, include_archived)
        })
        .await
    }

    /// How often and how recently I met a contact.
    #[uniffi::method(name = "contact_stats")]
    pub async fn ffi_contact_stats(self: Arc<Self>, id: String) -> KithResult<ContactStats> {
        run_blocking("contact_stats", move || self.contact_stats(id)).await
    }

    /// Archives a contact: hidden from the default list, history kept.
    #[uniffi::method(name = "archive_contact")]
    pub async fn ffi_archive_contact(self: Arc<Self>, id: String) -> KithResult<Contact> {
        run_blocking("archive_contact", move || self.archive_contact(id)).await
    }

    /// Brings an archived contact back.
    #[uniffi::method(name = "unarchive_contact")]
    pub async fn ffi_unarchive_contact(self: Arc<Self>, id: String) -> KithResult<Contact> {
        run_blocking("unarchive_contact", move || self.unarchive_contact(id)).await
    }

    /// Merges the contact `duplicate_id` into `keep_id`: every reference
    /// resolves to the kept contact, the duplicate records `merged_into`.
    /// Returns the kept contact. Undo with [`Kith::unmerge_contact`].
    #[uniffi::method(name = "merge_contacts")]
    pub async fn ffi_merge_contacts(
        self: Arc<Self>,
        keep_id: String,
        duplicate_id: String,
    ) -> KithResult<Contact> {
        run_blocking("merge_contacts", move || {
            self.merge_contacts(keep_id, duplicate_id)
        })
        .await
    }

    /// Undoes the merge of `contact_id`: it is a separate contact again, with
    /// its own fields and the interactions, exchanges and goals that name it
    /// (and the contacts merged into it). Syncs like any change. Returns it;
    /// `Conflict` when it is not merged.
    #[uniffi::method(name = "unmerge_contact")]
    pub async fn ffi_unmerge_contact(self: Arc<Self>, contact_id: String) -> KithResult<Contact> {
        run_blocking("unmerge_contact", move || self.unmerge_contact(contact_id)).await
    }

    /// Pairs of contacts that are likely the same person.
    #[uniffi::method(name = "likely_duplicates")]
    pub async fn ffi_likely_duplicates(self: Arc<Self>) -> KithResult<Vec<DuplicatePair>> {
        run_blocking("likely_duplicates", move || self.likely_duplicates()).await
    }

    // ------------------------------------------------------------ interactions

    /// Logs an interaction; durable when this returns. Returns its id.
    #[uniffi::method(name = "log_interaction")]
    pub async fn ffi_log_interaction(
        self: Arc<Self>,
        interaction: NewInteraction,
    ) -> KithResult<String> {
        run_blocking("log_interaction", move || self.log_interaction(interaction)).await
    }

    /// One interaction (also when deleted).
    #[uniffi::method(name = "get_interaction")]
    pub async fn ffi_get_interaction(self: Arc<Self>, id: String) -> KithResult<Interaction> {
        run_blocking("get_interaction", move || self.get_interaction(id)).await
    }

    /// Changes some fields of an interaction.
    #[uniffi::method(name = "edit_interaction")]
    pub async fn ffi_edit_interaction(
        self: Arc<Self>,
        id: String,
        patch: InteractionPatch,
    ) -> KithResult<Interaction> {
        run_blocking("edit_interaction", move || self.edit_interaction(id, patch)).await
    }

    /// Deletes an interaction (a tombstone: `undelete_interaction` restores it).
    #[uniffi::method(name = "delete_interaction")]
    pub async fn ffi_delete_interaction(self: Arc<Self>, id: String) -> KithResult<Interaction> {
        run_blocking("delete_interaction", move || self.delete_interaction(id)).await
    }

    /// Restores a deleted interaction.
    #[uniffi::method(name = "undelete_interaction")]
    pub async fn ffi_undelete_interaction(self: Arc<Self>, id: String) -> KithResult<Interaction> {
        run_blocking("undelete_interaction", move || {
            self.undelete_interaction(id)
        })
        .await
    }

    /// Interactions newest first, of one contact or (`None`) of everyone.
    #[uniffi::method(name = "timeline", default(contact_id = None, offset = 0, limit = 20, include_deleted = false))]
    pub async fn ffi_timeline(
        self: Arc<Self>,
        contact_id: Option<String>,
        offset: i32,
        limit: i32,
        include_deleted: bool,
    ) -> KithResult<Vec<Interaction>> {
        run_blocking("timeline", move || {
            self.timeline(contact_id, offset, limit, include_deleted)
        })
        .await
    }

    /// Prefix search over names, organisations, summaries and notes,
    /// ignoring case and accents.
    #[uniffi::method(name = "search", default(limit = 20))]
    pub async fn ffi_search(
        self: Arc<Self>,
        text: String,
        limit: i32,
    ) -> KithResult<SearchResults> {
        run_blocking("search", move || self.search(text, limit)).await
    }

    // ------------------------------------------------------------ follow-ups

    /// Adds a follow-up to an interaction. `due` is an ISO date.
    #[uniffi::method(name = "add_follow_up", default(due = None))]
    pub async fn ffi_add_follow_up(
        self: Arc<Self>,
        interaction_id: String,
        text: String,
        due: Option<String>,
    ) -> KithResult<FollowUp> {
        run_blocking("add_follow_up", move || {
            self.add_follow_up(interaction_id, text, due)
        })
        .await
    }

    /// Marks a follow-up done.
    #[uniffi::method(name = "complete_follow_up")]
    pub async fn ffi_complete_follow_up(
        self: Arc<Self>,
        interaction_id: String,
        follow_up_id: String,
    ) -> KithResult<FollowUp> {
        run_blocking("complete_follow_up", move || {
            self.complete_follow_up(interaction_id, follow_up_id)
        })
        .await
    }

    /// Marks a done follow-up open again.
    #[uniffi::method(name = "reopen_follow_up")]
    pub async fn ffi_reopen_follow_up(
        self: Arc<Self>,
        interaction_id: String,
        follow_up_id: String,
    ) -> KithResult<FollowUp> {
        run_blocking("reopen_follow_up", move || {
            self.reopen_follow_up(interaction_id, follow_up_id)
        })
        .await
    }

    /// Every open follow-up, soonest due first (undated ones last).
    #[uniffi::method(name = "open_follow_ups")]
    pub async fn ffi_open_follow_ups(self: Arc<Self>) -> KithResult<Vec<FollowUpItem>> {
        run_blocking("open_follow_ups", move || self.open_follow_ups()).await
    }

    /// Open follow-ups due on or before `date` (ISO `YYYY-MM-DD`).
    #[uniffi::method(name = "follow_ups_due_by")]
    pub async fn ffi_follow_ups_due_by(
        self: Arc<Self>,
        date: String,
    ) -> KithResult<Vec<FollowUpItem>> {
        run_blocking("follow_ups_due_by", move || self.follow_ups_due_by(date)).await
    }

    /// Open follow-ups due strictly before `today` (ISO `YYYY-MM-DD`).
    #[uniffi::method(name = "overdue_follow_ups")]
    pub async fn ffi_overdue_follow_ups(
        self: Arc<Self>,
        today: String,
    ) -> KithResult<Vec<FollowUpItem>> {
        run_blocking("overdue_follow_ups", move || self.overdue_follow_ups(today)).await
    }

    // ------------------------------------------------------------ projects and goals

    /// Adds a project or shared activity.
    #[uniffi::method(name = "add_project")]
    pub async fn ffi_add_project(self: Arc<Self>, project: NewProject) -> KithResult<Project> {
        run_blocking("add_project", move || self.add_project(project)).await
    }

    /// Changes some fields of a project.
    #[uniffi::method(name = "edit_project")]
    pub async fn ffi_edit_project(
        self: Arc<Self>,
        id: String,
        patch: ProjectPatch,
    ) -> KithResult<Project> {
        run_blocking("edit_project", move || self.edit_project(id, patch)).await
    }

    /// One project.
    #[uniffi::method(name = "get_project")]
    pub async fn ffi_get_project(self: Arc<Self>, id: String) -> KithResult<Project> {
        run_blocking("get_project", move || self.get_project(id)).await
    }

    /// Every project.
    #[uniffi::method(name = "list_projects")]
    pub async fn ffi_list_projects(self: Arc<Self>) -> KithResult<Vec<Project>> {
        run_blocking("list_projects", move || self.list_projects()).await
    }

    /// Adds a goal.
    #[uniffi::method(name = "add_goal")]
    pub async fn ffi_add_goal(self: Arc<Self>, goal: NewGoal) -> KithResult<Goal> {
        run_blocking("add_goal", move || self.add_goal(goal)).await
    }

    /// Changes some fields of a goal.
    #[uniffi::method(name = "edit_goal")]
    pub async fn ffi_edit_goal(self: Arc<Self>, id: String, patch: GoalPatch) -> KithResult<Goal> {
        run_blocking("edit_goal", move || self.edit_goal(id, patch)).await
    }

    /// One goal.
    #[uniffi::method(name = "get_goal")]
    pub async fn ffi_get_goal(self: Arc<Self>, id: String) -> KithResult<Goal> {
        run_blocking("get_goal", move || self.get_goal(id)).await
    }

    /// Every goal.
    #[uniffi::method(name = "list_goals")]
    pub async fn ffi_list_goals(self: Arc<Self>) -> KithResult<Vec<Goal>> {
        run_blocking("list_goals", move || self.list_goals()).await
    }

    // ------------------------------------------------------------ settings

    /// The current settings (defaults until changed).
    #[uniffi::method(name = "get_settings")]
    pub async fn ffi_get_settings(self: Arc<Self>) -> KithResult<Settings> {
        run_blocking("get_settings", move || self.get_settings()).await
    }

    /// Replaces the settings; returns them as stored (names trimmed).
    #[uniffi::method(name = "set_settings")]
    pub async fn ffi_set_settings(self: Arc<Self>, settings: Settings) -> KithResult<Settings> {
        run_blocking("set_settings", move || self.set_settings(settings)).await
    }

    // ------------------------------------------------------------ maintenance

    /// Rebuilds the query index from the documents (after a crash report or a
    /// damaged index). Runs on Kith's runtime: the caller awaits it without
    /// blocking its thread. Listeners hear nothing: the data is unchanged.
    #[uniffi::method(name = "reindex")]
    pub async fn ffi_reindex(self: Arc<Self>) -> KithResult<()> {
        self.reindex().await
    }

    /// Verifies the store without writing: every document's chunks against
    /// their checksums and every index table against a rebuild. Index rows
    /// that differ are what `reindex` repairs; damaged documents it cannot
    /// (restore them from a backup or another device).
    #[uniffi::method(name = "check_store")]
    pub async fn ffi_check_store(self: Arc<Self>) -> KithResult<StoreCheckReport> {
        self.check_store().await
    }

    // ------------------------------------------------------------ insights

    /// The headline findings and main figures of the network, computed for
    /// `now_ms` (UTC milliseconds; `None`: now). Days are counted in UTC.
    #[uniffi::method(name = "insights", default(now_ms = None))]
    pub async fn ffi_insights(self: Arc<Self>, now_ms: Option<i64>) -> KithResult<Insights> {
        run_blocking("insights", move || self.insights(now_ms)).await
    }

    /// The full report as JSON: `{"headlines": [...], "report": {...}}`, every
    /// metric tagged with its `state` (`no_data`, `not_enough_data`, `value`).
    #[uniffi::method(name = "insights_json", default(now_ms = None))]
    pub async fn ffi_insights_json(self: Arc<Self>, now_ms: Option<i64>) -> KithResult<String> {
        run_blocking("insights_json", move || self.insights_json(now_ms)).await
    }

    /// The report as one self-contained HTML page (no scripts, no external
    /// resources): show it in a web view or share it.
    #[uniffi::method(name = "insights_html", default(now_ms = None))]
    pub async fn ffi_insights_html(self: Arc<Self>, now_ms: Option<i64>) -> KithResult<String> {
        run_blocking("insights_html", move || self.insights_html(now_ms)).await
    }

    // ------------------------------------------------------------ meetings

    /// The meetings among `events` that ended in the 7 days before `now_ms`, with people, and
    /// not logged or dismissed on any device; most recent first.
    #[uniffi::method(name = "meetings_to_log")]
    pub async fn ffi_meetings_to_log(
        self: Arc<Self>,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<Vec<MeetingCandidate>> {
        run_blocking("meetings_to_log", move || {
            self.meetings_to_log(events, now_ms)
        })
        .await
    }

    /// Logs a meeting from `meetings_to_log` (creating the attendees `extra` asks for). Returns
    /// the interaction's id. The event is never suggested again, on any device.
    #[uniffi::method(name = "log_meeting")]
    pub async fn ffi_log_meeting(
        self: Arc<Self>,
        candidate: MeetingCandidate,
        extra: MeetingExtra,
    ) -> KithResult<String> {
        run_blocking("log_meeting", move || self.log_meeting(candidate, extra)).await
    }

    /// Dismisses a meeting: it is not suggested again, on any device.
    #[uniffi::method(name = "dismiss_meeting")]
    pub async fn ffi_dismiss_meeting(self: Arc<Self>, event: CalendarEvent) -> KithResult<()> {
        run_blocking("dismiss_meeting", move || self.dismiss_meeting(event)).await
    }

    /// The next meeting with people that ends after `now_ms`: schedule the "Log your meeting
    /// with …?" notification at `end_ms`. `None` when there is none.
    #[uniffi::method(name = "next_meeting_end")]
    pub async fn ffi_next_meeting_end(
        self: Arc<Self>,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<Option<NextMeeting>> {
        run_blocking("next_meeting_end", move || {
            self.next_meeting_end(events, now_ms)
        })
        .await
    }

    /// Of the meetings with people among `events` that ended in the 30 days before `now_ms`,
    /// how many were logged (and dismissed).
    #[uniffi::method(name = "meeting_log_share")]
    pub async fn ffi_meeting_log_share(
        self: Arc<Self>,
        events: Vec<CalendarEvent>,
        now_ms: i64,
    ) -> KithResult<MeetingShare> {
        run_blocking("meeting_log_share", move || {
            self.meeting_log_share(events, now_ms)
        })
        .await
    }

    // ------------------------------------------------------------ import, export, backup

    /// Imports the contacts of a vCard file (versions 2.1, 3.0 and 4.0).
    /// `dry_run` reports what would happen and writes nothing. A file that
    /// cannot be read at all fails with `InvalidInput("bytes")`; records that
    /// cannot be read are skipped and listed in `problems`.
    #[uniffi::method(name = "import_vcard")]
    pub async fn ffi_import_vcard(
        self: Arc<Self>,
        bytes: Vec<u8>,
        dry_run: bool,
    ) -> KithResult<ImportReport> {
        run_blocking("import_vcard", move || self.import_vcard(bytes, dry_run)).await
    }

    /// Imports LinkedIn's Connections.csv export; otherwise as `import_vcard`.
    #[uniffi::method(name = "import_linkedin_csv")]
    pub async fn ffi_import_linkedin_csv(
        self: Arc<Self>,
        bytes: Vec<u8>,
        dry_run: bool,
    ) -> KithResult<ImportReport> {
        run_blocking("import_linkedin_csv", move || {
            self.import_linkedin_csv(bytes, dry_run)
        })
        .await
    }

    /// Every live contact (not merged away) as a vCard 4.0 file.
    #[uniffi::method(name = "export_vcard")]
    pub async fn ffi_export_vcard(self: Arc<Self>) -> KithResult<String> {
        run_blocking("export_vcard", move || self.export_vcard()).await
    }

    /// Everything (settings, contacts, interactions, projects, goals) as a
    /// `kith-export` JSON file, ids kept.
    #[uniffi::method(name = "export_json")]
    pub async fn ffi_export_json(self: Arc<Self>) -> KithResult<String> {
        run_blocking("export_json", move || self.export_json()).await
    }

    /// Contacts as CSV (one row per contact, a header row first).
    #[uniffi::method(name = "export_contacts_csv")]
    pub async fn ffi_export_contacts_csv(self: Arc<Self>) -> KithResult<String> {
        run_blocking("export_contacts_csv", move || self.export_contacts_csv()).await
    }

    /// Interactions as CSV, participants and project by name.
    #[uniffi::method(name = "export_interactions_csv")]
    pub async fn ffi_export_interactions_csv(self: Arc<Self>) -> KithResult<String> {
        run_blocking("export_interactions_csv", move || {
            self.export_interactions_csv()
        })
        .await
    }

    /// The whole store, encrypted with `passphrase` (Argon2id, 64 MiB, then
    /// XChaCha20-Poly1305): save the bytes anywhere; `restore_backup` reads
    /// them back. With `include_keys` (the default) the device's key material
    /// (account secret, device key, certificate) goes in too, so a restored
    /// device is the same device in sync; without it the backup holds data
    /// only. Takes about a second (the key derivation is slow on purpose):
    /// call it off the UI thread.
    #[uniffi::method(name = "backup", default(include_keys = true))]
    pub async fn ffi_backup(
        self: Arc<Self>,
        passphrase: String,
        include_keys: bool,
    ) -> KithResult<Vec<u8>> {
        run_blocking("backup", move || self.backup(passphrase, include_keys)).await
    }

    // ------------------------------------------------------------ account

    /// Creates a new account with this device as its only member: this
    /// device's keys (saved through the key store), the membership log's
    /// genesis signed by the account's root key, and, when given, the relay
    /// to sync with. The returned `recovery_code` is shown once: the app
    /// must have the user write it down. Fails with `Conflict` when this
    /// device already belongs to an account.
    #[uniffi::method(name = "create_account", default(relay = None))]
    pub async fn ffi_create_account(
        self: Arc<Self>,
        device_name: String,
        relay: Option<String>,
    ) -> KithResult<AccountInfo> {
        run_blocking("create_account", move || {
            self.create_account(device_name, relay)
        })
        .await
    }

    /// This device's account, or nothing before `create_account` / `join`.
    #[uniffi::method(name = "account")]
    pub async fn ffi_account(self: Arc<Self>) -> KithResult<Option<AccountInfo>> {
        run_blocking("account", move || self.account()).await
    }

    /// Sets the relay to sync with (`kith://KEY@HOST:PORT`); takes effect at
    /// the next `sync_now` / `start_sync`.
    #[uniffi::method(name = "set_relay")]
    pub async fn ffi_set_relay(self: Arc<Self>, relay: String) -> KithResult<()> {
        run_blocking("set_relay", move || self.set_relay(relay)).await
    }

    /// Every device of the account this device knows of, oldest first.
    #[uniffi::method(name = "devices")]
    pub async fn ffi_devices(self: Arc<Self>) -> KithResult<Vec<Device>> {
        run_blocking("devices", move || self.devices()).await
    }

    /// Revokes another device of the account: a `Revoke` in the membership
    /// log, ordered by the relay, and a new key epoch sealed to the
    /// remaining devices, so it can neither sync nor read what is written
    /// from now on. `device_id` is the id from `devices()`.
    #[uniffi::method(name = "revoke")]
    pub async fn ffi_revoke(self: Arc<Self>, device_id: String) -> KithResult<()> {
        self.revoke(device_id).await
    }

    /// Wins the account back with the recovery code shown at
    /// `create_account` (docs/SECURITY.md §3.7), for when a stolen device
    /// revoked this one, or every device was lost and this store was
    /// restored from a backup (`restore_backup`) or is new. The members
    /// become exactly `keep_device_ids` (ids from `devices()`; empty: this
    /// device only), every other device is revoked and a new key epoch
    /// starts, carrying every older key this device holds.
    ///
    /// A device restored from a backup holds a lost device's keys: it gets
    /// new keys (saved through the key store once the relay accepted the
    /// recovery) and the restored ones only open the older epochs.
    /// `device_name` names this device when it gets new keys; `relay` sets
    /// the relay (otherwise the one set). Errors: `InvalidInput`
    /// (`recovery_code`: mistyped, or another account's; `keep_device_ids`),
    /// `Authentication` (the relay does not hold this account, or another
    /// relay answered), `Network` (unreachable; nothing changed). Call
    /// `sync_now()` afterwards.
    #[uniffi::method(name = "recover", default(relay = None, device_name = None))]
    pub async fn ffi_recover(
        self: Arc<Self>,
        recovery_code: String,
        keep_device_ids: Vec<String>,
        relay: Option<String>,
        device_name: Option<String>,
    ) -> KithResult<RecoveryReport> {
        self.recover(recovery_code, keep_device_ids, relay, device_name)
            .await
    }

    // ------------------------------------------------------------ sync

    /// One sync round with the relay: pull what other devices sent, push
    /// this device's changes. Runs on Kith's runtime; awaiting it never
    /// blocks the caller's thread. While `start_sync` runs, it asks the
    /// background session to push and pull now and returns what that cycle
    /// moved (`via_background_sync`), or `Network` when the background session
    /// is not connected (offline, retrying) or does not complete the cycle
    /// within the round timeout: a pull-to-refresh never reports success
    /// offline.
    #[uniffi::method(name = "sync_now")]
    pub async fn ffi_sync_now(self: Arc<Self>) -> KithResult<SyncReport> {
        self.sync_now().await
    }

    /// Starts background sync: a session with the relay owned by Kith's
    /// runtime that pushes every local write at once, receives other
    /// devices' changes live (`on_change`), and reconnects with backoff
    /// (`Retrying`). Returns at once; the state goes to the listeners.
    /// It stops when the store is released or closed, and starts again when a
    /// handle comes back to the foreground.
    #[uniffi::method(name = "start_sync")]
    pub async fn ffi_start_sync(self: Arc<Self>) -> KithResult<()> {
        run_blocking("start_sync", move || self.start_sync()).await
    }

    /// Stops background sync; returns whether it was running. Returns at
    /// once: the session closes on Kith's runtime and reports `Idle`.
    #[uniffi::method(name = "stop_sync")]
    pub fn ffi_stop_sync(&self) -> bool {
        self.stop_sync()
    }

    /// The sync status: state, last sync, last error, what is waiting. Read
    /// from memory (works while suspended; never waits for a sync step).
    #[uniffi::method(name = "sync_status")]
    pub async fn ffi_sync_status(self: Arc<Self>) -> KithResult<SyncStatus> {
        run_blocking("sync_status", move || self.sync_status()).await
    }

    /// Sets how long one sync round (and pairing, joining, revoking) may take
    /// before it fails with `Network` (1,000 to 600,000 ms; default 60,000).
    /// A foreground pull-to-refresh may want less.
    #[uniffi::method(name = "set_sync_timeout_ms")]
    pub fn ffi_set_sync_timeout_ms(&self, timeout_ms: i64) -> KithResult<()> {
        self.set_sync_timeout_ms(timeout_ms)
    }

    /// Sets the registration token for a relay run with a token policy
    /// (`kith-relay token create`): the next rounds register the account
    /// with it. `None` (or empty) clears it. Kept in memory only.
    #[uniffi::method(name = "set_registration_token")]
    pub fn ffi_set_registration_token(&self, token: Option<String>) -> KithResult<()> {
        self.set_registration_token(token)
    }
}

/// Restores an encrypted backup (made by `backup`) into `data_dir`, which must be
/// missing or empty, and returns the restored store open. The whole file is
/// decrypted and checked before anything is written (Argon2id: about a second, on
/// Kith's runtime). Key material in the backup goes to `key_store` when given (the
/// app's Keychain/Keystore; the returned `Kith` uses it), else to `keys.json` in
/// `data_dir` (owner-only); if the key store refuses it, the restored directory is
/// removed again and the error returned.
#[uniffi::export(name = "restore_backup", default(key_store = None))]
pub async fn ffi_restore_backup(
    data_dir: String,
    passphrase: String,
    backup: Vec<u8>,
    key_store: Option<Arc<dyn KithKeyStore>>,
) -> KithResult<Arc<Kith>> {
    run_blocking("restore_backup", move || {
        transfer::restore_backup(data_dir, passphrase, backup, key_store)
    })
    .await
}
