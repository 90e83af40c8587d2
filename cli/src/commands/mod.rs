//! Command handlers: each turns parsed arguments into kith-core calls and
//! hands the result to [`crate::render`] as a table, a sentence or JSON.
//!
//! Flow: [`run`] resolves the data directory, opens the existing store and
//! builds a [`Ctx`] (store, clock, output, JSON flag); the handler resolves
//! names to ids, parses times and vocabularies, and validates everything it
//! can *before* its store write, so a rejected command writes nothing (the
//! engine also writes nothing on its own errors). `init`, `restore` and
//! `demo` create their store instead. Errors become [`CliError`]s: input
//! problems exit with 2, store failures with 1.

mod contact;
pub(crate) mod insights;
mod interaction;
mod meetings;
mod misc;
mod query;
pub(crate) mod recover;
pub(crate) mod sync;
mod sync_progress;
mod transfer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kith_core::model::Contact;
use kith_core::{ContactId, OpError, Store, StoreError};

use crate::args::{Cli, Command};
use crate::error::{CliError, CliResult};
use crate::render::Out;
use crate::resolve::{self, Named};
use crate::when::Clock;

/// Everything a handler needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) out: Out,
    pub(crate) json: bool,
}

/// Runs the parsed command line. Output already produced is flushed even
/// when the command fails, so a failing demo step keeps its narration.
pub(crate) fn run(cli: Cli) -> CliResult<()> {
    let mut out = Out::stdout();
    let result = run_to(cli, &mut out);
    let flushed = out.flush();
    result?;
    Ok(flushed?)
}

