//! Deterministic generator of realistic synthetic networks.
//!
//! [`generate`] turns [`SynthParams`] (sizes, a seed, "now", a time span) into
//! a [`SynthNetwork`] of model records: the network of a clinician-manager in a
//! hospital trust. Same parameters, same network, bit for bit (a seeded
//! [`StdRng`] drives every choice, ids included). The CLI demo, the store
//! benchmarks and the insights benchmark all reuse it.
//!
//! How it is shaped, so benchmarks and screenshots look like real use:
//! - contacts: diverse names (some accented), my organisation vs others,
//!   disciplines from medicine to finance, roles by discipline and seniority,
//!   1-2 circles each, tags, emails and phones for most, a cadence for some,
//!   a few archived; some never contacted, some gone dormant;
//! - interactions: tie popularity follows a power law (a few strong ties, a
//!   long tail), times skewed to the recent past within each tie's active
//!   span, during working hours; kinds, initiators, 1-4 participants, a one-line
//!   summary, ~300-character notes, exchanges of the five functions (each tie
//!   leans to giving or receiving), follow-ups (mostly done, some open, some
//!   overdue), project work linked to projects, a few deleted (tombstoned);
//! - goals with priorities and linked (mostly strategic) contacts, one of them
//!   with no contact linked yet.
//!
//! Every reference is valid: participants, exchange partners and goal links
//! name generated contacts, projects name generated projects, and interaction
//! ids carry their interaction's time (like `InteractionId::new_at`).

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use kith_model::ids::{ContactId, ExchangeId, FollowUpId, GoalId, InteractionId, ProjectId};
use kith_model::model::{
    Circle, Contact, ContactPoint, Direction, Exchange, ExchangeWhat, FollowUp, Goal, GoalStatus,
    Initiator, Interaction, InteractionKind, Project, ProjectStatus, Seniority, Settings,
    TimestampMs,
};

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// Upper bounds on what one call generates (a bad argument must not exhaust memory).
pub const CONTACTS_MAX: usize = 1_000_000;
/// See [`CONTACTS_MAX`].
pub const INTERACTIONS_MAX: usize = 5_000_000;
/// See [`CONTACTS_MAX`].
pub const YEARS_MAX: u32 = 30;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthParams {
    /// Contacts (at most [`CONTACTS_MAX`]).
    pub contacts: usize,
    /// Interactions (at most [`INTERACTIONS_MAX`]; none without contacts).
    pub interactions: usize,
    /// Seed: equal seeds give equal networks.
    pub seed: u64,
    /// "Now": nothing is dated after it.
    pub now_ms: TimestampMs,
    /// Span of the history before now, in years (1 to [`YEARS_MAX`]).
    pub years: u32,
    /// Projects (0 to 12).
    pub projects: usize,
    /// Goals (0 to 6).
    pub goals: usize,
}

impl SynthParams {
    /// `contacts` and `interactions` over 3 years before `now_ms`, 8 projects, 5 goals.
    pub fn new(contacts: usize, interactions: usize, seed: u64, now_ms: TimestampMs) -> Self {
        SynthParams {
            contacts,
            interactions,
            seed,
            now_ms,
            years: 3,
            projects: 8,
            goals: 5,
        }
    }
}

/// A generated network.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthNetwork {
    /// Settings naming [`MY_ORGANISATION`] and [`MY_DISCIPLINE`].
    pub settings: Settings,
    /// Every contact, a few of them archived.
    pub contacts: Vec<Contact>,
    /// Sorted by time.
    pub interactions: Vec<Interaction>,
    /// Projects that project-work interactions link to.
    pub projects: Vec<Project>,
    /// Goals, with links to (mostly strategic) contacts.
    pub goals: Vec<Goal>,
}

/// My organisation in generated networks.
pub const MY_ORGANISATION: &str = "Northbridge University Hospitals";
/// My discipline in generated networks.
pub const MY_DISCIPLINE: &str = "medicine";

