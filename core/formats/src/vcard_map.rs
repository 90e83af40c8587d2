//! Mapping of a parsed vCard onto a [`ContactDraft`].
//!
//! FN (else N, else ORG, else the first email or phone) -> name; N -> given and
//! family name; the first ORG component -> organisation (with an inside/outside
//! suggestion against my organisation); TITLE (else ROLE) -> role; EMAIL and
//! TEL with labels (an X-ABLabel wins over TYPE; TYPE noise such as `pref`,
//! `internet`, `voice` is dropped and `cell` reads "mobile"); NOTE -> notes;
//! CATEGORIES -> tags; BDAY -> birthday; URL -> urls; UID / X-ABUID ->
//! `vcard-uid:<uid>`; plus `vcard-hash:<hex>` over the mapped fields.

use std::collections::BTreeSet;

use kith_model::model::ContactPoint;

use super::vcard::{
    CardError, CardErrorKind, Labelled, ParsedCard, VcardFileError, VcardLimits,
    parse_vcards_streaming,
};
use super::{ContactDraft, inside_org_suggestion, non_empty};

/// The drafts of one file, and the errors met on the way (parse and mapping).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DraftBatch {
    /// One draft per card that holds a contact, in file order.
    pub drafts: Vec<ContactDraft>,
    /// Parse and mapping problems, capped like [`VcardLimits::errors_max`].
    pub errors: Vec<CardError>,
    /// Errors counted beyond the cap.
    pub errors_dropped: usize,
}

/// Which vCard property a label belongs to (their TYPE vocabularies differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    /// EMAIL (`internet`, `x400` carry no label).
    Email,
    /// TEL (`voice`, `msg` carry no label).
    Phone,
    /// URL.
    Url,
}

/// TYPE values that carry no label: preference, defaults, transport.
fn is_noise_type(kind: LabelKind, t: &str) -> bool {
    match kind {
        LabelKind::Email => matches!(t, "pref" | "internet" | "x400"),
        LabelKind::Phone => matches!(t, "pref" | "voice" | "msg"),
        LabelKind::Url => matches!(t, "pref"),
    }
}

/// The TYPE words the vCard writer may emit as TYPE (the rest go to X-ABLabel).
fn is_writable_type(kind: LabelKind, t: &str) -> bool {
    match kind {
        LabelKind::Email => matches!(t, "home" | "work" | "other" | "school"),
        LabelKind::Phone => matches!(
            t,
            "home"
                | "work"
                | "cell"
                | "fax"
                | "pager"
                | "text"
                | "video"
                | "textphone"
                | "main"
                | "other"
        ),
        LabelKind::Url => matches!(t, "home" | "work" | "other"),
    }
}

/// The plain label of a set of TYPE values, e.g. `[work, fax]` -> "work fax",
/// `[cell, pref]` -> "mobile", `[voice]` -> "".
pub fn label_from_types(kind: LabelKind, types: &[String]) -> String {
    let words: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| !t.starts_with("x-") && !is_noise_type(kind, t))
        .map(|t| if t == "cell" { "mobile" } else { t })
        .collect();
    words.join(" ")
}

