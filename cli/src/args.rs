//! The command-line grammar (clap derive): every command, flag and help text.
//!
//! Parsing only: values stay strings where their meaning needs the store or
//! the clock (contact names, times, dates), and are resolved by the command
//! handlers in [`crate::commands`]. Closed vocabularies (kind, circle, ...)
//! are parsed there too, with the model's own `FromStr`, so the error message
//! lists the accepted values in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// kith: a local-first log of your professional network.
#[derive(Debug, Parser)]
#[command(name = "kith", version, about, long_about = None, max_term_width = 100)]
pub(crate) struct Cli {
    /// Data directory (default: $KITH_HOME, else the platform data directory + /kith).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,

    /// Print machine-readable JSON instead of tables (shapes in docs/CLI.md).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the store in the data directory (safe to run again).
    Init(crate::commands::sync::InitArgs),
    /// Add, edit, show, list, archive and merge contacts.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Log an interaction: who, what kind, when, notes, what was exchanged, follow-ups.
    Log(LogArgs),
    /// Show, edit, delete or undelete a logged interaction.
    #[command(subcommand)]
    Interaction(InteractionCmd),
    /// Interactions, newest first: all of them, or those with one contact.
    Timeline(TimelineArgs),
    /// Prefix search over names, organisations, summaries and notes.
    Search(SearchArgs),
    /// Open follow-ups by due date; complete or reopen one.
    Followups(FollowupsArgs),
    /// Likely duplicate contacts (same email, same phone, or same name).
    Duplicates,
    /// Meetings to log from calendar files (.ics): list them, log one, or dismiss one.
    Meetings(MeetingsArgs),
    /// Shared projects and activities.
    #[command(subcommand)]
    Project(ProjectCmd),
    /// Goals that strategic networking works toward.
    #[command(subcommand)]
    Goal(GoalCmd),
    /// Show or change settings.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Rebuild the query index from the document.
    Reindex,
    /// Verify the store (document checksums, index against the documents)
    /// without writing; says what `reindex` would repair.
    Check,
    /// The shape of the network: headline findings (all numbers with --json).
    Insights,
    /// Write the insights as one self-contained HTML page.
    Report(ReportArgs),
    /// Build a realistic sample network and walk the main flows.
    Demo(DemoArgs),
    /// Import contacts from vCard files or LinkedIn's Connections.csv.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Export contacts (vCard, CSV), interactions (CSV) or everything (JSON).
    Export(ExportArgs),
    /// Write the whole store to one passphrase-encrypted file.
    Backup(BackupArgs),
    /// Rebuild a store from a backup file (into an empty data directory).
    Restore(RestoreArgs),
    /// Invite a new device into this account: prints a one-time token and QR code.
    Pair(crate::commands::sync::PairArgs),
    /// Join an account with a token from `kith pair` (via its relay, or --peer ADDR).
    Join(crate::commands::sync::JoinArgs),
    /// This account's devices (name, id, added, last seen); `revoke ID` removes one.
    Devices(crate::commands::sync::DevicesArgs),
    /// Win the account back with the recovery code from `kith init`: keeps
    /// this device (or the --keep devices), revokes every other, new keys.
    Recover(crate::commands::recover::RecoverArgs),
    /// Sync through the relay (one round, or --watch), or directly with --peer ADDR.
    Sync(crate::commands::sync::SyncArgs),
    /// Serve direct sync to this account's other devices on the LAN.
    ServePeer(crate::commands::sync::ServePeerArgs),
}