#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Amélie", "José", "Zoë", "Søren", "Ngozi", "Priya", "Wei", "Yuki", "Oluwaseun", "Fatima",
    "Mateus", "Chloé", "Björn", "Aoife", "Łukasz", "Agnieszka", "Inês", "Hamid", "Mei", "Kwame",
    "Siobhán", "François", "Ana", "Raúl", "Leila", "Tomás", "Élodie", "Jürgen", "Anaïs",
    "Rahul", "Sinéad", "Thandiwe", "Kenji", "Marta", "Omar", "Ravi", "Grace", "Emily", "James",
    "Olivia", "Mohammed", "Sarah", "David", "Laura", "Michael", "Hannah", "Daniel", "Sophie",
    "Ahmed", "Aisha", "Lucas", "Nora", "Pedro", "Ingrid", "Chidi", "Ewa", "Dmitri", "Noémie",
    "Ayesha", "Tariq", "Rosa", "Catalina", "Ibrahim", "Helen", "Peter", "Joanna", "Samuel",
    "Rebecca", "Mariana", "Kofi", "Anya", "Farah", "Gabriel", "Imogen", "Rhys", "Niamh",
    "Arjun", "Lina",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Okafor", "Müller", "García", "Nguyen", "Kowalski", "O'Brien", "Silva", "Patel", "Haddad",
    "Johansson", "Rossi", "Kim", "Ferreira", "Dubois", "Mensah", "Nakamura", "Smith", "Jones",
    "Williams", "Brown", "Taylor", "Davies", "Evans", "Wilson", "Thomas", "Roberts", "Khan",
    "Ali", "Chen", "Singh", "Lefèvre", "Ó Súilleabháin", "Núñez", "Sørensen", "Ødegaard",
    "Weiß", "Çelik", "Yılmaz", "Novák", "Dvořák", "Popescu", "Adeyemi", "Abubakar", "Moreau",
    "Costa", "Santos", "Walsh", "Murphy", "Byrne", "Hughes", "Edwards", "Hassan", "Rahman",
    "Begum", "Wójcik", "Lindqvist", "Mwangi", "Osei", "Fernández", "Gómez", "Marchetti",
    "Zhang", "Liu",
];

/// (name, email domain, inside my organisation)
const ORGANISATIONS: &[(&str, &str)] = &[
    ("Riverside Community Health", "riverside-health.example"),
    ("Kingsway University", "kingsway.example.ac.uk"),
    ("Meridian Health Board", "meridian-hb.example"),
    ("Harbour Primary Care Network", "harbour-pcn.example"),
    ("Cedar Pharma", "cedarpharma.example"),
    ("Open Health Informatics", "openhealth.example"),
    ("Regional Ambulance Service", "ras.example"),
    ("Health Innovation Network South", "hin-south.example"),
    ("Hillcrest Hospice", "hillcrest.example"),
    ("Royal College of Physicians", "rcp.example"),
    ("Lakeside Medical School", "lakeside-med.example.ac.uk"),
    ("St Brendan's Hospital", "stbrendans.example"),
];
const MY_DOMAIN: &str = "northbridge.example.nhs.uk";

/// (discipline, weight, [senior roles], [peer roles], [junior roles])
type RoleTable = (
    &'static str,
    u32,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);
const DISCIPLINES: &[RoleTable] = &[
    (
        "medicine",
        22,
        &["Medical Director", "Clinical Director"],
        &["Consultant Physician", "Consultant Surgeon", "GP Partner"],
        &["Specialty Registrar", "Foundation Doctor"],
    ),
    (
        "nursing",
        20,
        &["Chief Nurse", "Head of Nursing"],
        &["Ward Sister", "Clinical Nurse Specialist"],
        &["Staff Nurse", "Student Nurse"],
    ),
    (
        "pharmacy",
        7,
        &["Chief Pharmacist"],
        &["Lead Pharmacist"],
        &["Pharmacy Technician", "Rotational Pharmacist"],
    ),
    (
        "allied health",
        10,
        &["Head of Therapies"],
        &["Physiotherapy Lead", "Occupational Therapist"],
        &["Dietitian", "Speech and Language Therapist"],
    ),
    (
        "management",
        12,
        &["Chief Operating Officer", "Divisional Director"],
        &["General Manager", "Service Manager"],
        &["Operational Manager", "Project Officer"],
    ),
    (
        "research",
        8,
        &["Director of Research"],
        &["Senior Lecturer", "Research Fellow"],
        &["Research Nurse", "PhD Student"],
    ),
    (
        "IT",
        6,
        &["Chief Information Officer"],
        &["Clinical Systems Lead", "Data Architect"],
        &["Analyst", "Service Desk Lead"],
    ),
    (
        "finance",
        4,
        &["Finance Director"],
        &["Finance Business Partner"],
        &["Management Accountant"],
    ),
    (
        "HR",
        4,
        &["Director of People"],
        &["HR Business Partner"],
        &["Recruitment Advisor"],
    ),
    (
        "education",
        7,
        &["Director of Medical Education"],
        &["Clinical Educator", "Practice Educator"],
        &["Teaching Fellow"],
    ),
];

#[rustfmt::skip]
const TAGS: &[&str] = &[
    "qi", "board", "alumni", "conference", "research-network", "digital", "committee",
    "teaching", "sepsis", "union", "book-club", "running", "leadership-programme",
];