/// TYPE values that read back as exactly `label`, or `None` when the label must
/// be written as an X-ABLabel.
pub fn types_for_label(kind: LabelKind, label: &str) -> Option<Vec<String>> {
    if label.is_empty() {
        return Some(Vec::new());
    }
    let types: Vec<String> = label
        .split(' ')
        .map(|w| {
            if w == "mobile" {
                "cell".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    if !types.iter().all(|t| is_writable_type(kind, t)) {
        return None;
    }
    (label_from_types(kind, &types) == label).then_some(types)
}

fn label_of(kind: LabelKind, l: &Labelled) -> String {
    match &l.custom_label {
        Some(custom) => custom.clone(),
        None => label_from_types(kind, &l.types),
    }
}

fn points(kind: LabelKind, list: &[Labelled]) -> Vec<ContactPoint> {
    let mut out: Vec<ContactPoint> = Vec::with_capacity(list.len());
    for l in list {
        let p = ContactPoint {
            value: l.value.clone(),
            label: label_of(kind, l),
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Maps one card; `None` when it holds nothing to name a contact by.
pub fn map_card(card: &ParsedCard, my_organisation: Option<&str>) -> Option<ContactDraft> {
    let name_parts = card.name.clone().unwrap_or_default();
    let given_name = non_empty(&name_parts.given);
    let family_name = non_empty(&name_parts.family);
    let from_n = [
        &name_parts.prefixes,
        &name_parts.given,
        &name_parts.additional,
        &name_parts.family,
        &name_parts.suffixes,
    ]
    .iter()
    .filter_map(|p| non_empty(p))
    .collect::<Vec<_>>()
    .join(" ");
    let organisation = card
        .organisations
        .first()
        .and_then(|o| o.iter().find_map(|c| non_empty(c)));
    let emails = points(LabelKind::Email, &card.emails);
    let phones = points(LabelKind::Phone, &card.phones);
    let name = card
        .formatted_name
        .as_deref()
        .and_then(non_empty)
        .or_else(|| non_empty(&from_n))
        .or_else(|| organisation.clone())
        .or_else(|| emails.first().map(|e| e.value.clone()))
        .or_else(|| phones.first().map(|p| p.value.clone()))?;
    let role = card.titles.first().or(card.roles.first()).cloned();
    let mut draft = ContactDraft {
        name,
        given_name,
        family_name,
        inside_org: inside_org_suggestion(organisation.as_deref(), my_organisation),
        organisation,
        role,
        emails,
        phones,
        urls: card.urls.iter().map(|u| u.value.clone()).collect(),
        notes: card.notes.join("\n\n"),
        tags: card.categories.iter().cloned().collect::<BTreeSet<_>>(),
        birthday: card.birthday,
        first_met: None,
        import_keys: BTreeSet::new(),
        source_line: card.line,
    };
    if let Some(uid) = card.uid.as_deref().or(card.apple_uid.as_deref()) {
        draft.import_keys.insert(format!("vcard-uid:{uid}"));
    }
    let hash = draft.content_hash();
    draft.import_keys.insert(format!("vcard-hash:{hash}"));
    Some(draft)
}

/// Parses a vCard file and maps every card; cards with nothing to name a
/// contact by are reported as [`CardErrorKind::EmptyCard`].
pub fn vcard_drafts(
    input: &[u8],
    limits: &VcardLimits,
    my_organisation: Option<&str>,
) -> Result<DraftBatch, VcardFileError> {
    // Each card is mapped as soon as it is parsed and then dropped, and its
    // photo is checked but never decoded (drafts carry no photo): the cards
    // of a large file are never all in memory.
    let mut drafts = Vec::new();
    let mut empty_cards: Vec<CardError> = Vec::new();
    let mut empty_dropped = 0usize;
    let parsed = parse_vcards_streaming(
        input,
        limits,
        false,
        &mut |card: ParsedCard| match map_card(&card, my_organisation) {
            Some(d) => drafts.push(d),
            None if empty_cards.len() < limits.errors_max => empty_cards.push(CardError {
                line: card.line,
                kind: CardErrorKind::EmptyCard,
                message: format!(
                    "the card at line {} has no name, organisation, email or phone; skipped",
                    card.line
                ),
            }),
            None => empty_dropped += 1,
        },
    )?;
    // Parse errors are kept first, then the empty cards, up to errors_max.
    let mut batch = DraftBatch {
        drafts,
        errors: parsed.errors,
        errors_dropped: parsed.errors_dropped + empty_dropped,
    };
    for e in empty_cards {
        if batch.errors.len() < limits.errors_max {
            batch.errors.push(e);
        } else {
            batch.errors_dropped += 1;
        }
    }
    batch.errors.sort_by_key(|e| e.line);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn labels_from_types_drop_noise_and_read_cell_as_mobile() {
        assert_eq!(
            label_from_types(LabelKind::Phone, &types(&["cell", "pref"])),
            "mobile"
        );
        assert_eq!(
            label_from_types(LabelKind::Phone, &types(&["work", "fax"])),
            "work fax"
        );
        assert_eq!(label_from_types(LabelKind::Phone, &types(&["voice"])), "");
        assert_eq!(
            label_from_types(LabelKind::Email, &types(&["internet", "home"])),
            "home"
        );
        assert_eq!(
            label_from_types(LabelKind::Email, &types(&["customtype"])),
            "customtype"
        );
    }

    #[test]
    fn writable_labels_round_trip_and_others_need_a_custom_label() {
        for (kind, label) in [
            (LabelKind::Phone, "mobile"),
            (LabelKind::Phone, "work fax"),
            (LabelKind::Email, "work"),
            (LabelKind::Phone, ""),
        ] {
            let t = types_for_label(kind, label).unwrap();
            assert_eq!(label_from_types(kind, &t), label);
        }
        assert_eq!(types_for_label(LabelKind::Phone, "cell"), None);
        assert_eq!(types_for_label(LabelKind::Phone, "AssistantPhone"), None);
        assert_eq!(types_for_label(LabelKind::Phone, "voice"), None);
    }
}
