//! Schema v1: the one place that maps model structs to Automerge and back.
//!
//! A reader sees the whole document layout here (docs/SCHEMA.md explains the
//! merge semantics of every field):
//!
//! ```text
//! main document                      log/YYYYqN documents
//! ROOT                               ROOT
//!  schema: int (1)                    schema: int (1)
//!  settings: map                      interactions: map id -> interaction
//!  contacts: map id -> contact
//!  projects: map id -> project
//!  goals:    map id -> goal
//! ```
//!
//! Records are maps keyed by ULID strings. Sets are maps `member -> true`
//! (add-wins); emails and phones are maps `value -> label`; optional scalars are
//! absent keys when `None`. Contact notes are collaborative Text; interaction
//! notes are plain strings whose concurrent values surface as
//! `notes_conflicts`. Writers only touch fields that changed, so two devices
//! editing different fields of one record both win.
//!
//! The root containers are created by a *deterministic* first change (fixed
//! actor, fixed time), identical on every device, so two devices that start
//! offline share the same `contacts` map instead of two conflicting ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use automerge::iter::MapRangeItem;
use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, ScalarValueRef,
    Value, ValueRef, hydrate,
};
use chrono::NaiveDate;

use crate::error::SchemaError;
use crate::ids::{ExchangeId, FollowUpId};
use crate::model::{
    Circle, Contact, ContactPoint, Direction, EventRef, Exchange, ExchangeWhat, FollowUp, Goal,
    GoalStatus, Initiator, Interaction, InteractionKind, PartialDate, Project, ProjectStatus,
    Seniority, Settings,
};

/// The schema version this code writes and reads.
pub(crate) const SCHEMA_VERSION: u64 = 1;

/// Keys of the root containers.
pub(crate) const CONTACTS: &str = "contacts";
pub(crate) const PROJECTS: &str = "projects";
pub(crate) const GOALS: &str = "goals";
pub(crate) const SETTINGS: &str = "settings";
pub(crate) const INTERACTIONS: &str = "interactions";
const SCHEMA: &str = "schema";

/// The actor of the deterministic first change of every document.
const GENESIS_ACTOR: [u8; 16] = [0; 16];

type R<T> = Result<T, SchemaError>;

fn am(path: &str) -> impl FnOnce(automerge::AutomergeError) -> SchemaError + '_ {
    move |source| SchemaError::Automerge {
        path: path.to_string(),
        source: crate::error::BackendError::new(source),
    }
}

fn bad(path: &str, detail: impl Into<String>) -> SchemaError {
    SchemaError::BadField {
        path: path.to_string(),
        detail: detail.into(),
    }
}

/// Which kind of document: the main one or an interaction-log partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    Main,
    Log,
}

/// A new document holding only the deterministic genesis change, then set to `actor`.
pub(crate) fn new_document(kind: DocKind, actor: &ActorId) -> R<AutoCommit> {
    let mut doc = AutoCommit::new();
    doc.set_actor(ActorId::from(&GENESIS_ACTOR[..]));
    doc.put(ROOT, SCHEMA, SCHEMA_VERSION).map_err(am(SCHEMA))?;
    let containers: &[&str] = match kind {
        DocKind::Main => &[SETTINGS, CONTACTS, PROJECTS, GOALS],
        DocKind::Log => &[INTERACTIONS],
    };
    for key in containers {
        doc.put_object(ROOT, *key, ObjType::Map).map_err(am(key))?;
    }
    doc.commit_with(CommitOptions::default().with_time(0));
    doc.set_actor(actor.clone());
    Ok(doc)
}