/// Tag of the few contacts who give candid feedback.
pub const MENTOR_TAG: &str = "mentor";

const HOW_WE_MET: &[&str] = &[
    "Leadership programme cohort",
    "Regional QI collaborative",
    "Medical school alumni dinner",
    "Introduced by a colleague",
    "Conference panel",
    "Joined the same committee",
    "Running club",
    "Worked together on the ward",
];

#[rustfmt::skip]
const TOPICS: &[&str] = &[
    "the sepsis bundle", "winter bed pressures", "the rota gaps", "the e-prescribing rollout",
    "discharge delays", "the staff survey", "a research grant", "the audit results",
    "the new clinic", "recruitment", "the budget round", "teaching sessions",
    "patient feedback", "the digital triage pilot", "mentoring", "the board paper",
];

const NOTE_SENTENCES: &[&str] = &[
    "{first} walked me through {topic} and where the main blockers are right now.",
    "We agreed that the next step is a short paper for the divisional meeting.",
    "{first} offered to introduce me to two people who ran something similar last year.",
    "I shared the latest figures on {topic}; they match what {first} sees on the ground.",
    "There is real appetite for change, but the team is stretched and needs support.",
    "We talked about how {topic} affects nursing and pharmacy differently.",
    "{first} was candid about what did not work last time and why.",
    "Good energy overall; worth keeping {first} close as this develops.",
    "I promised to send the draft before Friday so {first} can comment.",
    "{first} suggested we bring finance in early rather than at the end.",
    "We compared notes on leading through a restructure and what helped.",
    "Useful challenge on my assumptions about {topic}.",
    "{first} is moving to a new role in the spring and wants to stay in touch.",
    "We agreed to meet again once the data for {topic} is in.",
    "Short but useful: clarified who owns the decision on {topic}.",
];

const FOLLOW_UP_TEXTS: &[&str] = &[
    "Send the draft paper",
    "Share the audit slides",
    "Introduce to the research lead",
    "Book a follow-up meeting",
    "Forward the job description",
    "Read the report they recommended",
    "Check the budget figures",
    "Reply about the teaching session",
];

const PROJECTS: &[(&str, &str)] = &[
    (
        "Sepsis pathway QI",
        "Reduce time to antibiotics on the acute wards",
    ),
    (
        "Discharge lounge redesign",
        "Earlier discharges and fewer bed waits",
    ),
    (
        "E-prescribing rollout",
        "Electronic prescribing across medicine and surgery",
    ),
    (
        "Nurse-led clinic pilot",
        "A nurse-led follow-up clinic for heart failure",
    ),
    (
        "Falls prevention collaborative",
        "Regional collaborative on inpatient falls",
    ),
    (
        "Leadership programme cohort 5",
        "Action learning set and shared project",
    ),
    (
        "Antimicrobial audit",
        "Regional audit of antimicrobial prescribing",
    ),
    (
        "Staff wellbeing network",
        "Peer support across the division",
    ),
    ("Virtual ward", "Hospital at home for frailty"),
    (
        "Digital triage pilot",
        "Online triage for outpatient referrals",
    ),
    (
        "Research capability fund",
        "Bid for protected research time",
    ),
    (
        "Medical education fellowship",
        "Simulation teaching programme",
    ),
];

const GOALS: &[(&str, u8)] = &[
    ("Lead the regional sepsis pathway", 1),
    ("Get the nurse-led clinic funded", 1),
    ("Publish the discharge audit", 2),
    ("Prepare for a clinical director role", 2),
    ("Build links with the medical school", 3),
    ("Bring digital triage to outpatients", 2),
];

/// A ULID's bits with timestamp `ms` and 80 random bits from `rng`.
fn ulid_bits(ms: TimestampMs, rng: &mut StdRng) -> u128 {
    let ms = u128::from(u64::try_from(ms).unwrap_or(0).min((1u64 << 48) - 1));
    (ms << 80) | (rng.r#gen::<u128>() & ((1u128 << 80) - 1))
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

/// Index drawn with probability proportional to `weights` (not all zero).
fn weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Lower-case ASCII form of a name part for an email address.
fn ascii_slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars().flat_map(char::to_lowercase) {
        let folded = match ch {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' => "a",
            'é' | 'è' | 'ê' | 'ë' => "e",
            'í' | 'ì' | 'î' | 'ï' | 'ı' => "i",
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
            'ú' | 'ù' | 'û' | 'ü' => "u",
            'ç' | 'č' => "c",
            'ñ' => "n",
            'ł' => "l",
            'ß' => "ss",
            'š' | 'ş' => "s",
            'ž' => "z",
            'ř' => "r",
            'ğ' => "g",
            'ý' => "y",
            'æ' => "ae",
            'œ' => "oe",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(folded);
    }
    out
}

fn date_of(ms: TimestampMs) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.date_naive())
        .unwrap_or_default()
}