/// Options shared by every import source.
#[derive(Debug, Args)]
pub(crate) struct ImportOptions {
    /// Show what would be imported without writing anything.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Also create records that look like existing contacts (by default they
    /// are listed with a suggested merge and left out).
    #[arg(long)]
    pub(crate) create_duplicates: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportCmd {
    /// vCard 2.1, 3.0 or 4.0 files (Apple, Google, Outlook, Android, ...).
    Vcard {
        /// The .vcf files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// A `kith export json` file: every record, ids kept (loading it twice changes nothing).
    Json {
        /// The export file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Show what the file holds without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// LinkedIn's Connections.csv (from "Get a copy of your data").
    Linkedin {
        /// The Connections.csv file.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        #[command(flatten)]
        options: ImportOptions,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// vcard (contacts, vCard 4.0), csv (contacts, or interactions with
    /// --interactions), json (everything, lossless, versioned).
    #[arg(value_parser = ["vcard", "csv", "json"])]
    pub(crate) format: String,
    /// With csv: export interactions instead of contacts.
    #[arg(long)]
    pub(crate) interactions: bool,
    /// Write to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) out: Option<std::path::PathBuf>,
}

/// Argon2id cost of a backup's key derivation.
#[derive(Debug, Args)]
pub(crate) struct KdfArgs {
    /// Memory of the key derivation in KiB (default 65536 = 64 MiB).
    #[arg(long, default_value_t = 64 * 1024, value_name = "KIB")]
    pub(crate) kdf_memory_kib: u32,
    /// Passes of the key derivation.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) kdf_iterations: u32,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The backup file to write (must not exist).
    #[arg(value_name = "FILE")]
    pub(crate) file: std::path::PathBuf,
    /// Leave this device's keys (account secret, device key) out of the
    /// backup: the file then restores the data but not the device's identity.
    #[arg(long)]
    pub(crate) no_keys: bool,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    #[arg(value_name = "FILE")]
    pub(crate) file: std::path::PathBuf,
}

/// Contact fields shared by `contact add` and `contact edit`.
#[derive(Debug, Args, Default)]
pub(crate) struct ContactFields {
    /// Organisation.
    #[arg(long, visible_alias = "organisation", value_name = "ORG")]
    pub(crate) org: Option<String>,
    /// Role or job title.
    #[arg(long)]
    pub(crate) role: Option<String>,
    /// Discipline (medicine, nursing, finance, ...).
    #[arg(long)]
    pub(crate) discipline: Option<String>,
    /// Seniority relative to me: senior, peer, junior, unknown.
    #[arg(long)]
    pub(crate) seniority: Option<String>,
    /// Inside my organisation.
    #[arg(long, conflicts_with = "outside")]
    pub(crate) inside: bool,
    /// Outside my organisation.
    #[arg(long)]
    pub(crate) outside: bool,
    /// Circle (operational, personal, strategic); repeatable.
    #[arg(long = "circle", value_name = "CIRCLE")]
    pub(crate) circles: Vec<String>,
    /// Tag; repeatable.
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Email address; repeatable.
    #[arg(long = "email", value_name = "EMAIL")]
    pub(crate) emails: Vec<String>,
    /// Phone number; repeatable.
    #[arg(long = "phone", value_name = "PHONE")]
    pub(crate) phones: Vec<String>,
    /// How we met.
    #[arg(long, value_name = "TEXT")]
    pub(crate) how_we_met: Option<String>,
    /// Notes about the contact.
    #[arg(long, value_name = "TEXT")]
    pub(crate) notes: Option<String>,
    /// Keep-in-touch cadence in days.
    #[arg(long = "cadence", value_name = "DAYS")]
    pub(crate) cadence_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContactCmd {
    /// Add a contact.
    Add {
        /// Display name.
        name: String,
        #[command(flatten)]
        fields: ContactFields,
    },
    /// Change a contact's fields (circles, tags, emails and phones given here are added).
    Edit {
        /// Contact id or name.
        contact: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        fields: ContactFields,
        /// Remove a circle; repeatable.
        #[arg(long = "remove-circle", value_name = "CIRCLE")]
        remove_circles: Vec<String>,
        /// Remove a tag; repeatable.
        #[arg(long = "remove-tag", value_name = "TAG")]
        remove_tags: Vec<String>,
        /// Remove an email address; repeatable.
        #[arg(long = "remove-email", value_name = "EMAIL")]
        remove_emails: Vec<String>,
        /// Remove a phone number; repeatable.
        #[arg(long = "remove-phone", value_name = "PHONE")]
        remove_phones: Vec<String>,
    },
    /// Show one contact with its stats and recent interactions.
    Show {
        /// Contact id or name.
        contact: String,
    },
    /// List contacts.
    List {
        /// Include archived and merged contacts.
        #[arg(long)]
        all: bool,
        /// Sort by name or by most recent interaction.
        #[arg(long, default_value = "name", value_parser = ["name", "recent"])]
        sort: String,
        /// Show at most this many (default 200 in a table, 10000 with --json).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Archive a contact (or bring it back with --undo).
    Archive {
        /// Contact id or name.
        contact: String,
        /// Unarchive instead.
        #[arg(long)]
        undo: bool,
    },
    /// Merge a duplicate into another contact: every reference follows the kept one.
    Merge {
        /// The duplicate (id or name); it is hidden with merged_into set.
        duplicate: String,
        /// The contact to keep (id or name).
        #[arg(long)]
        into: String,
    },
    /// Undo a merge: the duplicate is live again, with its own fields and history.
    Unmerge {
        /// The merged duplicate (id, or the name it had).
        contact: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// One-line summary of what happened.
    pub(crate) summary: String,
    /// Participant (contact id or name); repeatable, at least one.
    #[arg(long = "with", value_name = "CONTACT", required = true)]
    pub(crate) with: Vec<String>,
    /// meeting, call, message, email, event, meal, project_work, other.
    #[arg(long, default_value = "meeting")]
    pub(crate) kind: String,
    /// When it happened (default now): RFC 3339, "YYYY-MM-DD HH:MM", YYYY-MM-DD, today, yesterday, -2h, -3d.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub(crate) at: Option<String>,
    /// Notes (a few lines).
    #[arg(long, value_name = "TEXT")]
    pub(crate) notes: Option<String>,
    /// What I gave: support, feedback, insight, resources, information (optionally WHAT:CONTACT); repeatable.
    #[arg(long, value_name = "WHAT")]
    pub(crate) gave: Vec<String>,
    /// What I received (same forms as --gave); repeatable.
    #[arg(long, value_name = "WHAT")]
    pub(crate) got: Vec<String>,
    /// Who started it: me, them, mutual, unknown.
    #[arg(long, default_value = "unknown")]
    pub(crate) initiator: String,
    /// The project it belongs to (id or name).
    #[arg(long, value_name = "PROJECT")]
    pub(crate) project: Option<String>,
    /// A follow-up to do; repeatable (each takes the next --due, if any).
    #[arg(long = "follow-up", value_name = "TEXT")]
    pub(crate) follow_ups: Vec<String>,
    /// Due date of the follow-up(s): YYYY-MM-DD, today, tomorrow, +7d, friday.
    #[arg(long = "due", value_name = "DATE")]
    pub(crate) dues: Vec<String>,
    /// Create contacts for names that match nobody.
    #[arg(long)]
    pub(crate) create_missing: bool,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum InteractionCmd {
    /// Show one interaction in full.
    Show {
        /// Interaction id.
        id: String,
    },
    /// Change an interaction; participants given here are added.
    Edit {
        /// Interaction id.
        id: String,
        /// New summary.
        #[arg(long)]
        summary: Option<String>,
        /// New notes (also resolves a notes conflict).
        #[arg(long, value_name = "TEXT")]
        notes: Option<String>,
        /// New kind.
        #[arg(long)]
        kind: Option<String>,
        /// New time (TIME forms as for `kith log --at`).
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        at: Option<String>,
        /// New initiator.
        #[arg(long)]
        initiator: Option<String>,
        /// Set the project (id or name).
        #[arg(long, value_name = "PROJECT", conflicts_with = "no_project")]
        project: Option<String>,
        /// Clear the project.
        #[arg(long)]
        no_project: bool,
        /// Add a participant; repeatable.
        #[arg(long = "with", value_name = "CONTACT")]
        with: Vec<String>,
        /// Remove a participant; repeatable.
        #[arg(long = "without", value_name = "CONTACT")]
        without: Vec<String>,
        /// Add a follow-up.
        #[arg(long = "follow-up", value_name = "TEXT")]
        follow_up: Option<String>,
        /// Due date of the added follow-up.
        #[arg(long = "due", value_name = "DATE", requires = "follow_up")]
        due: Option<String>,
    },
    /// Delete an interaction (a tombstone: undelete brings it back).
    Delete {
        /// Interaction id.
        id: String,
    },
    /// Bring back a deleted interaction.
    Undelete {
        /// Interaction id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TimelineArgs {
    /// Only interactions with this contact (id or name).
    pub(crate) contact: Option<String>,
    /// Show at most this many.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    /// Include deleted interactions.
    #[arg(long)]
    pub(crate) deleted: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// Words to find (prefixes match: "car" finds "Carla").
    pub(crate) text: String,
    /// Show at most this many of each kind of result.
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
}

#[derive(Debug, Args)]
pub(crate) struct FollowupsArgs {
    /// Show at most this many.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Only follow-ups whose due date has passed.
    #[arg(long, conflicts_with_all = ["done", "reopen", "due_by"])]
    pub(crate) overdue: bool,
    /// Only follow-ups due on or before DATE (today, friday, +7d, YYYY-MM-DD).
    #[arg(long, value_name = "DATE", conflicts_with_all = ["done", "reopen"])]
    pub(crate) due_by: Option<String>,
    /// Mark a follow-up done (its id).
    #[arg(long, value_name = "ID", conflicts_with = "reopen")]
    pub(crate) done: Option<String>,
    /// Reopen a completed follow-up (its id).
    #[arg(long, value_name = "ID")]
    pub(crate) reopen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProjectCmd {
    /// Add a project.
    Add {
        /// Project name.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// active, paused, done.
        #[arg(long, default_value = "active")]
        status: String,
    },
    /// Change a project.
    Edit {
        /// Project id or name.
        project: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// active, paused, done.
        #[arg(long)]
        status: Option<String>,
    },
    /// List projects.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GoalCmd {
    /// Add a goal.
    Add {
        /// Goal title.
        title: String,
        /// 1 (highest) to 3.
        #[arg(long, default_value_t = 2)]
        priority: u8,
        /// active, achieved, dropped.
        #[arg(long, default_value = "active")]
        status: String,
        /// A contact who can help (id or name); repeatable.
        #[arg(long = "contact", value_name = "CONTACT")]
        contacts: Vec<String>,
    },
    /// Change a goal.
    Edit {
        /// Goal id or title.
        goal: String,
        #[arg(long)]
        title: Option<String>,
        /// 1 (highest) to 3.
        #[arg(long)]
        priority: Option<u8>,
        /// active, achieved, dropped.
        #[arg(long)]
        status: Option<String>,
        /// Link a contact; repeatable.
        #[arg(long = "contact", value_name = "CONTACT")]
        contacts: Vec<String>,
        /// Unlink a contact; repeatable.
        #[arg(long = "remove-contact", value_name = "CONTACT")]
        remove_contacts: Vec<String>,
    },
    /// List goals.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsCmd {
    /// Show every setting.
    Show,
    /// Change a setting: my-organisation, my-discipline, cadence.CIRCLE, strategic-target, core-size.
    Set {
        /// Setting name.
        key: String,
        /// New value ("" or "none" clears an optional setting).
        value: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The HTML file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    pub(crate) html: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Number of contacts in the sample network.
    #[arg(long, default_value_t = 60)]
    pub(crate) contacts: usize,
    /// Number of interactions in the sample network.
    #[arg(long, default_value_t = 400)]
    pub(crate) interactions: usize,
    /// Seed of the sample generator (same seed, same network).
    #[arg(long, default_value_t = 7)]
    pub(crate) seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn grammar_is_consistent() {
        Cli::command().debug_assert();
    }
}

/// `kith meetings --ics FILE... [--since 7d] [log N|UID ... | dismiss N|UID]`.
#[derive(Debug, Args)]
pub(crate) struct MeetingsArgs {
    /// An iCalendar file (export of Google Calendar, Outlook, Apple Calendar, Thunderbird, khal); repeatable.
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) ics: Vec<std::path::PathBuf>,
    /// How far back meetings may have ended: 7d, 36h, 2w.
    #[arg(long, default_value = "7d", global = true)]
    pub(crate) since: String,
    /// Zone of floating times and all-day events (default: $TZ, else UTC).
    #[arg(long, value_name = "ZONE", global = true)]
    pub(crate) tz: Option<String>,
    #[command(subcommand)]
    pub(crate) action: Option<MeetingsAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum MeetingsAction {
    /// Log one meeting (its number in the list, or its UID) with the matched attendees.
    Log(Box<MeetingsLogArgs>),
    /// Do not suggest this meeting again (on any device).
    Dismiss {
        /// The meeting's number in the list, or its UID.
        which: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct MeetingsLogArgs {
    /// The meeting's number in the list, or its UID (UID@RECURRENCE-ID for one occurrence).
    pub(crate) which: String,
    /// Notes (a few lines).
    #[arg(long, value_name = "TEXT")]
    pub(crate) notes: Option<String>,
    /// Summary instead of the event's title.
    #[arg(long)]
    pub(crate) summary: Option<String>,
    /// Kind instead of the suggested one: meeting, call, meal, ...
    #[arg(long)]
    pub(crate) kind: Option<String>,
    /// What I gave: support, feedback, insight, resources, information; repeatable.
    #[arg(long, value_name = "WHAT")]
    pub(crate) gave: Vec<String>,
    /// What I received (same forms as --gave); repeatable.
    #[arg(long, value_name = "WHAT")]
    pub(crate) got: Vec<String>,
    /// Who started it: me, them, mutual, unknown.
    #[arg(long)]
    pub(crate) initiator: Option<String>,
    /// The project it belongs to (id or name).
    #[arg(long, value_name = "PROJECT")]
    pub(crate) project: Option<String>,
    /// A follow-up to do; repeatable (each takes the next --due, if any).
    #[arg(long = "follow-up", value_name = "TEXT")]
    pub(crate) follow_ups: Vec<String>,
    /// Due date of the follow-up(s): YYYY-MM-DD, today, tomorrow, +7d, friday.
    #[arg(long = "due", value_name = "DATE")]
    pub(crate) dues: Vec<String>,
    /// Create this unmatched attendee as a contact (its e-mail or name); repeatable.
    #[arg(long, value_name = "ATTENDEE")]
    pub(crate) create: Vec<String>,
    /// Create every unmatched attendee as a contact.
    #[arg(long)]
    pub(crate) create_missing: bool,
}