/// Checks the document's schema version; refuses a newer one.
pub(crate) fn check_schema(doc: &AutoCommit, doc_name: &str) -> R<()> {
    let found = match doc.get(ROOT, SCHEMA).map_err(am(SCHEMA))? {
        Some((Value::Scalar(s), _)) => s
            .as_u64()
            .or_else(|| s.as_i64().and_then(|v| u64::try_from(v).ok()))
            .ok_or_else(|| bad(SCHEMA, "not an integer"))?,
        Some(_) => return Err(bad(SCHEMA, "not an integer")),
        None => return Err(bad(SCHEMA, "missing")),
    };
    if found > SCHEMA_VERSION {
        return Err(SchemaError::NewerSchema {
            doc: doc_name.to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// The object id of a root container.
pub(crate) fn container(doc: &AutoCommit, key: &'static str) -> R<ObjId> {
    match doc.get(ROOT, key).map_err(am(key))? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        Some(_) => Err(bad(key, "not a map")),
        None => Err(bad(key, "missing")),
    }
}

/// The object id of the record `id` in container `key`, if it exists.
pub(crate) fn record(doc: &AutoCommit, key: &'static str, id: &str) -> R<Option<ObjId>> {
    let parent = container(doc, key)?;
    match doc.get(&parent, id).map_err(am(key))? {
        Some((Value::Object(ObjType::Map), obj)) => Ok(Some(obj)),
        Some(_) => Err(bad(&format!("{key}/{id}"), "not a map")),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------- readers

fn get_scalar(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<ScalarValue>> {
    match doc.get(obj, key).map_err(am(key))? {
        Some((Value::Scalar(s), _)) => Ok(Some(s.into_owned())),
        Some((Value::Object(_), _)) => Err(bad(key, "expected a scalar, found an object")),
        None => Ok(None),
    }
}

fn get_str(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<String>> {
    match get_scalar(doc, obj, key)? {
        Some(ScalarValue::Str(s)) => Ok(Some(s.to_string())),
        Some(ScalarValue::Null) | None => Ok(None),
        Some(other) => Err(bad(key, format!("expected a string, found {other}"))),
    }
}

fn get_int(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<i64>> {
    match get_scalar(doc, obj, key)? {
        Some(ScalarValue::Int(v)) | Some(ScalarValue::Timestamp(v)) => Ok(Some(v)),
        Some(ScalarValue::Uint(v)) => Ok(Some(
            i64::try_from(v).map_err(|_| bad(key, "integer out of range"))?,
        )),
        Some(ScalarValue::Null) | None => Ok(None),
        Some(other) => Err(bad(key, format!("expected an integer, found {other}"))),
    }
}

fn get_f64(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<f64>> {
    match get_scalar(doc, obj, key)? {
        Some(ScalarValue::F64(v)) => Ok(Some(v)),
        #[allow(clippy::cast_precision_loss)]
        Some(ScalarValue::Int(v)) => Ok(Some(v as f64)),
        Some(ScalarValue::Null) | None => Ok(None),
        Some(other) => Err(bad(key, format!("expected a number, found {other}"))),
    }
}

fn get_bool(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<bool>> {
    match get_scalar(doc, obj, key)? {
        Some(ScalarValue::Boolean(v)) => Ok(Some(v)),
        Some(ScalarValue::Null) | None => Ok(None),
        Some(other) => Err(bad(key, format!("expected a boolean, found {other}"))),
    }
}

fn get_parsed<T: FromStr>(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match get_str(doc, obj, key)? {
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: T::Err| bad(key, e.to_string())),
        None => Ok(None),
    }
}

fn get_i64_req(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<i64> {
    Ok(get_int(doc, obj, key)?.unwrap_or(0))
}

fn get_map(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Option<ObjId>> {
    match doc.get(obj, key).map_err(am(key))? {
        Some((Value::Object(ObjType::Map), id)) => Ok(Some(id)),
        Some(_) => Err(bad(key, "expected a map")),
        None => Ok(None),
    }
}

/// A set stored as a map `member -> true`.
fn get_set<T: FromStr + Ord>(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<BTreeSet<T>>
where
    T::Err: std::fmt::Display,
{
    let mut out = BTreeSet::new();
    if let Some(map) = get_map(doc, obj, key)? {
        for k in doc.keys(&map) {
            out.insert(
                k.parse()
                    .map_err(|e: T::Err| bad(&format!("{key}/{k}"), e.to_string()))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
/// Contact points stored as a map `value -> label`, read back sorted by value.
fn get_points(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<Vec<ContactPoint>> {
    let mut out = Vec::new();
    if let Some(map) = get_map(doc, obj, key)? {
        for k in doc.keys(&map).collect::<Vec<_>>() {
            let label = get_str(doc, &map, &k)?.unwrap_or_default();
            out.push(ContactPoint { value: k, label });
        }
    }
    Ok(out)
}

#[cfg(test)]
fn get_text(doc: &AutoCommit, obj: &ObjId, key: &str) -> R<String> {
    match doc.get(obj, key).map_err(am(key))? {
        Some((Value::Object(ObjType::Text), id)) => doc.text(&id).map_err(am(key)),
        Some((Value::Scalar(s), _)) => Ok(s.as_str().unwrap_or_default().to_string()),
        Some(_) => Err(bad(key, "expected text")),
        None => Ok(String::new()),
    }
}

fn parse_id<T: FromStr>(s: &str, path: &str) -> R<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| bad(path, e.to_string()))
}

fn u32_of(v: Option<i64>, key: &str) -> R<Option<u32>> {
    v.map(|v| u32::try_from(v).map_err(|_| bad(key, format!("{v} is out of range"))))
        .transpose()
}

fn format_partial_date(d: &PartialDate) -> String {
    match d.year {
        Some(y) => format!("{y:04}-{:02}-{:02}", d.month, d.day),
        None => format!("--{:02}-{:02}", d.month, d.day),
    }
}

fn parse_partial_date(s: &str, key: &str) -> R<PartialDate> {
    let err = || bad(key, format!("'{s}' is not YYYY-MM-DD or --MM-DD"));
    let (year, rest) = if let Some(rest) = s.strip_prefix("--") {
        (None, rest)
    } else {
        let (y, rest) = s.split_once('-').ok_or_else(err)?;
        (Some(y.parse::<i32>().map_err(|_| err())?), rest)
    };
    let (m, d) = rest.split_once('-').ok_or_else(err)?;
    let month: u8 = m.parse().map_err(|_| err())?;
    let day: u8 = d.parse().map_err(|_| err())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(err());
    }
    Ok(PartialDate { year, month, day })
}

/// Reads the contact stored at `obj` under id `id` (one walk over its map).
pub(crate) fn read_contact(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Contact> {
    let f = Fields::read(doc, obj);
    Ok(Contact {
        id: parse_id(id, "contacts")?,
        name: f.str("name")?.unwrap_or_default(),
        given_name: f.str("given_name")?,
        family_name: f.str("family_name")?,
        organisation: f.str("organisation")?,
        role: f.str("role")?,
        discipline: f.str("discipline")?,
        seniority: f.parsed("seniority")?.unwrap_or(Seniority::Unknown),
        inside_org: f.bool("inside_org")?,
        circles: f.set("circles")?,
        tags: f.set("tags")?,
        emails: f.points("emails")?,
        phones: f.points("phones")?,
        urls: f.set("urls")?,
        how_we_met: f.str("how_we_met")?,
        first_met: f.parsed::<NaiveDate>("first_met")?,
        birthday: f
            .str("birthday")?
            .map(|s| parse_partial_date(&s, "birthday"))
            .transpose()?,
        notes: f.text("notes")?,
        cadence_days: u32_of(f.int("cadence_days")?, "cadence_days")?,
        created_ms: f.int_or_zero("created_ms")?,
        updated_ms: f.int_or_zero("updated_ms")?,
        archived: f.bool("archived")?.unwrap_or(false),
        merged_into: f.parsed("merged_into")?,
        import_keys: f.set("import_keys")?,
        merge_base: f
            .points("merge_base")?
            .into_iter()
            .map(|p| (p.value, p.label))
            .collect(),
        merged_from: Vec::new(),
        conflicts: Vec::new(),
    })
}

/// Reads the interaction stored at `obj` under id `id` (one walk over its map,
/// and one over each exchange and follow-up).
pub(crate) fn read_interaction(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Interaction> {
    let f = Fields::read(doc, obj);
    let notes = f.str("notes")?.unwrap_or_default();
    let notes_conflicts = f.conflicts("notes", &notes)?;

    let mut exchanges = Vec::new();
    if let Some(map) = f.map("exchanges")? {
        for e in doc.map_range(&map, ..) {
            let path = format!("exchanges/{}", e.key);
            if e.value != ValueRef::Object(ObjType::Map) {
                return Err(bad(&e.key, "expected a map"));
            }
            let ex_obj = e.id();
            let ex = Fields::read(doc, &ex_obj);
            exchanges.push(Exchange {
                id: parse_id::<ExchangeId>(&e.key, &path)?,
                what: ex
                    .parsed::<ExchangeWhat>("what")?
                    .ok_or_else(|| bad(&path, "missing 'what'"))?,
                direction: ex
                    .parsed::<Direction>("direction")?
                    .ok_or_else(|| bad(&path, "missing 'direction'"))?,
                with: ex.parsed("with")?,
            });
        }
    }
    let mut follow_ups = BTreeMap::new();
    if let Some(map) = f.map("follow_ups")? {
        for e in doc.map_range(&map, ..) {
            let path = format!("follow_ups/{}", e.key);
            if e.value != ValueRef::Object(ObjType::Map) {
                return Err(bad(&e.key, "expected a map"));
            }
            let fu_obj = e.id();
            let fu = Fields::read(doc, &fu_obj);
            let fid: FollowUpId = parse_id(&e.key, &path)?;
            follow_ups.insert(
                fid,
                FollowUp {
                    id: fid,
                    text: fu.str("text")?.unwrap_or_default(),
                    due: fu.parsed::<NaiveDate>("due")?,
                    done_ms: fu.int("done_ms")?,
                },
            );
        }
    }
    Ok(Interaction {
        id: parse_id(id, "interactions")?,
        at_ms: f.int_or_zero("at_ms")?,
        offset_minutes: i16::try_from(f.int("offset_minutes")?.unwrap_or(0))
            .map_err(|_| bad("offset_minutes", "out of range"))?,
        kind: f.parsed("kind")?.unwrap_or(InteractionKind::Other),
        initiator: f.parsed("initiator")?.unwrap_or(Initiator::Unknown),
        participants: f.set("participants")?,
        summary: f.str("summary")?.unwrap_or_default(),
        notes,
        notes_conflicts,
        project: f.parsed("project")?,
        exchanges,
        follow_ups,
        created_ms: f.int_or_zero("created_ms")?,
        updated_ms: f.int_or_zero("updated_ms")?,
        deleted_ms: f.int("deleted_ms")?,
        event: read_event_ref(&f)?,
    })
}

/// The logged calendar event: three flat scalars, absent in documents written before meetings
/// (docs/SCHEMA.md), so old documents read as "no event".
fn read_event_ref(f: &Fields<'_>) -> R<Option<EventRef>> {
    let (Some(source), Some(uid)) = (f.str(EVENT_SOURCE)?, f.str(EVENT_UID)?) else {
        return Ok(None);
    };
    Ok(Some(EventRef {
        source,
        uid,
        recurrence_id: f.str(EVENT_RECURRENCE_ID)?,
    }))
}

const EVENT_SOURCE: &str = "event_source";
const EVENT_UID: &str = "event_uid";
const EVENT_RECURRENCE_ID: &str = "event_recurrence_id";
/// Settings keys of the flat sets (one key per member, so concurrent adds on two devices both
/// survive: a nested map created offline on two devices would conflict and lose one side).
const MY_EMAIL_PREFIX: &str = "my_email:";
const DISMISSED_PREFIX: &str = "dismissed:";

/// `dismissed:` key of an event: the JSON array `[source, uid, recurrence_id]` (reversible for
/// any strings, unlike a separator).
fn dismissed_key(e: &EventRef) -> String {
    let json = serde_json::to_string(&(&e.source, &e.uid, &e.recurrence_id)).unwrap_or_default();
    format!("{DISMISSED_PREFIX}{json}")
}

/// Reads the project stored at `obj` under id `id`.
pub(crate) fn read_project(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Project> {
    Ok(Project {
        id: parse_id(id, "projects")?,
        name: get_str(doc, obj, "name")?.unwrap_or_default(),
        description: get_str(doc, obj, "description")?.unwrap_or_default(),
        status: get_parsed(doc, obj, "status")?.unwrap_or(ProjectStatus::Active),
        created_ms: get_i64_req(doc, obj, "created_ms")?,
        updated_ms: get_i64_req(doc, obj, "updated_ms")?,
    })
}

/// Reads the goal stored at `obj` under id `id`.
pub(crate) fn read_goal(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Goal> {
    let priority = get_int(doc, obj, "priority")?.unwrap_or(2);
    Ok(Goal {
        id: parse_id(id, "goals")?,
        title: get_str(doc, obj, "title")?.unwrap_or_default(),
        priority: u8::try_from(priority).map_err(|_| bad("priority", "out of range"))?,
        status: get_parsed(doc, obj, "status")?.unwrap_or(GoalStatus::Active),
        contacts: get_set(doc, obj, "contacts")?,
        created_ms: get_i64_req(doc, obj, "created_ms")?,
        updated_ms: get_i64_req(doc, obj, "updated_ms")?,
    })
}

/// Reads the settings of the main document (absent fields take their defaults).
pub(crate) fn read_settings(doc: &AutoCommit) -> R<Settings> {
    let obj = container(doc, SETTINGS)?;
    let defaults = Settings::default();
    let mut cadence_days = defaults.cadence_days.clone();
    if let Some(map) = get_map(doc, &obj, "cadence_days")? {
        for k in doc.keys(&map).collect::<Vec<_>>() {
            let circle: Circle = parse_id(&k, "settings/cadence_days")?;
            if let Some(v) = u32_of(get_int(doc, &map, &k)?, "settings/cadence_days")? {
                cadence_days.insert(circle, v);
            }
        }
    }
    let mut my_emails = BTreeSet::new();
    let mut dismissed_events = BTreeMap::new();
    for k in doc.keys(&obj).collect::<Vec<_>>() {
        if let Some(email) = k.strip_prefix(MY_EMAIL_PREFIX) {
            if get_bool(doc, &obj, &k)? == Some(true) {
                my_emails.insert(email.to_string());
            }
        } else if let Some(json) = k.strip_prefix(DISMISSED_PREFIX) {
            let (source, uid, recurrence_id): (String, String, Option<String>) =
                serde_json::from_str(json)
                    .map_err(|e| bad(&format!("settings/{k}"), e.to_string()))?;
            let at = get_int(doc, &obj, &k)?.unwrap_or(0);
            dismissed_events.insert(
                EventRef {
                    source,
                    uid,
                    recurrence_id,
                },
                at,
            );
        }
    }
    Ok(Settings {
        my_emails,
        dismissed_events,
        my_organisation: get_str(doc, &obj, "my_organisation")?,
        my_discipline: get_str(doc, &obj, "my_discipline")?,
        cadence_days,
        strategic_target: get_f64(doc, &obj, "strategic_target")?,
        core_size: u32_of(get_int(doc, &obj, "core_size")?, "core_size")?
            .unwrap_or(defaults.core_size),
    })
}

// ------------------------------------------------------- one-walk record reader

/// One record's map, read in a single walk over its ops (`map_range`): the
/// winning value of every key, in key order, and whether the key holds
/// concurrent values.
///
/// Why: reading a record field by field with `get` seeks the record's ops
/// again for every key (about 16 seeks per interaction), which was 47 % of a
/// new device's index rebuild (docs/STORE.md, "Rebuilding the index"). One
/// walk visits each op once. The accessors below convert exactly as the
/// per-key getters above do (same defaults, same errors); a proptest in this
/// module holds the two readers equal on merged records with conflicts and
/// wrong-typed fields.
struct Fields<'a> {
    doc: &'a AutoCommit,
    obj: &'a ObjId,
    entries: Vec<MapRangeItem<'a>>,
}

impl<'a> Fields<'a> {
    fn read(doc: &'a AutoCommit, obj: &'a ObjId) -> Self {
        let mut entries: Vec<MapRangeItem<'a>> = doc.map_range(obj, ..).collect();
        // `map_range` yields keys in the document's order; sort so lookups can
        // bisect whatever that order is (a no-op pass when already sorted).
        if !entries.is_sorted_by(|a, b| a.key <= b.key) {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
        }
        Fields { doc, obj, entries }
    }

    fn entry(&self, key: &str) -> Option<&MapRangeItem<'a>> {
        self.entries
            .binary_search_by(|e| e.key.as_ref().cmp(key))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The winning scalar of `key` (as `get_scalar`).
    fn scalar(&self, key: &str) -> R<Option<&ScalarValueRef<'a>>> {
        match self.entry(key).map(|e| &e.value) {
            Some(ValueRef::Scalar(s)) => Ok(Some(s)),
            Some(ValueRef::Object(_)) => Err(bad(key, "expected a scalar, found an object")),
            None => Ok(None),
        }
    }

    fn str(&self, key: &str) -> R<Option<String>> {
        str_of(self.scalar(key)?, key)
    }

    fn int(&self, key: &str) -> R<Option<i64>> {
        match self.scalar(key)? {
            Some(ScalarValueRef::Int(v) | ScalarValueRef::Timestamp(v)) => Ok(Some(*v)),
            Some(ScalarValueRef::Uint(v)) => Ok(Some(
                i64::try_from(*v).map_err(|_| bad(key, "integer out of range"))?,
            )),
            Some(ScalarValueRef::Null) | None => Ok(None),
            Some(other) => Err(bad(
                key,
                format!("expected an integer, found {}", ScalarValue::from(other)),
            )),
        }
    }

    fn int_or_zero(&self, key: &str) -> R<i64> {
        Ok(self.int(key)?.unwrap_or(0))
    }

    fn bool(&self, key: &str) -> R<Option<bool>> {
        match self.scalar(key)? {
            Some(ScalarValueRef::Boolean(v)) => Ok(Some(*v)),
            Some(ScalarValueRef::Null) | None => Ok(None),
            Some(other) => Err(bad(
                key,
                format!("expected a boolean, found {}", ScalarValue::from(other)),
            )),
        }
    }

    fn parsed<T: FromStr>(&self, key: &str) -> R<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        match self.scalar(key)? {
            Some(ScalarValueRef::Str(s)) => s
                .parse()
                .map(Some)
                .map_err(|e: T::Err| bad(key, e.to_string())),
            other => str_of(other, key).map(|_| None),
        }
    }

    /// The nested map under `key` (as `get_map`).
    fn map(&self, key: &str) -> R<Option<ObjId>> {
        match self.entry(key) {
            Some(e) if e.value == ValueRef::Object(ObjType::Map) => Ok(Some(e.id())),
            Some(_) => Err(bad(key, "expected a map")),
            None => Ok(None),
        }
    }

    /// A set stored as a map `member -> true` (as `get_set`).
    fn set<T: FromStr + Ord>(&self, key: &str) -> R<BTreeSet<T>>
    where
        T::Err: std::fmt::Display,
    {
        let mut out = BTreeSet::new();
        if let Some(map) = self.map(key)? {
            for k in self.doc.keys(&map) {
                out.insert(
                    k.parse()
                        .map_err(|e: T::Err| bad(&format!("{key}/{k}"), e.to_string()))?,
                );
            }
        }
        Ok(out)
    }

    /// Contact points stored as a map `value -> label` (as `get_points`).
    fn points(&self, key: &str) -> R<Vec<ContactPoint>> {
        let mut out = Vec::new();
        if let Some(map) = self.map(key)? {
            for e in self.doc.map_range(&map, ..) {
                let label = match &e.value {
                    ValueRef::Scalar(s) => str_of(Some(s), &e.key)?,
                    ValueRef::Object(_) => {
                        return Err(bad(&e.key, "expected a scalar, found an object"));
                    }
                };
                out.push(ContactPoint {
                    value: e.key.into_owned(),
                    label: label.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Collaborative text, or a plain string written by an older writer (as `get_text`).
    fn text(&self, key: &str) -> R<String> {
        match self.entry(key) {
            Some(e) => match &e.value {
                ValueRef::Object(ObjType::Text) => self.doc.text(e.id()).map_err(am(key)),
                ValueRef::Scalar(ScalarValueRef::Str(s)) => Ok(s.to_string()),
                ValueRef::Scalar(_) => Ok(String::new()),
                ValueRef::Object(_) => Err(bad(key, "expected text")),
            },
            None => Ok(String::new()),
        }
    }

    /// Every concurrent value of `key` other than the winner, sorted (interaction notes).
    /// Only a key whose walk reported a conflict needs `get_all`.
    fn conflicts(&self, key: &str, winner: &str) -> R<Vec<String>> {
        if !self.entry(key).is_some_and(|e| e.conflict) {
            return Ok(Vec::new());
        }
        let all = self.doc.get_all(self.obj, key).map_err(am(key))?;
        let mut out: Vec<String> = all
            .iter()
            .filter_map(|(v, _)| match v {
                Value::Scalar(s) => s.as_str().map(str::to_string),
                Value::Object(_) => None,
            })
            .filter(|v| v != winner)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// A scalar as an optional string (as `get_str`).
fn str_of(v: Option<&ScalarValueRef<'_>>, key: &str) -> R<Option<String>> {
    match v {
        Some(ScalarValueRef::Str(s)) => Ok(Some(s.to_string())),
        Some(ScalarValueRef::Null) | None => Ok(None),
        Some(other) => Err(bad(
            key,
            format!("expected a string, found {}", ScalarValue::from(other)),
        )),
    }
}

/// Reads every record of a root container with `read`.
pub(crate) fn read_all<T>(
    doc: &AutoCommit,
    key: &'static str,
    read: fn(&AutoCommit, &ObjId, &str) -> R<T>,
) -> R<Vec<T>> {
    let parent = container(doc, key)?;
    let mut out = Vec::new();
    // One walk over the container gives each record's id and object (rather
    // than its keys, then a lookup per key).
    for e in doc.map_range(&parent, ..) {
        if e.value != ValueRef::Object(ObjType::Map) {
            return Err(bad(&e.key, "expected a map"));
        }
        out.push(read(doc, &e.id(), &e.key)?);
    }
    Ok(out)
}

/// Reads one record by id, if present.
pub(crate) fn read_one<T>(
    doc: &AutoCommit,
    key: &'static str,
    id: &str,
    read: fn(&AutoCommit, &ObjId, &str) -> R<T>,
) -> R<Option<T>> {
    match record(doc, key, id)? {
        Some(obj) => read(doc, &obj, id).map(Some),
        None => Ok(None),
    }
}

// ---------------------------------------------------------------- writers

fn put_str(doc: &mut AutoCommit, obj: &ObjId, key: &str, v: &str) -> R<()> {
    doc.put(obj, key, v).map_err(am(key))
}

fn put_opt_str(doc: &mut AutoCommit, obj: &ObjId, key: &str, v: Option<&str>) -> R<()> {
    match v {
        Some(v) => put_str(doc, obj, key, v),
        None => delete_key(doc, obj, key),
    }
}

fn delete_key(doc: &mut AutoCommit, obj: &ObjId, key: &str) -> R<()> {
    if doc.get(obj, key).map_err(am(key))?.is_some() {
        doc.delete(obj, key).map_err(am(key))?;
    }
    Ok(())
}

fn put_int(doc: &mut AutoCommit, obj: &ObjId, key: &str, v: i64) -> R<()> {
    doc.put(obj, key, v).map_err(am(key))
}

fn put_opt_int(doc: &mut AutoCommit, obj: &ObjId, key: &str, v: Option<i64>) -> R<()> {
    match v {
        Some(v) => put_int(doc, obj, key, v),
        None => delete_key(doc, obj, key),
    }
}

fn ensure_map(doc: &mut AutoCommit, obj: &ObjId, key: &str) -> R<ObjId> {
    match doc.get(obj, key).map_err(am(key))? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => doc.put_object(obj, key, ObjType::Map).map_err(am(key)),
    }
}

/// Writes a set as a map `member -> true`, adding and removing only the difference.
fn write_set<T: ToString>(
    doc: &mut AutoCommit,
    obj: &ObjId,
    key: &str,
    new: impl IntoIterator<Item = T>,
) -> R<()> {
    let map = ensure_map(doc, obj, key)?;
    let new: BTreeSet<String> = new.into_iter().map(|v| v.to_string()).collect();
    let old: BTreeSet<String> = doc.keys(&map).collect();
    for gone in old.difference(&new) {
        doc.delete(&map, gone.as_str()).map_err(am(key))?;
    }
    for added in new.difference(&old) {
        doc.put(&map, added.as_str(), true).map_err(am(key))?;
    }
    Ok(())
}

fn write_points(doc: &mut AutoCommit, obj: &ObjId, key: &str, new: &[ContactPoint]) -> R<()> {
    let map = ensure_map(doc, obj, key)?;
    let new: BTreeMap<&str, &str> = new
        .iter()
        .map(|p| (p.value.as_str(), p.label.as_str()))
        .collect();
    let old: Vec<String> = doc.keys(&map).collect();
    for gone in old.iter().filter(|k| !new.contains_key(k.as_str())) {
        doc.delete(&map, gone.as_str()).map_err(am(key))?;
    }
    for (value, label) in new {
        if get_str(doc, &map, value)?.as_deref() != Some(label) {
            doc.put(&map, value, label).map_err(am(key))?;
        }
    }
    Ok(())
}

/// Puts field `$f` when it differs from the old record (or there is none).
macro_rules! changed {
    ($old:expr, $new:expr, $f:ident) => {
        $old.is_none_or(|o| o.$f != $new.$f)
    };
}

/// The whole record of a new contact as one value, with exactly the keys and
/// types the field-by-field path of [`write_contact`] writes for a record
/// that has no previous version: absent optionals have no key, sets and
/// contact points are always-present maps, notes always a Text.
fn new_contact_value(encoding: automerge::TextEncoding, c: &Contact) -> hydrate::Value {
    fn s(v: &str) -> hydrate::Value {
        hydrate::Value::Scalar(ScalarValue::Str(v.into()))
    }
    fn set<T: ToString>(items: impl IntoIterator<Item = T>) -> hydrate::Value {
        let m: HashMap<String, hydrate::Value> = items
            .into_iter()
            .map(|v| {
                (
                    v.to_string(),
                    hydrate::Value::Scalar(ScalarValue::Boolean(true)),
                )
            })
            .collect();
        hydrate::Value::Map(m.into())
    }
    fn points(items: &[ContactPoint]) -> hydrate::Value {
        // Later duplicates win, as in `write_points`.
        let m: HashMap<String, hydrate::Value> = items
            .iter()
            .map(|p| (p.value.clone(), s(&p.label)))
            .collect();
        hydrate::Value::Map(m.into())
    }
    let mut m: HashMap<String, hydrate::Value> = HashMap::new();
    let opt = |m: &mut HashMap<String, hydrate::Value>, k: &str, v: Option<&str>| {
        if let Some(v) = v {
            m.insert(k.to_string(), s(v));
        }
    };
    m.insert("name".into(), s(&c.name));
    opt(&mut m, "given_name", c.given_name.as_deref());
    opt(&mut m, "family_name", c.family_name.as_deref());
    opt(&mut m, "organisation", c.organisation.as_deref());
    opt(&mut m, "role", c.role.as_deref());
    opt(&mut m, "discipline", c.discipline.as_deref());
    m.insert("seniority".into(), s(c.seniority.as_str()));
    if let Some(v) = c.inside_org {
        m.insert(
            "inside_org".into(),
            hydrate::Value::Scalar(ScalarValue::Boolean(v)),
        );
    }
    m.insert("circles".into(), set(c.circles.iter().map(|c| c.as_str())));
    m.insert("tags".into(), set(&c.tags));
    m.insert("emails".into(), points(&c.emails));
    m.insert("phones".into(), points(&c.phones));
    m.insert("urls".into(), set(&c.urls));
    opt(&mut m, "how_we_met", c.how_we_met.as_deref());
    let first_met = c.first_met.map(|d| d.format("%Y-%m-%d").to_string());
    opt(&mut m, "first_met", first_met.as_deref());
    let birthday = c.birthday.as_ref().map(format_partial_date);
    opt(&mut m, "birthday", birthday.as_deref());
    m.insert("notes".into(), hydrate::Value::text(encoding, &c.notes));
    if let Some(v) = c.cadence_days {
        m.insert("cadence_days".into(), i64::from(v).into());
    }
    m.insert("created_ms".into(), c.created_ms.into());
    m.insert("updated_ms".into(), c.updated_ms.into());
    m.insert(
        "archived".into(),
        hydrate::Value::Scalar(ScalarValue::Boolean(c.archived)),
    );
    let merged_into = c.merged_into.map(|c| c.to_string());
    opt(&mut m, "merged_into", merged_into.as_deref());
    m.insert("import_keys".into(), set(&c.import_keys));
    if !c.merge_base.is_empty() {
        let m2: HashMap<String, hydrate::Value> = c
            .merge_base
            .iter()
            .map(|(k, v)| (k.clone(), s(v)))
            .collect();
        m.insert("merge_base".into(), hydrate::Value::Map(m2.into()));
    }
    hydrate::Value::Map(m.into())
}

/// The contact [`read_contact`] returns right after [`write_contact`] created
/// `c` as a new record, computed without the document: contact points
/// deduplicated by value (the later one wins) and sorted by value, as the
/// map stores them; dates through the same text form and parser, so a date
/// the reader would refuse is refused here too. The bulk import indexes this
/// instead of reading every new record back (a property test checks the two
/// agree).
pub(crate) fn new_contact_as_read(c: Contact) -> R<Contact> {
    fn points(items: &[ContactPoint]) -> Vec<ContactPoint> {
        let m: BTreeMap<&str, &str> = items
            .iter()
            .map(|p| (p.value.as_str(), p.label.as_str()))
            .collect();
        m.into_iter()
            .map(|(value, label)| ContactPoint {
                value: value.to_string(),
                label: label.to_string(),
            })
            .collect()
    }
    let first_met = c
        .first_met
        .map(|d| {
            d.format("%Y-%m-%d")
                .to_string()
                .parse::<NaiveDate>()
                .map_err(|e| bad("first_met", e.to_string()))
        })
        .transpose()?;
    let birthday = c
        .birthday
        .as_ref()
        .map(|d| parse_partial_date(&format_partial_date(d), "birthday"))
        .transpose()?;
    let seniority = c
        .seniority
        .as_str()
        .parse()
        .map_err(|e: <Seniority as FromStr>::Err| bad("seniority", e.to_string()))?;
    Ok(Contact {
        emails: points(&c.emails),
        phones: points(&c.phones),
        first_met,
        birthday,
        seniority,
        // Derived by the index, never stored.
        merged_from: Vec::new(),
        conflicts: Vec::new(),
        ..c
    })
}

/// Writes `new` into the contacts map, creating the record or updating only
/// the fields that differ from `old` (the record as last read). Returns the
/// record's object, so a caller reading it back skips the lookup.
pub(crate) fn write_contact(
    doc: &mut AutoCommit,
    old: Option<&Contact>,
    new: &Contact,
) -> R<ObjId> {
    let parent = container(doc, CONTACTS)?;
    let id = new.id.to_string();
    let obj = match (old, get_map(doc, &parent, &id)?) {
        (Some(_), Some(obj)) => obj,
        _ => {
            // A new record: one bulk object creation instead of a put per
            // field (an import creates thousands; per-op puts dominated it).
            let value = new_contact_value(doc.text_encoding(), new);
            return doc
                .batch_create_object(&parent, id.as_str(), &value, false)
                .map_err(am(CONTACTS));
        }
    };
    let old = old.filter(|_| doc.get(&obj, "name").ok().flatten().is_some());
    if changed!(old, new, name) {
        put_str(doc, &obj, "name", &new.name)?;
    }
    if changed!(old, new, given_name) {
        put_opt_str(doc, &obj, "given_name", new.given_name.as_deref())?;
    }
    if changed!(old, new, family_name) {
        put_opt_str(doc, &obj, "family_name", new.family_name.as_deref())?;
    }
    if changed!(old, new, organisation) {
        put_opt_str(doc, &obj, "organisation", new.organisation.as_deref())?;
    }
    if changed!(old, new, role) {
        put_opt_str(doc, &obj, "role", new.role.as_deref())?;
    }
    if changed!(old, new, discipline) {
        put_opt_str(doc, &obj, "discipline", new.discipline.as_deref())?;
    }
    if changed!(old, new, seniority) {
        put_str(doc, &obj, "seniority", new.seniority.as_str())?;
    }
    if changed!(old, new, inside_org) {
        match new.inside_org {
            Some(v) => doc.put(&obj, "inside_org", v).map_err(am("inside_org"))?,
            None => delete_key(doc, &obj, "inside_org")?,
        }
    }
    if changed!(old, new, circles) {
        write_set(doc, &obj, "circles", new.circles.iter().map(|c| c.as_str()))?;
    }
    if changed!(old, new, tags) {
        write_set(doc, &obj, "tags", &new.tags)?;
    }
    if changed!(old, new, emails) {
        write_points(doc, &obj, "emails", &new.emails)?;
    }
    if changed!(old, new, phones) {
        write_points(doc, &obj, "phones", &new.phones)?;
    }
    if changed!(old, new, urls) {
        write_set(doc, &obj, "urls", &new.urls)?;
    }
    if changed!(old, new, how_we_met) {
        put_opt_str(doc, &obj, "how_we_met", new.how_we_met.as_deref())?;
    }
    if changed!(old, new, first_met) {
        let v = new.first_met.map(|d| d.format("%Y-%m-%d").to_string());
        put_opt_str(doc, &obj, "first_met", v.as_deref())?;
    }
    if changed!(old, new, birthday) {
        let v = new.birthday.as_ref().map(format_partial_date);
        put_opt_str(doc, &obj, "birthday", v.as_deref())?;
    }
    if changed!(old, new, notes) {
        let text = match doc.get(&obj, "notes").map_err(am("notes"))? {
            Some((Value::Object(ObjType::Text), t)) => t,
            _ => doc
                .put_object(&obj, "notes", ObjType::Text)
                .map_err(am("notes"))?,
        };
        doc.update_text(&text, &new.notes).map_err(am("notes"))?;
    }
    if changed!(old, new, cadence_days) {
        put_opt_int(doc, &obj, "cadence_days", new.cadence_days.map(i64::from))?;
    }
    if changed!(old, new, created_ms) {
        put_int(doc, &obj, "created_ms", new.created_ms)?;
    }
    if changed!(old, new, updated_ms) {
        put_int(doc, &obj, "updated_ms", new.updated_ms)?;
    }
    if changed!(old, new, archived) {
        doc.put(&obj, "archived", new.archived)
            .map_err(am("archived"))?;
    }
    if changed!(old, new, merged_into) {
        let v = new.merged_into.map(|c| c.to_string());
        put_opt_str(doc, &obj, "merged_into", v.as_deref())?;
    }
    if changed!(old, new, import_keys) {
        write_set(doc, &obj, "import_keys", &new.import_keys)?;
    }
    if changed!(old, new, merge_base) {
        let points: Vec<ContactPoint> = new
            .merge_base
            .iter()
            .map(|(k, v)| ContactPoint {
                value: k.clone(),
                label: v.clone(),
            })
            .collect();
        write_points(doc, &obj, "merge_base", &points)?;
    }
    Ok(obj)
}

/// Writes `new` into the interactions map of a log document (see [`write_contact`]).
pub(crate) fn write_interaction(
    doc: &mut AutoCommit,
    old: Option<&Interaction>,
    new: &Interaction,
) -> R<()> {
    let parent = container(doc, INTERACTIONS)?;
    let id = new.id.to_string();
    let obj = match (old, get_map(doc, &parent, &id)?) {
        (Some(_), Some(obj)) => obj,
        _ => doc
            .put_object(&parent, id.as_str(), ObjType::Map)
            .map_err(am(INTERACTIONS))?,
    };
    let old = old.filter(|_| doc.get(&obj, "summary").ok().flatten().is_some());
    if changed!(old, new, at_ms) {
        put_int(doc, &obj, "at_ms", new.at_ms)?;
    }
    if changed!(old, new, offset_minutes) {
        put_int(doc, &obj, "offset_minutes", i64::from(new.offset_minutes))?;
    }
    if changed!(old, new, kind) {
        put_str(doc, &obj, "kind", new.kind.as_str())?;
    }
    if changed!(old, new, initiator) {
        put_str(doc, &obj, "initiator", new.initiator.as_str())?;
    }
    if changed!(old, new, participants) {
        write_set(doc, &obj, "participants", &new.participants)?;
    }
    if changed!(old, new, summary) {
        put_str(doc, &obj, "summary", &new.summary)?;
    }
    // Writing notes also resolves a conflict: one put supersedes every concurrent value.
    if changed!(old, new, notes) || old.is_some_and(|o| !o.notes_conflicts.is_empty()) {
        put_str(doc, &obj, "notes", &new.notes)?;
    }
    if changed!(old, new, project) {
        let v = new.project.map(|p| p.to_string());
        put_opt_str(doc, &obj, "project", v.as_deref())?;
    }
    if changed!(old, new, exchanges) {
        let map = ensure_map(doc, &obj, "exchanges")?;
        let keep: BTreeSet<String> = new.exchanges.iter().map(|e| e.id.to_string()).collect();
        for k in doc.keys(&map).collect::<Vec<_>>() {
            if !keep.contains(&k) {
                doc.delete(&map, k.as_str()).map_err(am("exchanges"))?;
            }
        }
        for ex in &new.exchanges {
            let before = old.and_then(|o| o.exchanges.iter().find(|e| e.id == ex.id));
            if before == Some(ex) {
                continue;
            }
            let eobj = ensure_map(doc, &map, &ex.id.to_string())?;
            put_str(doc, &eobj, "what", ex.what.as_str())?;
            put_str(doc, &eobj, "direction", ex.direction.as_str())?;
            let with = ex.with.map(|c| c.to_string());
            put_opt_str(doc, &eobj, "with", with.as_deref())?;
        }
    }
    if changed!(old, new, follow_ups) {
        let map = ensure_map(doc, &obj, "follow_ups")?;
        for k in doc.keys(&map).collect::<Vec<_>>() {
            let keep = k
                .parse::<FollowUpId>()
                .is_ok_and(|id| new.follow_ups.contains_key(&id));
            if !keep {
                doc.delete(&map, k.as_str()).map_err(am("follow_ups"))?;
            }
        }
        for (fid, fu) in &new.follow_ups {
            let before = old.and_then(|o| o.follow_ups.get(fid));
            if before == Some(fu) {
                continue;
            }
            let fobj = ensure_map(doc, &map, &fid.to_string())?;
            if before.is_none_or(|b| b.text != fu.text) {
                put_str(doc, &fobj, "text", &fu.text)?;
            }
            if before.is_none_or(|b| b.due != fu.due) {
                let due = fu.due.map(|d| d.format("%Y-%m-%d").to_string());
                put_opt_str(doc, &fobj, "due", due.as_deref())?;
            }
            if before.is_none_or(|b| b.done_ms != fu.done_ms) {
                put_opt_int(doc, &fobj, "done_ms", fu.done_ms)?;
            }
        }
    }
    if changed!(old, new, created_ms) {
        put_int(doc, &obj, "created_ms", new.created_ms)?;
    }
    if changed!(old, new, updated_ms) {
        put_int(doc, &obj, "updated_ms", new.updated_ms)?;
    }
    if changed!(old, new, deleted_ms) {
        put_opt_int(doc, &obj, "deleted_ms", new.deleted_ms)?;
    }
    if changed!(old, new, event) {
        let e = new.event.as_ref();
        put_opt_str(doc, &obj, EVENT_SOURCE, e.map(|e| e.source.as_str()))?;
        put_opt_str(doc, &obj, EVENT_UID, e.map(|e| e.uid.as_str()))?;
        put_opt_str(
            doc,
            &obj,
            EVENT_RECURRENCE_ID,
            e.and_then(|e| e.recurrence_id.as_deref()),
        )?;
    }
    Ok(())
}

/// Writes a project (see [`write_contact`]).
pub(crate) fn write_project(doc: &mut AutoCommit, old: Option<&Project>, new: &Project) -> R<()> {
    let parent = container(doc, PROJECTS)?;
    let id = new.id.to_string();
    let obj = match (old, get_map(doc, &parent, &id)?) {
        (Some(_), Some(obj)) => obj,
        _ => doc
            .put_object(&parent, id.as_str(), ObjType::Map)
            .map_err(am(PROJECTS))?,
    };
    if changed!(old, new, name) {
        put_str(doc, &obj, "name", &new.name)?;
    }
    if changed!(old, new, description) {
        put_str(doc, &obj, "description", &new.description)?;
    }
    if changed!(old, new, status) {
        put_str(doc, &obj, "status", new.status.as_str())?;
    }
    if changed!(old, new, created_ms) {
        put_int(doc, &obj, "created_ms", new.created_ms)?;
    }
    if changed!(old, new, updated_ms) {
        put_int(doc, &obj, "updated_ms", new.updated_ms)?;
    }
    Ok(())
}

/// Writes a goal (see [`write_contact`]).
pub(crate) fn write_goal(doc: &mut AutoCommit, old: Option<&Goal>, new: &Goal) -> R<()> {
    let parent = container(doc, GOALS)?;
    let id = new.id.to_string();
    let obj = match (old, get_map(doc, &parent, &id)?) {
        (Some(_), Some(obj)) => obj,
        _ => doc
            .put_object(&parent, id.as_str(), ObjType::Map)
            .map_err(am(GOALS))?,
    };
    if changed!(old, new, title) {
        put_str(doc, &obj, "title", &new.title)?;
    }
    if changed!(old, new, priority) {
        put_int(doc, &obj, "priority", i64::from(new.priority))?;
    }
    if changed!(old, new, status) {
        put_str(doc, &obj, "status", new.status.as_str())?;
    }
    if changed!(old, new, contacts) {
        write_set(doc, &obj, "contacts", &new.contacts)?;
    }
    if changed!(old, new, created_ms) {
        put_int(doc, &obj, "created_ms", new.created_ms)?;
    }
    if changed!(old, new, updated_ms) {
        put_int(doc, &obj, "updated_ms", new.updated_ms)?;
    }
    Ok(())
}

/// Writes the settings, touching only fields that differ from `old`.
pub(crate) fn write_settings(doc: &mut AutoCommit, old: &Settings, new: &Settings) -> R<()> {
    let obj = container(doc, SETTINGS)?;
    if old.my_organisation != new.my_organisation {
        put_opt_str(doc, &obj, "my_organisation", new.my_organisation.as_deref())?;
    }
    if old.my_discipline != new.my_discipline {
        put_opt_str(doc, &obj, "my_discipline", new.my_discipline.as_deref())?;
    }
    if old.cadence_days != new.cadence_days {
        let map = ensure_map(doc, &obj, "cadence_days")?;
        for (circle, days) in &new.cadence_days {
            if old.cadence_days.get(circle) != Some(days) {
                put_int(doc, &map, circle.as_str(), i64::from(*days))?;
            }
        }
    }
    if old.strategic_target != new.strategic_target {
        match new.strategic_target {
            Some(v) => doc
                .put(&obj, "strategic_target", v)
                .map_err(am("strategic_target"))?,
            None => delete_key(doc, &obj, "strategic_target")?,
        }
    }
    if old.core_size != new.core_size {
        put_int(doc, &obj, "core_size", i64::from(new.core_size))?;
    }
    for gone in old.my_emails.difference(&new.my_emails) {
        delete_key(doc, &obj, &format!("{MY_EMAIL_PREFIX}{gone}"))?;
    }
    for added in new.my_emails.difference(&old.my_emails) {
        let key = format!("{MY_EMAIL_PREFIX}{added}");
        doc.put(&obj, key.as_str(), true)
            .map_err(am(MY_EMAIL_PREFIX))?;
    }
    for (e, _) in old
        .dismissed_events
        .iter()
        .filter(|(e, _)| !new.dismissed_events.contains_key(*e))
    {
        delete_key(doc, &obj, &dismissed_key(e))?;
    }
    for (e, at) in &new.dismissed_events {
        if old.dismissed_events.get(e) != Some(at) {
            put_int(doc, &obj, &dismissed_key(e), *at)?;
        }
    }
    Ok(())
}

/// Ids of records touched by a set of patches, grouped by root container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Touched {
    pub contacts: BTreeSet<String>,
    pub interactions: BTreeSet<String>,
    pub projects: BTreeSet<String>,
    pub goals: BTreeSet<String>,
    pub settings: bool,
}

/// Which records the patches touch: the second path element (or the key put
/// into a root container) names the record.
pub(crate) fn touched_by(patches: &[automerge::Patch]) -> Touched {
    use automerge::{PatchAction, Prop};
    let mut t = Touched::default();
    for p in patches {
        let mut props = p.path.iter().map(|(_, prop)| prop);
        let root = props.next();
        let rec = props.next().cloned().or_else(|| match &p.action {
            PatchAction::PutMap { key, .. } | PatchAction::DeleteMap { key } => {
                Some(Prop::Map(key.clone()))
            }
            _ => None,
        });
        let (Some(Prop::Map(root)), rec) = (root, rec) else {
            continue;
        };
        let rec = match rec {
            Some(Prop::Map(k)) => Some(k),
            _ => None,
        };
        match (root.as_str(), rec) {
            (CONTACTS, Some(k)) => {
                t.contacts.insert(k);
            }
            (INTERACTIONS, Some(k)) => {
                t.interactions.insert(k);
            }
            (PROJECTS, Some(k)) => {
                t.projects.insert(k);
            }
            (GOALS, Some(k)) => {
                t.goals.insert(k);
            }
            (SETTINGS, _) => t.settings = true,
            _ => {}
        }
    }
    // A put of a whole root container (genesis) touches its settings too.
    t
}

// ---------------------------------------------------------------- merges

/// Most operations in the merged changes for which [`records_written_since`]
/// decodes them; larger merges are bulk transfers that create their records
/// (which the patches report).
const WRITTEN_RECORDS_OPS_MAX: usize = 50_000;

/// (root container, record key) of every record whose objects the changes
/// merged since `before` wrote to. Patches miss a merge that only adds a
/// losing concurrent value (a third device's conflicting notes): nothing
/// visible changed, yet the record's `notes_conflicts` did.
pub(crate) fn records_written_since(
    doc: &mut automerge::AutoCommit,
    before: &[ChangeHash],
) -> std::collections::BTreeSet<(String, String)> {
    let mut out = std::collections::BTreeSet::new();
    let changes = doc.get_changes(before);
    if changes.iter().map(|c| c.len()).sum::<usize>() > WRITTEN_RECORDS_OPS_MAX {
        return out;
    }
    let mut objs = std::collections::BTreeSet::new();
    for c in &changes {
        for op in c.decode().operations {
            if let automerge::legacy::ObjectId::Id(id) = op.obj {
                objs.insert(format!("{}@{}", id.0, id.1));
            }
        }
    }
    for o in objs {
        let Ok((exid, _)) = doc.import(&o) else {
            continue;
        };
        let Ok(parents) = doc.parents(&exid) else {
            continue;
        };
        let path: Vec<automerge::Prop> = parents.map(|p| p.prop).collect();
        // Nearest parent first: [..., record key in its container, container in root].
        if let [
            ..,
            automerge::Prop::Map(record),
            automerge::Prop::Map(container),
        ] = path.as_slice()
        {
            out.insert((container.clone(), record.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ContactId, GoalId, InteractionId, ProjectId};

    /// The contact reader before [`Fields`]: one `get` per field (the reference the one-walk
    /// reader is held equal to).
    fn read_contact_by_key(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Contact> {
        Ok(Contact {
            id: parse_id(id, "contacts")?,
            name: get_str(doc, obj, "name")?.unwrap_or_default(),
            given_name: get_str(doc, obj, "given_name")?,
            family_name: get_str(doc, obj, "family_name")?,
            organisation: get_str(doc, obj, "organisation")?,
            role: get_str(doc, obj, "role")?,
            discipline: get_str(doc, obj, "discipline")?,
            seniority: get_parsed(doc, obj, "seniority")?.unwrap_or(Seniority::Unknown),
            inside_org: get_bool(doc, obj, "inside_org")?,
            circles: get_set(doc, obj, "circles")?,
            tags: get_set(doc, obj, "tags")?,
            emails: get_points(doc, obj, "emails")?,
            phones: get_points(doc, obj, "phones")?,
            urls: get_set(doc, obj, "urls")?,
            how_we_met: get_str(doc, obj, "how_we_met")?,
            first_met: get_parsed::<NaiveDate>(doc, obj, "first_met")?,
            birthday: get_str(doc, obj, "birthday")?
                .map(|s| parse_partial_date(&s, "birthday"))
                .transpose()?,
            notes: get_text(doc, obj, "notes")?,
            cadence_days: u32_of(get_int(doc, obj, "cadence_days")?, "cadence_days")?,
            created_ms: get_i64_req(doc, obj, "created_ms")?,
            updated_ms: get_i64_req(doc, obj, "updated_ms")?,
            archived: get_bool(doc, obj, "archived")?.unwrap_or(false),
            merged_into: get_parsed(doc, obj, "merged_into")?,
            import_keys: get_set(doc, obj, "import_keys")?,
            merge_base: get_points(doc, obj, "merge_base")?
                .into_iter()
                .map(|p| (p.value, p.label))
                .collect(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        })
    }

    /// The interaction reader before [`Fields`], as above.
    fn read_interaction_by_key(doc: &AutoCommit, obj: &ObjId, id: &str) -> R<Interaction> {
        let notes_all = doc.get_all(obj, "notes").map_err(am("notes"))?;
        let notes = get_str(doc, obj, "notes")?.unwrap_or_default();
        let mut notes_conflicts: Vec<String> = notes_all
            .iter()
            .filter_map(|(v, _)| match v {
                Value::Scalar(s) => s.as_str().map(str::to_string),
                Value::Object(_) => None,
            })
            .filter(|v| *v != notes)
            .collect();
        notes_conflicts.sort();
        notes_conflicts.dedup();

        let mut exchanges = Vec::new();
        if let Some(map) = get_map(doc, obj, "exchanges")? {
            for k in doc.keys(&map).collect::<Vec<_>>() {
                let path = format!("exchanges/{k}");
                let ex = get_map(doc, &map, &k)?.ok_or_else(|| bad(&path, "expected a map"))?;
                exchanges.push(Exchange {
                    id: parse_id::<ExchangeId>(&k, &path)?,
                    what: get_parsed::<ExchangeWhat>(doc, &ex, "what")?
                        .ok_or_else(|| bad(&path, "missing 'what'"))?,
                    direction: get_parsed::<Direction>(doc, &ex, "direction")?
                        .ok_or_else(|| bad(&path, "missing 'direction'"))?,
                    with: get_parsed(doc, &ex, "with")?,
                });
            }
        }
        let mut follow_ups = BTreeMap::new();
        if let Some(map) = get_map(doc, obj, "follow_ups")? {
            for k in doc.keys(&map).collect::<Vec<_>>() {
                let path = format!("follow_ups/{k}");
                let fu = get_map(doc, &map, &k)?.ok_or_else(|| bad(&path, "expected a map"))?;
                let fid: FollowUpId = parse_id(&k, &path)?;
                follow_ups.insert(
                    fid,
                    FollowUp {
                        id: fid,
                        text: get_str(doc, &fu, "text")?.unwrap_or_default(),
                        due: get_parsed::<NaiveDate>(doc, &fu, "due")?,
                        done_ms: get_int(doc, &fu, "done_ms")?,
                    },
                );
            }
        }
        Ok(Interaction {
            id: parse_id(id, "interactions")?,
            at_ms: get_i64_req(doc, obj, "at_ms")?,
            offset_minutes: i16::try_from(get_int(doc, obj, "offset_minutes")?.unwrap_or(0))
                .map_err(|_| bad("offset_minutes", "out of range"))?,
            kind: get_parsed(doc, obj, "kind")?.unwrap_or(InteractionKind::Other),
            initiator: get_parsed(doc, obj, "initiator")?.unwrap_or(Initiator::Unknown),
            participants: get_set(doc, obj, "participants")?,
            summary: get_str(doc, obj, "summary")?.unwrap_or_default(),
            notes,
            notes_conflicts,
            project: get_parsed(doc, obj, "project")?,
            exchanges,
            follow_ups,
            created_ms: get_i64_req(doc, obj, "created_ms")?,
            updated_ms: get_i64_req(doc, obj, "updated_ms")?,
            deleted_ms: get_int(doc, obj, "deleted_ms")?,
            event: read_event_ref_by_key(doc, obj)?,
        })
    }

    /// The logged calendar event: three flat scalars, absent in documents written before meetings
    /// (docs/SCHEMA.md), so old documents read as "no event".
    fn read_event_ref_by_key(doc: &AutoCommit, obj: &ObjId) -> R<Option<EventRef>> {
        let (Some(source), Some(uid)) = (
            get_str(doc, obj, EVENT_SOURCE)?,
            get_str(doc, obj, EVENT_UID)?,
        ) else {
            return Ok(None);
        };
        Ok(Some(EventRef {
            source,
            uid,
            recurrence_id: get_str(doc, obj, EVENT_RECURRENCE_ID)?,
        }))
    }

    /// Documents written before meetings (no event keys, no flat settings keys) still load:
    /// the layout is built key by key as the v1 writer laid it out, then read by this code.
    #[test]
    fn documents_from_before_meetings_still_load() {
        let actor = ActorId::from(&[9u8; 16][..]);
        let mut log = new_document(DocKind::Log, &actor).unwrap();
        let parent = container(&log, INTERACTIONS).unwrap();
        let id = "01HZZZZZZZZZZZZZZZZZZZZZZY";
        let obj = log.put_object(&parent, id, ObjType::Map).unwrap();
        for (k, v) in [
            ("kind", "meeting"),
            ("initiator", "me"),
            ("summary", "Project sync"),
            ("notes", "n"),
        ] {
            log.put(&obj, k, v).unwrap();
        }
        for (k, v) in [
            ("at_ms", 1_700_000_000_000_i64),
            ("offset_minutes", 60),
            ("created_ms", 1),
            ("updated_ms", 2),
        ] {
            log.put(&obj, k, v).unwrap();
        }
        let parts = log.put_object(&obj, "participants", ObjType::Map).unwrap();
        log.put(&parts, "01HZZZZZZZZZZZZZZZZZZZZZZZ", true).unwrap();
        let saved = log.save();
        let log = AutoCommit::load(&saved).unwrap();
        let i =
            read_interaction(&log, &record(&log, INTERACTIONS, id).unwrap().unwrap(), id).unwrap();
        assert_eq!(
            (i.summary.as_str(), i.event.as_ref(), i.participants.len()),
            ("Project sync", None, 1)
        );

        let mut main = new_document(DocKind::Main, &actor).unwrap();
        let settings = container(&main, SETTINGS).unwrap();
        main.put(&settings, "my_organisation", "Kith").unwrap();
        main.put(&settings, "core_size", 12_i64).unwrap();
        let main = AutoCommit::load(&main.save()).unwrap();
        let s = read_settings(&main).unwrap();
        assert_eq!(
            (s.my_organisation.as_deref(), s.core_size),
            (Some("Kith"), 12)
        );
        assert!(s.my_emails.is_empty() && s.dismissed_events.is_empty());
    }

    /// The meeting fields round-trip, and a dismissed key of any strings reads back.
    #[test]
    fn meeting_fields_round_trip() {
        let actor = ActorId::from(&[9u8; 16][..]);
        let mut main = new_document(DocKind::Main, &actor).unwrap();
        let mut s = Settings::default();
        s.my_emails.insert("me@example.com".into());
        let odd = EventRef {
            source: "ics".into(),
            uid: "a\"b:c,d;e\u{1f}".into(),
            recurrence_id: Some("20260101".into()),
        };
        s.dismissed_events.insert(odd, 5);
        s.dismissed_events.insert(
            EventRef {
                source: "android:3".into(),
                uid: "42".into(),
                recurrence_id: None,
            },
            6,
        );
        write_settings(&mut main, &Settings::default(), &s).unwrap();
        assert_eq!(read_settings(&main).unwrap(), s);
        let mut less = s.clone();
        less.dismissed_events.pop_first();
        less.my_emails.clear();
        write_settings(&mut main, &s, &less).unwrap();
        assert_eq!(read_settings(&main).unwrap(), less);
    }
    use proptest::collection::{btree_map, btree_set};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 éüß,.]{0,20}"
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        proptest::option::of("[a-zA-Z0-9 é]{1,12}")
    }

    fn id128() -> impl Strategy<Value = u128> {
        // Valid ULIDs: timestamp within 48 bits.
        (0u64..(1u64 << 47), any::<u64>()).prop_map(|(t, r)| (u128::from(t) << 80) | u128::from(r))
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (1990i32..2040, 1u32..=12, 1u32..=28)
            .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    fn points() -> impl Strategy<Value = Vec<ContactPoint>> {
        btree_map("[a-z0-9@.+]{1,12}", "[a-z]{0,6}", 0..4).prop_map(|m| {
            m.into_iter()
                .map(|(value, label)| ContactPoint { value, label })
                .collect()
        })
    }

    prop_compose! {
        fn contact()(
            id in id128(), name in "[A-Za-z é]{1,20}", given in opt_text(), family in opt_text(),
            org in opt_text(), role in opt_text(), disc in opt_text(),
            sen in proptest::sample::select(Seniority::ALL), inside in proptest::option::of(any::<bool>()),
            circles in btree_set(proptest::sample::select(Circle::ALL), 0..3),
            tags in btree_set("[a-z]{1,8}", 0..4), emails in points(), phones in points(),
            urls in btree_set("[a-z:/.]{1,12}", 0..3), how in opt_text(),
            first_met in proptest::option::of(date()),
            bday in proptest::option::of((proptest::option::of(1900i32..2020), 1u8..=12, 1u8..=28)),
            notes in text(), cadence in proptest::option::of(1u32..400),
            created in 0i64..4_000_000_000_000, updated in 0i64..4_000_000_000_000,
            archived in any::<bool>(), merged in proptest::option::of(id128()),
            keys in btree_set("[a-z:0-9]{1,10}", 0..3),
            base in btree_map("[a-z_]{1,8}", "[a-zA-Z é]{0,10}", 0..3),
        ) -> Contact {
            Contact {
                id: ContactId::from_u128(id), name, given_name: given, family_name: family,
                organisation: org, role, discipline: disc, seniority: sen, inside_org: inside,
                circles, tags, emails, phones, urls, how_we_met: how, first_met,
                birthday: bday.map(|(year, month, day)| PartialDate { year, month, day }),
                notes, cadence_days: cadence, created_ms: created, updated_ms: updated, archived,
                merged_into: merged.map(ContactId::from_u128), import_keys: keys,
                merge_base: base, merged_from: Vec::new(), conflicts: Vec::new(),
            }
        }
    }

    prop_compose! {
        fn interaction()(
            id in id128(), at in -1_000_000_000_000i64..4_000_000_000_000, off in -720i16..840,
            kind in proptest::sample::select(InteractionKind::ALL),
            init in proptest::sample::select(Initiator::ALL),
            parts in btree_set(id128(), 1..4), summary in "[a-z ]{1,20}", notes in text(),
            project in proptest::option::of(id128()),
            exchanges in btree_map(id128(), (proptest::sample::select(ExchangeWhat::ALL),
                proptest::sample::select(Direction::ALL), proptest::option::of(id128())), 0..3),
            fus in btree_map(id128(), ("[a-z ]{1,10}", proptest::option::of(date()),
                proptest::option::of(0i64..4_000_000_000_000)), 0..3),
            created in 0i64..4_000_000_000_000, updated in 0i64..4_000_000_000_000,
            deleted in proptest::option::of(0i64..4_000_000_000_000),
            event in proptest::option::of(("[a-z:0-9]{1,8}", "\\PC{1,20}", proptest::option::of("[0-9TZ]{8,16}"))),
        ) -> Interaction {
            Interaction {
                id: InteractionId::from_u128(id), at_ms: at, offset_minutes: off, kind, initiator: init,
                participants: parts.into_iter().map(ContactId::from_u128).collect(),
                summary, notes, notes_conflicts: vec![], project: project.map(ProjectId::from_u128),
                exchanges: exchanges.into_iter().map(|(id, (what, direction, with))| Exchange {
                    id: ExchangeId::from_u128(id), what, direction, with: with.map(ContactId::from_u128),
                }).collect(),
                follow_ups: fus.into_iter().map(|(id, (text, due, done_ms))| {
                    let id = FollowUpId::from_u128(id);
                    (id, FollowUp { id, text, due, done_ms })
                }).collect(),
                created_ms: created, updated_ms: updated, deleted_ms: deleted,
                event: event.map(|(source, uid, recurrence_id)| EventRef { source, uid, recurrence_id }),
            }
        }
    }

    prop_compose! {
        fn project()(id in id128(), name in "[a-z ]{1,12}", desc in text(),
            status in proptest::sample::select(ProjectStatus::ALL), c in 0i64..1 << 40, u in 0i64..1 << 40) -> Project {
            Project { id: ProjectId::from_u128(id), name, description: desc, status, created_ms: c, updated_ms: u }
        }
    }

    prop_compose! {
        fn goal()(id in id128(), title in "[a-z ]{1,12}", priority in 1u8..=3,
            status in proptest::sample::select(GoalStatus::ALL), contacts in btree_set(id128(), 0..4),
            c in 0i64..1 << 40, u in 0i64..1 << 40) -> Goal {
            Goal { id: GoalId::from_u128(id), title, priority, status,
                contacts: contacts.into_iter().map(ContactId::from_u128).collect(), created_ms: c, updated_ms: u }
        }
    }

    prop_compose! {
        fn settings()(org in opt_text(), disc in opt_text(),
            cad in btree_map(proptest::sample::select(Circle::ALL), 1u32..400, 0..3),
            target in proptest::option::of(0.0f64..1.0), core in 1u32..50,
            emails in btree_set("[a-z.]{1,8}@[a-z]{1,6}\\.org", 0..3),
            dismissed in btree_map(("[a-z:0-9]{1,8}", "\\PC{1,20}", proptest::option::of("[0-9TZ]{8,16}")), 0i64..1 << 42, 0..4)) -> Settings {
            let mut cadence_days = Settings::default().cadence_days;
            cadence_days.extend(cad);
            let dismissed_events = dismissed.into_iter()
                .map(|((source, uid, recurrence_id), at)| (EventRef { source, uid, recurrence_id }, at)).collect();
            Settings { my_organisation: org, my_discipline: disc, cadence_days, strategic_target: target, core_size: core,
                my_emails: emails, dismissed_events }
        }
    }

    fn main_doc() -> AutoCommit {
        new_document(DocKind::Main, &ActorId::random()).unwrap()
    }

    fn log_doc() -> AutoCommit {
        new_document(DocKind::Log, &ActorId::random()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `new_contact_as_read` (the bulk import path indexes from it) is
        /// exactly `read_contact` after `write_contact` created the record.
        #[test]
        fn new_contact_as_read_equals_the_read_back(c in contact()) {
            let actor = ActorId::random();
            let mut doc = new_document(DocKind::Main, &actor).unwrap();
            let obj = write_contact(&mut doc, None, &c).unwrap();
            let read = read_contact(&doc, &obj, &c.id.to_string()).unwrap();
            prop_assert_eq!(new_contact_as_read(c).unwrap(), read);
        }

        #[test]
        fn contact_round_trips(a in contact(), b in contact()) {
            let mut doc = main_doc();
            write_contact(&mut doc, None, &a).unwrap();
            let read = read_one(&doc, CONTACTS, &a.id.to_string(), read_contact).unwrap().unwrap();
            prop_assert_eq!(&read, &a);
            // An edit writes only the differences and reads back as the new record.
            let b = Contact { id: a.id, ..b };
            write_contact(&mut doc, Some(&a), &b).unwrap();
            doc.commit();
            let read = read_one(&doc, CONTACTS, &a.id.to_string(), read_contact).unwrap().unwrap();
            prop_assert_eq!(&read, &b);
            // And survives save/load.
            let loaded = AutoCommit::load(&doc.save()).unwrap();
            let read = read_one(&loaded, CONTACTS, &a.id.to_string(), read_contact).unwrap().unwrap();
            prop_assert_eq!(read, b);
        }

        #[test]
        fn interaction_round_trips(a in interaction(), b in interaction()) {
            let mut doc = log_doc();
            write_interaction(&mut doc, None, &a).unwrap();
            let read = read_one(&doc, INTERACTIONS, &a.id.to_string(), read_interaction).unwrap().unwrap();
            prop_assert_eq!(&read, &a);
            let b = Interaction { id: a.id, ..b };
            write_interaction(&mut doc, Some(&a), &b).unwrap();
            let read = read_one(&doc, INTERACTIONS, &a.id.to_string(), read_interaction).unwrap().unwrap();
            prop_assert_eq!(read, b);
        }

        #[test]
        fn project_goal_settings_round_trip(p in project(), p2 in project(), g in goal(), g2 in goal(), s in settings()) {
            let mut doc = main_doc();
            write_project(&mut doc, None, &p).unwrap();
            prop_assert_eq!(read_one(&doc, PROJECTS, &p.id.to_string(), read_project).unwrap().unwrap(), p.clone());
            let p2 = Project { id: p.id, ..p2 };
            write_project(&mut doc, Some(&p), &p2).unwrap();
            prop_assert_eq!(read_one(&doc, PROJECTS, &p.id.to_string(), read_project).unwrap().unwrap(), p2);
            write_goal(&mut doc, None, &g).unwrap();
            prop_assert_eq!(read_one(&doc, GOALS, &g.id.to_string(), read_goal).unwrap().unwrap(), g.clone());
            let g2 = Goal { id: g.id, ..g2 };
            write_goal(&mut doc, Some(&g), &g2).unwrap();
            prop_assert_eq!(read_one(&doc, GOALS, &g.id.to_string(), read_goal).unwrap().unwrap(), g2);
            let defaults = read_settings(&doc).unwrap();
            prop_assert_eq!(&defaults, &Settings::default());
            write_settings(&mut doc, &defaults, &s).unwrap();
            prop_assert_eq!(read_settings(&doc).unwrap(), s);
        }
    }

    /// Cases for the reader-equivalence proptest: `floor`, raised by `PROPTEST_CASES`.
    fn cases(floor: u32) -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(floor, |n: u32| n.max(floor))
    }

    /// A value a hostile or buggy writer may put under any key.
    #[derive(Debug, Clone)]
    enum Odd {
        Int(i64),
        Uint(u64),
        F64(f64),
        Bool(bool),
        Str(String),
        Null,
        Counter(i64),
        Timestamp(i64),
        Map,
        Text,
        Delete,
    }

    fn odd() -> impl Strategy<Value = Odd> {
        prop_oneof![
            any::<i64>().prop_map(Odd::Int),
            any::<u64>().prop_map(Odd::Uint),
            (-1e9f64..1e9).prop_map(Odd::F64),
            any::<bool>().prop_map(Odd::Bool),
            "[a-z0-9-]{0,10}".prop_map(Odd::Str),
            Just(Odd::Null),
            any::<i32>().prop_map(|v| Odd::Counter(i64::from(v))),
            any::<i64>().prop_map(Odd::Timestamp),
            Just(Odd::Map),
            Just(Odd::Text),
            Just(Odd::Delete),
        ]
    }

    /// Puts `v` under `key` of `obj`, or under `key` of the nested map `sub` when it exists.
    fn put_odd(doc: &mut AutoCommit, obj: &ObjId, sub: Option<&str>, key: &str, v: &Odd) {
        let obj = match sub {
            Some(sub) => match doc.get(obj, sub).unwrap() {
                Some((Value::Object(ObjType::Map), id)) => id,
                _ => return,
            },
            None => obj.clone(),
        };
        match v {
            Odd::Int(x) => doc.put(&obj, key, *x).unwrap(),
            Odd::Uint(x) => doc.put(&obj, key, *x).unwrap(),
            Odd::F64(x) => doc.put(&obj, key, *x).unwrap(),
            Odd::Bool(x) => doc.put(&obj, key, *x).unwrap(),
            Odd::Str(x) => doc.put(&obj, key, x.as_str()).unwrap(),
            Odd::Null => doc.put(&obj, key, ScalarValue::Null).unwrap(),
            Odd::Counter(x) => {
                doc.put(&obj, key, ScalarValue::counter(*x)).unwrap();
                doc.increment(&obj, key, 5).unwrap();
            }
            Odd::Timestamp(x) => doc.put(&obj, key, ScalarValue::Timestamp(*x)).unwrap(),
            Odd::Map => {
                let m = doc.put_object(&obj, key, ObjType::Map).unwrap();
                doc.put(&m, "x", 1i64).unwrap();
            }
            Odd::Text => {
                let t = doc.put_object(&obj, key, ObjType::Text).unwrap();
                doc.splice_text(&t, 0, 0, "t").unwrap();
            }
            Odd::Delete => {
                let _ = doc.delete(&obj, key);
            }
        }
    }

    /// Both readers gave the same record, or failed with the same message.
    fn same<T: PartialEq + std::fmt::Debug>(new: R<T>, old: R<T>) -> Result<(), TestCaseError> {
        match (new, old) {
            (Ok(n), Ok(o)) => prop_assert_eq!(n, o),
            (Err(n), Err(o)) => prop_assert_eq!(n.to_string(), o.to_string()),
            (n, o) => prop_assert!(false, "one-walk reader {n:?}, per-key reader {o:?}"),
        }
        Ok(())
    }

    /// Top-level keys of an interaction, and nested keys a corruption may hit.
    const INTERACTION_KEYS: &[(Option<&str>, &str)] = &[
        (None, "notes"),
        (None, "summary"),
        (None, "at_ms"),
        (None, "offset_minutes"),
        (None, "kind"),
        (None, "initiator"),
        (None, "participants"),
        (None, "project"),
        (None, "exchanges"),
        (None, "follow_ups"),
        (None, "created_ms"),
        (None, "deleted_ms"),
        (None, EVENT_SOURCE),
        (None, EVENT_UID),
        (None, EVENT_RECURRENCE_ID),
        (Some("participants"), "01HZZZZZZZZZZZZZZZZZZZZZZZ"),
        (Some("exchanges"), "bad"),
        (Some("follow_ups"), "01HZZZZZZZZZZZZZZZZZZZZZZZ"),
    ];

    const CONTACT_KEYS: &[(Option<&str>, &str)] = &[
        (None, "name"),
        (None, "given_name"),
        (None, "seniority"),
        (None, "inside_org"),
        (None, "circles"),
        (None, "tags"),
        (None, "emails"),
        (None, "phones"),
        (None, "urls"),
        (None, "first_met"),
        (None, "birthday"),
        (None, "notes"),
        (None, "cadence_days"),
        (None, "created_ms"),
        (None, "archived"),
        (None, "merged_into"),
        (None, "merge_base"),
        (Some("emails"), "x@example.org"),
        (Some("tags"), "t"),
    ];

    /// Two devices edit one record offline (each from the same base, maybe one also
    /// writes an odd value under some key), then merge in both orders.
    fn merged_pair(
        base: &mut AutoCommit,
        edit_a: impl FnOnce(&mut AutoCommit),
        edit_b: impl FnOnce(&mut AutoCommit),
    ) -> (AutoCommit, AutoCommit) {
        base.commit();
        let mut a = base.fork().with_actor(ActorId::random());
        let mut b = base.fork().with_actor(ActorId::random());
        edit_a(&mut a);
        edit_b(&mut b);
        a.commit();
        b.commit();
        let mut ab = a.fork();
        ab.merge(&mut b.clone()).unwrap();
        let mut ba = b.fork();
        ba.merge(&mut a).unwrap();
        (ab, ba)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(64)))]

        /// The one-walk interaction reader returns exactly what the per-key reader did
        /// (record or error) on records edited concurrently on two devices, with
        /// conflicting values in the same fields and wrong-typed values anywhere.
        #[test]
        fn one_walk_interaction_reader_equals_the_per_key_reader(
            base in interaction(), a in interaction(), b in interaction(),
            odd_a in proptest::option::of((proptest::sample::select(INTERACTION_KEYS), odd())),
            odd_b in proptest::option::of((proptest::sample::select(INTERACTION_KEYS), odd())),
        ) {
            let mut doc = log_doc();
            write_interaction(&mut doc, None, &base).unwrap();
            let obj = record(&doc, INTERACTIONS, &base.id.to_string()).unwrap().unwrap();
            let (a, b) = (Interaction { id: base.id, ..a }, Interaction { id: base.id, ..b });
            let (mut ab, ba) = merged_pair(
                &mut doc,
                |d| {
                    write_interaction(d, Some(&base), &a).unwrap();
                    if let Some(((sub, key), v)) = &odd_a { put_odd(d, &obj, *sub, key, v); }
                },
                |d| {
                    write_interaction(d, Some(&base), &b).unwrap();
                    if let Some(((sub, key), v)) = &odd_b { put_odd(d, &obj, *sub, key, v); }
                },
            );
            let id = base.id.to_string();
            let loaded = AutoCommit::load(&ab.save()).unwrap();
            for d in [&ab, &ba, &loaded] {
                same(read_interaction(d, &obj, &id), read_interaction_by_key(d, &obj, &id))?;
                same(
                    read_all(d, INTERACTIONS, read_interaction),
                    read_all(d, INTERACTIONS, read_interaction_by_key),
                )?;
            }
            // Both orders of the merge read the same.
            same(read_interaction(&ab, &obj, &id), read_interaction(&ba, &obj, &id))?;
        }

        /// The same for contacts (collaborative notes, sets, contact points).
        #[test]
        fn one_walk_contact_reader_equals_the_per_key_reader(
            base in contact(), a in contact(), b in contact(),
            odd_a in proptest::option::of((proptest::sample::select(CONTACT_KEYS), odd())),
            odd_b in proptest::option::of((proptest::sample::select(CONTACT_KEYS), odd())),
        ) {
            let mut doc = main_doc();
            let obj = write_contact(&mut doc, None, &base).unwrap();
            let (a, b) = (Contact { id: base.id, ..a }, Contact { id: base.id, ..b });
            let (mut ab, ba) = merged_pair(
                &mut doc,
                |d| {
                    write_contact(d, Some(&base), &a).unwrap();
                    if let Some(((sub, key), v)) = &odd_a { put_odd(d, &obj, *sub, key, v); }
                },
                |d| {
                    write_contact(d, Some(&base), &b).unwrap();
                    if let Some(((sub, key), v)) = &odd_b { put_odd(d, &obj, *sub, key, v); }
                },
            );
            let id = base.id.to_string();
            let loaded = AutoCommit::load(&ab.save()).unwrap();
            for d in [&ab, &ba, &loaded] {
                same(read_contact(d, &obj, &id), read_contact_by_key(d, &obj, &id))?;
            }
            same(read_contact(&ab, &obj, &id), read_contact(&ba, &obj, &id))?;
        }
    }

    #[test]
    fn genesis_is_identical_on_every_device() {
        let mut a = main_doc();
        let mut b = main_doc();
        assert_eq!(a.get_heads(), b.get_heads());
        let mut la = log_doc();
        let mut lb = log_doc();
        assert_eq!(la.get_heads(), lb.get_heads());
        assert_ne!(a.get_heads(), la.get_heads());
    }

    #[test]
    fn concurrent_notes_surface_as_conflict_and_a_write_resolves_it() {
        let mut a = log_doc();
        let i = Interaction {
            id: InteractionId::new(),
            at_ms: 1,
            offset_minutes: 0,
            kind: InteractionKind::Call,
            initiator: Initiator::Me,
            participants: [ContactId::new()].into(),
            summary: "call".into(),
            notes: "base".into(),
            notes_conflicts: vec![],
            project: None,
            exchanges: vec![],
            follow_ups: BTreeMap::new(),
            created_ms: 1,
            updated_ms: 1,
            deleted_ms: None,
            event: None,
        };
        write_interaction(&mut a, None, &i).unwrap();
        a.commit();
        let mut b = a.fork().with_actor(ActorId::random());
        let ia = Interaction {
            notes: "from a".into(),
            ..i.clone()
        };
        let ib = Interaction {
            notes: "from b".into(),
            ..i.clone()
        };
        write_interaction(&mut a, Some(&i), &ia).unwrap();
        write_interaction(&mut b, Some(&i), &ib).unwrap();
        a.commit();
        b.commit();
        a.merge(&mut b).unwrap();
        let merged = read_one(&a, INTERACTIONS, &i.id.to_string(), read_interaction)
            .unwrap()
            .unwrap();
        let mut all = vec![merged.notes.clone(), merged.notes_conflicts[0].clone()];
        all.sort();
        assert_eq!(all, vec!["from a".to_string(), "from b".to_string()]);
        assert_eq!(merged.notes_conflicts.len(), 1);
        let resolved = Interaction {
            notes: "both".into(),
            notes_conflicts: vec![],
            ..merged.clone()
        };
        write_interaction(&mut a, Some(&merged), &resolved).unwrap();
        let after = read_one(&a, INTERACTIONS, &i.id.to_string(), read_interaction)
            .unwrap()
            .unwrap();
        assert_eq!(after.notes, "both");
        assert!(after.notes_conflicts.is_empty());
    }

    #[test]
    fn newer_schema_and_bad_fields_are_refused() {
        let mut doc = main_doc();
        doc.put(ROOT, "schema", 2u64).unwrap();
        let err = check_schema(&doc, "main").unwrap_err();
        assert!(err.to_string().contains("schema version 2"), "{err}");
        let mut doc = main_doc();
        let contacts = container(&doc, CONTACTS).unwrap();
        let id = ContactId::new().to_string();
        let obj = doc
            .put_object(&contacts, id.as_str(), ObjType::Map)
            .unwrap();
        doc.put(&obj, "name", 7i64).unwrap();
        let err = read_one(&doc, CONTACTS, &id, read_contact).unwrap_err();
        assert!(err.to_string().contains("'name'"), "{err}");
        let obj2 = doc
            .put_object(&contacts, "not-an-id", ObjType::Map)
            .unwrap();
        doc.put(&obj2, "name", "x").unwrap();
        assert!(read_all(&doc, CONTACTS, read_contact).is_err());
    }
}