/// UK-like offset: +60 minutes from April to October.
fn offset_for(ms: TimestampMs) -> i16 {
    if (4..=10).contains(&date_of(ms).month()) {
        60
    } else {
        0
    }
}

/// Per-contact generation state that is not part of the record.
struct Tie {
    weight: f64,
    from_ms: TimestampMs,
    until_ms: TimestampMs,
    gives: f64,
    project: usize,
}

/// Generates the network described by `params` (sizes clamped to the maxima).
pub fn generate(params: &SynthParams) -> SynthNetwork {
    let mut rng = StdRng::seed_from_u64(params.seed);
    let now = params.now_ms;
    let years = params.years.clamp(1, YEARS_MAX);
    let start = now.saturating_sub(i64::from(years) * 365 * DAY_MS);
    let n_contacts = params.contacts.min(CONTACTS_MAX);
    let n_interactions = if n_contacts == 0 {
        0
    } else {
        params.interactions.min(INTERACTIONS_MAX)
    };

    let settings = Settings {
        my_organisation: Some(MY_ORGANISATION.to_string()),
        my_discipline: Some(MY_DISCIPLINE.to_string()),
        strategic_target: Some(0.3),
        ..Settings::default()
    };

    let projects: Vec<Project> = PROJECTS
        .iter()
        .take(params.projects.min(PROJECTS.len()))
        .enumerate()
        .map(|(i, (name, description))| {
            let created_ms = start + rng.gen_range(0..(now - start).max(1)) / 2;
            Project {
                id: ProjectId::from_u128(ulid_bits(created_ms, &mut rng)),
                name: (*name).to_string(),
                description: (*description).to_string(),
                status: match i % 5 {
                    3 => ProjectStatus::Done,
                    4 => ProjectStatus::Paused,
                    _ => ProjectStatus::Active,
                },
                created_ms,
                updated_ms: created_ms,
            }
        })
        .collect();

    let (contacts, ties) = generate_contacts(&mut rng, n_contacts, start, now);
    let interactions =
        generate_interactions(&mut rng, n_interactions, &contacts, &ties, &projects, now);
    let goals = generate_goals(&mut rng, params.goals, &contacts, start, now);

    SynthNetwork {
        settings,
        contacts,
        interactions,
        projects,
        goals,
    }
}