fn run_to(cli: Cli, out: &mut Out) -> CliResult<()> {
    let clock = Clock::from_env()?;
    match cli.command {
        Command::Demo(args) => crate::demo::run(args, cli.data.as_deref(), &clock, cli.json, out),
        Command::Init(a) => {
            let dir = crate::datadir::from_env(cli.data.as_deref())?;
            let existed = store_file(&dir).exists();
            let store = Store::open_waiting(&dir, sync::LOCK_WAIT_MS).map_err(store_failure)?;
            store.close().map_err(store_failure)?;
            sync::init_identity(&dir, cli.json, out)?;
            sync::remember_registration_token(&dir, a.registration_token.as_deref())?;
            if cli.json {
                out.json(&serde_json::json!({ "data_dir": dir, "created": !existed }))?;
            } else if existed {
                out.line(format!("Kith store already present in {}", dir.display()))?;
            } else {
                out.line(format!("Created a Kith store in {}", dir.display()))?;
            }
            Ok(())
        }
        Command::Restore(a) => {
            let dir = crate::datadir::from_env(cli.data.as_deref())?;
            transfer::restore(&dir, a, cli.json, out)
        }
        Command::Pair(a) => sync::pair(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        Command::Join(a) => sync::join(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        Command::Recover(a) => recover::recover(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        Command::Devices(a) => sync::devices(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        Command::Sync(a) => sync::sync(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        Command::ServePeer(a) => sync::serve_peer(
            &crate::datadir::from_env(cli.data.as_deref())?,
            a,
            cli.json,
            out,
        ),
        command => {
            let dir = crate::datadir::from_env(cli.data.as_deref())?;
            let store = open_existing(&dir)?;
            let mut ctx = Ctx {
                store,
                clock,
                out: std::mem::replace(out, Out::sink()),
                json: cli.json,
            };
            let result = dispatch(&mut ctx, command);
            *out = std::mem::replace(&mut ctx.out, Out::sink());
            // Close even after an error: it releases the file lock promptly.
            let closed = ctx.store.close().map_err(store_failure);
            result?;
            closed
        }
    }
}

pub(crate) fn dispatch(ctx: &mut Ctx, command: Command) -> CliResult<()> {
    match command {
        Command::Contact(c) => contact::run(ctx, c),
        Command::Log(a) => interaction::log(ctx, a),
        Command::Interaction(c) => interaction::run(ctx, c),
        Command::Timeline(a) => query::timeline(ctx, a),
        Command::Search(a) => query::search(ctx, a),
        Command::Followups(a) => query::followups(ctx, a),
        Command::Duplicates => query::duplicates(ctx),
        Command::Meetings(a) => meetings::run(ctx, a),
        Command::Project(c) => misc::project(ctx, c),
        Command::Goal(c) => misc::goal(ctx, c),
        Command::Settings(c) => misc::settings(ctx, c),
        Command::Reindex => misc::reindex(ctx),
        Command::Check => misc::check(ctx),
        Command::Insights => insights::insights(ctx),
        Command::Import(c) => transfer::import(ctx, c),
        Command::Export(a) => transfer::export(ctx, a),
        Command::Backup(a) => transfer::backup(ctx, a),
        Command::Report(a) => insights::report(ctx, a),
        Command::Init(_)
        | Command::Demo(_)
        | Command::Restore(_)
        | Command::Pair(_)
        | Command::Join(_)
        | Command::Devices(_)
        | Command::Recover(_)
        | Command::Sync(_)
        | Command::ServePeer(_) => Ok(()),
    }
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join(kith_core::store::STORE_FILE)
}

/// Opens the store, refusing to create one implicitly (a typo in --data
/// should not silently start an empty network).
pub(crate) fn open_existing(dir: &Path) -> CliResult<Store> {
    if !store_file(dir).exists() {
        return Err(CliError::input(format!(
            "no Kith store in {} (run `kith init` first, or pass --data DIR)",
            dir.display()
        )));
    }
    Store::open_waiting(dir, sync::LOCK_WAIT_MS).map_err(store_failure)
}

/// A storage failure: not the input's fault.
pub(crate) fn store_failure(e: StoreError) -> CliError {
    CliError::Failure(anyhow::Error::new(e))
}

/// An operation error: input problems exit 2, storage problems 1.
pub(crate) fn op_error(e: OpError) -> CliError {
    match e {
        OpError::Store(s) => store_failure(s),
        other => CliError::input(other),
    }
}

/// Every contact plus lookups by id, loaded once per command.
#[derive(Debug)]
pub(crate) struct Contacts {
    pub(crate) all: Vec<Contact>,
    by_id: BTreeMap<ContactId, usize>,
}

impl Contacts {
    pub(crate) fn load(store: &Store) -> CliResult<Contacts> {
        let all = store.all_contacts().map_err(store_failure)?;
        let by_id = all.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        Ok(Contacts { all, by_id })
    }

    pub(crate) fn get(&self, id: ContactId) -> Option<&Contact> {
        self.by_id.get(&id).and_then(|i| self.all.get(*i))
    }

    /// The display name of a contact id (the id itself if unknown).
    pub(crate) fn name(&self, id: ContactId) -> String {
        self.get(id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    }

    pub(crate) fn names(&self, ids: impl IntoIterator<Item = ContactId>) -> Vec<String> {
        ids.into_iter().map(|id| self.name(id)).collect()
    }

    /// Resolves a contact given by id or name. Merged-away contacts are never
    /// matched by name; archived ones only when no active contact matches.
    pub(crate) fn resolve(&self, given: &str) -> CliResult<ContactId> {
        self.resolve_opt(given)?
            .ok_or_else(|| CliError::input(format!("unknown contact '{given}'")))
    }

    /// Like [`Contacts::resolve`], but `Ok(None)` when nothing matches.
    pub(crate) fn resolve_opt(&self, given: &str) -> CliResult<Option<ContactId>> {
        if let Ok(id) = given.trim().parse::<ContactId>()
            && let Some(c) = self.get(id)
        {
            return Ok(Some(c.id));
        }
        for archived in [false, true] {
            let candidates: Vec<Named<'_, ContactId>> = self
                .all
                .iter()
                .filter(|c| c.merged_into.is_none() && c.archived == archived)
                .map(|c| Named {
                    id: c.id.to_string(),
                    name: &c.name,
                    detail: c.organisation.as_deref(),
                    item: c.id,
                })
                .collect();
            match resolve::resolve("contact", given, &candidates) {
                Ok(id) => return Ok(Some(id)),
                Err(resolve::ResolveError::Unknown { .. }) => {}
                Err(e) => return Err(CliError::input(e)),
            }
        }
        Ok(None)
    }

    /// A merged-away contact by id or by name (for `contact unmerge`).
    pub(crate) fn resolve_merged(&self, given: &str) -> CliResult<ContactId> {
        if let Ok(id) = given.trim().parse::<ContactId>()
            && let Some(c) = self.get(id)
        {
            return Ok(c.id);
        }
        let candidates: Vec<Named<'_, ContactId>> = self
            .all
            .iter()
            .filter(|c| c.merged_into.is_some())
            .map(|c| Named {
                id: c.id.to_string(),
                name: &c.name,
                detail: c.organisation.as_deref(),
                item: c.id,
            })
            .collect();
        resolve::resolve("merged contact", given, &candidates).map_err(CliError::input)
    }

    /// Like [`Contacts::resolve`], but an id of a merged-away contact resolves
    /// to the contact it was merged into (new history goes to the survivor).
    pub(crate) fn resolve_live(&self, given: &str) -> CliResult<ContactId> {
        self.resolve(given).map(|id| self.follow_merges(id))
    }

    /// Follows `merged_into` links (bounded, in case of a cycle from a sync race).
    fn follow_merges(&self, mut id: ContactId) -> ContactId {
        for _ in 0..16 {
            match self.get(id).and_then(|c| c.merged_into) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    }

    /// Exact (normalised) name or id matches only, for `--create-missing`,
    /// where a prefix match would attach the interaction to the wrong person.
    pub(crate) fn resolve_exact(&self, given: &str) -> CliResult<Option<ContactId>> {
        if let Ok(id) = given.trim().parse::<ContactId>()
            && self.get(id).is_some()
        {
            return Ok(Some(self.follow_merges(id)));
        }
        let key = resolve::normalise(given);
        let matches: Vec<&Contact> = self
            .all
            .iter()
            .filter(|c| c.merged_into.is_none() && resolve::normalise(&c.name) == key)
            .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one.id)),
            _ => {
                let active: Vec<&&Contact> = matches.iter().filter(|c| !c.archived).collect();
                if let [one] = active.as_slice() {
                    return Ok(Some(one.id));
                }
                // Reuse the ambiguity message of the general resolver.
                self.resolve(given).map(Some)
            }
        }
    }
}

/// Parses a closed vocabulary value (kind, circle, ...) with the model's message.
pub(crate) fn parse_vocab<T>(s: &str) -> CliResult<T>
where
    T: std::str::FromStr<Err = kith_core::model::UnknownVariant>,
{
    s.parse::<T>().map_err(CliError::from)
}

/// Parses a vocabulary value that may be absent.
pub(crate) fn parse_vocab_opt<T>(s: Option<&str>) -> CliResult<Option<T>>
where
    T: std::str::FromStr<Err = kith_core::model::UnknownVariant>,
{
    s.map(parse_vocab).transpose()
}

/// `Some(text)` -> set, `Some("")` / `Some("none")` -> clear, `None` -> leave.
pub(crate) fn clearable(s: Option<String>) -> Option<Option<String>> {
    s.map(|v| {
        let t = v.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("none") {
            None
        } else {
            Some(t.to_string())
        }
    })
}