fn generate_contacts(
    rng: &mut StdRng,
    n: usize,
    start: TimestampMs,
    now: TimestampMs,
) -> (Vec<Contact>, Vec<Tie>) {
    let span = (now - start).max(1);
    let weights: Vec<u32> = DISCIPLINES.iter().map(|d| d.1).collect();
    // A random popularity rank per contact: weight 1 / (rank + 1)^0.8.
    let mut ranks: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.gen_range(0..=i);
        ranks.swap(i, j);
    }
    let mut contacts = Vec::with_capacity(n);
    let mut ties = Vec::with_capacity(n);
    for &rank in ranks.iter().take(n) {
        let first = *pick(rng, FIRST_NAMES);
        let last = *pick(rng, LAST_NAMES);
        let inside = match rng.gen_range(0..100) {
            0..=54 => Some(true),
            55..=91 => Some(false),
            _ => None,
        };
        let (organisation, domain) = match inside {
            Some(true) => (Some(MY_ORGANISATION), MY_DOMAIN),
            _ => {
                let (o, d) = *pick(rng, ORGANISATIONS);
                (
                    if inside.is_none() && rng.gen_bool(0.5) {
                        None
                    } else {
                        Some(o)
                    },
                    d,
                )
            }
        };
        let d = weighted(rng, &weights);
        let (discipline, _, senior, peer, junior) = DISCIPLINES[d];
        let seniority = match rng.gen_range(0..100) {
            0..=21 => Seniority::Senior,
            22..=66 => Seniority::Peer,
            67..=89 => Seniority::Junior,
            _ => Seniority::Unknown,
        };
        let role = match seniority {
            Seniority::Senior => Some(*pick(rng, senior)),
            Seniority::Peer => Some(*pick(rng, peer)),
            Seniority::Junior => Some(*pick(rng, junior)),
            Seniority::Unknown => None,
        };
        let mut circles = BTreeSet::new();
        if inside == Some(true) {
            if rng.gen_bool(0.85) {
                circles.insert(Circle::Operational);
            }
            if circles.is_empty() || rng.gen_bool(0.15) {
                circles.insert(Circle::Strategic);
            }
        } else {
            circles.insert(if rng.gen_bool(0.6) {
                Circle::Personal
            } else {
                Circle::Strategic
            });
            if rng.gen_bool(0.12) {
                circles.insert(Circle::Strategic);
                circles.insert(Circle::Personal);
            }
        }
        let n_tags = rng.gen_range(0..=3);
        let mut tags: BTreeSet<String> = (0..n_tags)
            .map(|_| (*pick(rng, TAGS)).to_string())
            .collect();
        // The strongest tie is a mentor; a few others are too.
        if rank == 0 || rng.gen_bool(0.004) {
            tags.insert(MENTOR_TAG.to_string());
        }
        let emails = if rng.gen_bool(0.85) {
            vec![ContactPoint {
                value: format!("{}.{}@{}", ascii_slug(first), ascii_slug(last), domain),
                label: "work".to_string(),
            }]
        } else {
            Vec::new()
        };
        let phones = if rng.gen_bool(0.7) {
            vec![ContactPoint {
                value: format!("+44 7700 900{:03}", rng.gen_range(0..1000)),
                label: "mobile".to_string(),
            }]
        } else {
            Vec::new()
        };
        // Most contacts were added early (an import), the rest over time.
        let u: f64 = rng.r#gen();
        let created_ms = start + (span as f64 * u * u * 0.9) as i64;
        let cadence_days = rng
            .gen_bool(0.2)
            .then(|| *pick(rng, &[14u32, 30, 60, 90, 180]));
        let archived = rng.gen_bool(0.02);
        let circle_factor = if circles.contains(&Circle::Operational) {
            1.3
        } else if circles.contains(&Circle::Personal) {
            0.7
        } else {
            1.0
        };
        let mut weight = circle_factor / ((rank + 1) as f64).powf(0.8);
        let mut until_ms = now;
        match rng.gen_range(0..100) {
            // Never contacted.
            0..=3 => weight = 0.0,
            // Gone dormant: nothing in the last 13 months or more.
            4..=15 if created_ms < now - 500 * DAY_MS => {
                until_ms = now - rng.gen_range(400..=480) * DAY_MS;
            }
            _ => {}
        }
        let id = ContactId::from_u128(ulid_bits(created_ms, rng));
        let notes = if rng.gen_bool(0.3) {
            format!(
                "Met through {}. Interested in {}.",
                pick(rng, HOW_WE_MET),
                pick(rng, TOPICS)
            )
        } else {
            String::new()
        };
        contacts.push(Contact {
            id,
            name: format!("{first} {last}"),
            given_name: Some(first.to_string()),
            family_name: Some(last.to_string()),
            organisation: organisation.map(str::to_string),
            role: role.map(str::to_string),
            discipline: (!rng.gen_bool(0.07)).then(|| discipline.to_string()),
            seniority,
            inside_org: inside,
            circles,
            tags,
            emails,
            phones,
            urls: BTreeSet::new(),
            how_we_met: rng
                .gen_bool(0.4)
                .then(|| (*pick(rng, HOW_WE_MET)).to_string()),
            first_met: rng.gen_bool(0.3).then(|| date_of(created_ms)),
            birthday: None,
            notes,
            cadence_days,
            created_ms,
            updated_ms: created_ms,
            archived,
            merged_into: None,
            import_keys: BTreeSet::new(),
            merge_base: Default::default(),
            merged_from: Vec::new(),
            conflicts: Vec::new(),
        });
        ties.push(Tie {
            weight,
            from_ms: created_ms,
            until_ms: until_ms.max(created_ms),
            gives: rng.gen_range(0.25..0.75),
            project: rng.gen_range(0..PROJECTS.len()),
        });
    }
    (contacts, ties)
}

/// Notes of about 300 characters from the sentence pool.
fn notes(rng: &mut StdRng, first: &str, topic: &str) -> String {
    let mut out = String::with_capacity(360);
    for _ in 0..12 {
        let s = pick(rng, NOTE_SENTENCES)
            .replace("{first}", first)
            .replace("{topic}", topic);
        let len = out.chars().count();
        if len >= 260 {
            break;
        }
        if len > 0 && len + 1 + s.chars().count() > 340 {
            continue;
        }
        if len > 0 {
            out.push(' ');
        }
        out.push_str(&s);
    }
    out
}

fn summary(
    rng: &mut StdRng,
    kind: InteractionKind,
    first: &str,
    topic: &str,
    project: Option<&str>,
) -> String {
    match (kind, project) {
        (InteractionKind::ProjectWork, Some(p)) => format!("{p}: working session"),
        (_, Some(p)) => format!("{p} catch-up with {first}"),
        (InteractionKind::Meeting, None) => format!("Meeting with {first} about {topic}"),
        (InteractionKind::Call, None) => format!("Call with {first} on {topic}"),
        (InteractionKind::Message, None) => format!("Messages with {first} about {topic}"),
        (InteractionKind::Email, None) => format!("Email thread on {topic}"),
        (InteractionKind::Event, None) => (*pick(
            rng,
            &[
                "Regional QI network event",
                "Leadership forum",
                "Grand round",
                "Alumni evening",
            ],
        ))
        .to_string(),
        (InteractionKind::Meal, None) => format!("Lunch with {first}"),
        (InteractionKind::ProjectWork, None) => format!("Working on {topic} with {first}"),
        (InteractionKind::Other, None) => format!("Caught up with {first}"),
    }
}

fn generate_interactions(
    rng: &mut StdRng,
    n: usize,
    contacts: &[Contact],
    ties: &[Tie],
    projects: &[Project],
    now: TimestampMs,
) -> Vec<Interaction> {
    let mut cumulative = Vec::with_capacity(ties.len());
    let mut acc = 0.0;
    for t in ties {
        acc += t.weight;
        cumulative.push(acc);
    }
    if acc <= 0.0 {
        return Vec::new();
    }
    let draw = |rng: &mut StdRng| -> usize {
        let x = rng.gen_range(0.0..acc);
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    };
    let today = date_of(now);
    let mentors: BTreeSet<ContactId> = contacts
        .iter()
        .filter(|c| c.tags.contains(MENTOR_TAG))
        .map(|c| c.id)
        .collect();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let primary = draw(rng);
        let tie = &ties[primary];
        let contact = &contacts[primary];
        // Skewed to the recent end of the tie's span; during working hours.
        let u: f64 = rng.r#gen();
        let t = tie.from_ms + ((tie.until_ms - tie.from_ms) as f64 * u.sqrt()) as i64;
        let day_start = t - t.rem_euclid(DAY_MS);
        let at_ms = (day_start + rng.gen_range(8 * HOUR_MS..18 * HOUR_MS)).min(now);

        let mut participants = BTreeSet::from([contact.id]);
        let extra = match rng.gen_range(0..100) {
            0..=69 => 0,
            70..=87 => 1,
            88..=95 => 2,
            _ => 3,
        };
        for _ in 0..extra {
            for _attempt in 0..5 {
                // Only people the tie was alive with at that time (keeps dormant ties dormant).
                let other = draw(rng);
                let alive = (ties[other].from_ms..=ties[other].until_ms + DAY_MS).contains(&at_ms);
                if alive && participants.insert(contacts[other].id) {
                    break;
                }
            }
        }
        let group = participants.len();
        let mut kind_weights = [24u32, 12, 18, 18, 6, 5, 10, 3];
        if contact.circles.contains(&Circle::Personal) {
            kind_weights[4] *= 2;
            kind_weights[5] *= 3;
        }
        if group >= 3 {
            kind_weights[2] = 2;
            kind_weights[1] = 2;
            kind_weights[5] = 1;
        }
        let kind = InteractionKind::ALL[weighted(rng, &kind_weights)];
        let project = if projects.is_empty() {
            None
        } else if kind == InteractionKind::ProjectWork {
            Some(&projects[tie.project % projects.len()])
        } else if kind == InteractionKind::Meeting && rng.gen_bool(0.1) {
            Some(pick(rng, projects))
        } else {
            None
        };
        let first = contact.given_name.as_deref().unwrap_or(&contact.name);
        let topic = *pick(rng, TOPICS);
        let initiator = Initiator::ALL[weighted(rng, &[40, 33, 20, 7])];

        let members: Vec<ContactId> = participants.iter().copied().collect();
        let mut exchanges = Vec::new();
        if rng.gen_bool(0.4) {
            for _ in 0..rng.gen_range(1..=2) {
                let with = if rng.gen_bool(0.85) {
                    Some(*pick(rng, &members))
                } else {
                    None
                };
                let what = ExchangeWhat::ALL[weighted(rng, &[20, 15, 20, 15, 30])];
                let mut direction = if rng.gen_bool(tie.gives) {
                    Direction::Gave
                } else {
                    Direction::Received
                };
                // Candid feedback comes from mentors only: a realistic
                // concentration the insights should flag.
                if what == ExchangeWhat::Feedback && !with.is_some_and(|w| mentors.contains(&w)) {
                    direction = Direction::Gave;
                }
                exchanges.push(Exchange {
                    id: ExchangeId::from_u128(ulid_bits(at_ms, rng)),
                    what,
                    direction,
                    with,
                });
            }
        }

        let mut follow_ups = BTreeMap::new();
        let n_follow_ups = match rng.gen_range(0..100) {
            0..=21 => 1,
            22..=25 => 2,
            _ => 0,
        };
        for _ in 0..n_follow_ups {
            let id = FollowUpId::from_u128(ulid_bits(at_ms, rng));
            let due_in = chrono::Days::new(rng.gen_range(2..=21));
            let due = if rng.gen_bool(0.9) {
                date_of(at_ms).checked_add_days(due_in)
            } else {
                None
            };
            let long_past = due.is_none_or(|d| {
                d.checked_add_days(chrono::Days::new(3))
                    .is_none_or(|d| d < today)
            });
            // Old follow-ups are nearly all done; a few recent ones slip.
            let p_done = if !long_past {
                0.3
            } else if at_ms < now - 90 * DAY_MS {
                0.997
            } else {
                0.95
            };
            let done_ms = if rng.gen_bool(p_done) {
                Some((at_ms + rng.gen_range(HOUR_MS..(14 * DAY_MS))).min(now))
            } else {
                None
            };
            follow_ups.insert(
                id,
                FollowUp {
                    id,
                    text: (*pick(rng, FOLLOW_UP_TEXTS)).to_string(),
                    due,
                    done_ms,
                },
            );
        }
        let created_ms = (at_ms + rng.gen_range(0..2 * HOUR_MS)).min(now);
        let deleted_ms = rng.gen_bool(0.004).then(|| (created_ms + DAY_MS).min(now));
        out.push(Interaction {
            id: InteractionId::from_u128(ulid_bits(at_ms, rng)),
            at_ms,
            offset_minutes: offset_for(at_ms),
            kind,
            initiator,
            participants,
            summary: summary(rng, kind, first, topic, project.map(|p| p.name.as_str())),
            notes: notes(rng, first, topic),
            notes_conflicts: Vec::new(),
            project: project.map(|p| p.id),
            exchanges,
            follow_ups,
            created_ms,
            updated_ms: created_ms,
            deleted_ms,
            event: None,
        });
    }
    out.sort_by_key(|i| (i.at_ms, i.id));
    out
}

fn generate_goals(
    rng: &mut StdRng,
    n: usize,
    contacts: &[Contact],
    start: TimestampMs,
    now: TimestampMs,
) -> Vec<Goal> {
    let strategic: Vec<ContactId> = contacts
        .iter()
        .filter(|c| c.circles.contains(&Circle::Strategic) && !c.archived)
        .map(|c| c.id)
        .collect();
    let n = n.min(GOALS.len());
    GOALS
        .iter()
        .take(n)
        .enumerate()
        .map(|(i, (title, priority))| {
            let created_ms = start + (now - start) / 2 + rng.gen_range(0..(now - start).max(2) / 2);
            // The last goal is new: nothing linked yet. One goal is achieved.
            let links = if i + 1 == n && n >= 3 {
                0
            } else {
                rng.gen_range(2..=6)
            };
            let mut linked = BTreeSet::new();
            for _ in 0..links {
                let pool = if strategic.is_empty() || rng.gen_bool(0.15) {
                    contacts.iter().map(|c| c.id).collect::<Vec<_>>()
                } else {
                    strategic.clone()
                };
                if !pool.is_empty() {
                    linked.insert(*pick(rng, &pool));
                }
            }
            Goal {
                id: GoalId::from_u128(ulid_bits(created_ms, rng)),
                title: (*title).to_string(),
                priority: *priority,
                status: if i == 3 {
                    GoalStatus::Achieved
                } else {
                    GoalStatus::Active
                },
                contacts: linked,
                created_ms,
                updated_ms: created_ms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: TimestampMs = 1_790_000_000_000;

    #[test]
    fn same_seed_same_network_other_seed_other_network() {
        let p = SynthParams::new(60, 400, 7, NOW);
        let a = generate(&p);
        let b = generate(&p);
        assert_eq!(a, b);
        let c = generate(&SynthParams { seed: 8, ..p });
        assert_ne!(a.contacts, c.contacts);
    }

    #[test]
    fn counts_and_every_reference_is_valid() {
        let p = SynthParams::new(300, 3_000, 1, NOW);
        let n = generate(&p);
        assert_eq!(n.contacts.len(), 300);
        assert_eq!(n.interactions.len(), 3_000);
        assert_eq!(n.projects.len(), 8);
        assert_eq!(n.goals.len(), 5);
        let contacts: BTreeSet<ContactId> = n.contacts.iter().map(|c| c.id).collect();
        assert_eq!(contacts.len(), 300, "contact ids are unique");
        let projects: BTreeSet<ProjectId> = n.projects.iter().map(|p| p.id).collect();
        let start = NOW - 3 * 365 * DAY_MS;
        let mut ids = BTreeSet::new();
        for i in &n.interactions {
            assert!(ids.insert(i.id), "interaction ids are unique");
            assert_eq!(
                i.id.timestamp_ms(),
                i.at_ms,
                "id minted at the interaction's time"
            );
            assert!(i.at_ms <= NOW && i.at_ms >= start - DAY_MS);
            assert!((1..=4).contains(&i.participants.len()));
            assert!(i.participants.iter().all(|c| contacts.contains(c)));
            assert!(i.project.is_none_or(|p| projects.contains(&p)));
            for e in &i.exchanges {
                assert!(e.with.is_none_or(|w| i.participants.contains(&w)));
            }
            for (id, f) in &i.follow_ups {
                assert_eq!(*id, f.id);
                assert!(f.done_ms.is_none_or(|d| d <= NOW));
            }
            assert!(!i.summary.is_empty());
            if i.kind == InteractionKind::ProjectWork {
                assert!(i.project.is_some());
            }
        }
        for g in &n.goals {
            assert!(g.contacts.iter().all(|c| contacts.contains(c)));
            assert!((1..=3).contains(&g.priority));
        }
        assert!(n.goals.last().unwrap().contacts.is_empty());
        for c in &n.contacts {
            assert!(!c.name.trim().is_empty());
            assert!((1..=2).contains(&c.circles.len()));
            assert!(c.created_ms <= NOW);
        }
    }

    #[test]
    fn notes_are_about_300_characters() {
        let n = generate(&SynthParams::new(100, 2_000, 3, NOW));
        let lens: Vec<usize> = n
            .interactions
            .iter()
            .map(|i| i.notes.chars().count())
            .collect();
        assert!(lens.iter().all(|&l| (200..=400).contains(&l)), "{lens:?}");
        let mean = lens.iter().sum::<usize>() as f64 / lens.len() as f64;
        assert!((260.0..=340.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn the_network_is_realistically_varied() {
        let n = generate(&SynthParams::new(500, 10_000, 11, NOW));
        let accented = n.contacts.iter().filter(|c| !c.name.is_ascii()).count();
        assert!(accented > 25, "{accented}");
        let disciplines: BTreeSet<_> = n
            .contacts
            .iter()
            .filter_map(|c| c.discipline.clone())
            .collect();
        assert!(disciplines.len() >= 9);
        assert!(n.contacts.iter().any(|c| c.inside_org == Some(false)));
        assert!(n.contacts.iter().filter(|c| !c.emails.is_empty()).count() > 350);
        // Skew: the top 10 % of ties hold far more than 10 % of interactions.
        let mut per: BTreeMap<ContactId, usize> = BTreeMap::new();
        for i in &n.interactions {
            for p in &i.participants {
                *per.entry(*p).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = per.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top: usize = counts.iter().take(50).sum();
        let all: usize = counts.iter().sum();
        assert!(top * 10 > all * 3, "top 10 % hold {top} of {all}");
        // Follow-ups in every state.
        let fus: Vec<&FollowUp> = n
            .interactions
            .iter()
            .flat_map(|i| i.follow_ups.values())
            .collect();
        let today = date_of(NOW);
        assert!(fus.iter().any(|f| f.done_ms.is_some()));
        assert!(
            fus.iter()
                .any(|f| f.done_ms.is_none() && f.due.is_some_and(|d| d < today))
        );
        assert!(
            fus.iter()
                .any(|f| f.done_ms.is_none() && f.due.is_some_and(|d| d >= today))
        );
        assert!(n.interactions.iter().any(|i| i.deleted_ms.is_some()));
        assert!(n.interactions.iter().all(|i| i.notes.len() > 100));
    }

    #[test]
    fn empty_and_degenerate_parameters() {
        let n = generate(&SynthParams::new(0, 1_000, 1, NOW));
        assert!(n.contacts.is_empty() && n.interactions.is_empty());
        let n = generate(&SynthParams {
            years: 0,
            projects: 0,
            goals: 0,
            ..SynthParams::new(5, 20, 1, 0)
        });
        assert_eq!(n.interactions.len(), 20);
        assert!(n.interactions.iter().all(|i| i.project.is_none()));
    }

    #[test]
    fn ascii_slug_folds_accents() {
        assert_eq!(ascii_slug("Ó Súilleabháin"), "osuilleabhain");
        assert_eq!(ascii_slug("Łukasz"), "lukasz");
        assert_eq!(ascii_slug("O'Brien"), "obrien");
        assert_eq!(ascii_slug("Weiß"), "weiss");
    }
}
