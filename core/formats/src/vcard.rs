//! vCard parser (2.1, 3.0, 4.0): pure functions from bytes to [`ParsedCard`]s.
//!
//! Data flow: [`parse_vcards`] checks the input size, turns UTF-16 input into
//! UTF-8 and strips a BOM ([`decode_input`]), splits physical lines (CRLF, LF or
//! lone CR), joins them into logical lines (RFC folding: a line starting with a
//! space or tab continues the previous one; quoted-printable soft line breaks: a
//! QP value ending in `=` continues on the next line whatever it starts with),
//! parses each logical line into a property (group, name, parameters, raw value
//! bytes), decodes the value (quoted-printable or base64, then the charset,
//! then vCard text escapes) and collects the properties of one
//! `BEGIN:VCARD`..`END:VCARD` block into a [`ParsedCard`]. Property groups
//! (`item1.TEL` + `item1.X-ABLabel`) attach the label to their sibling.
//!
//! Nothing here panics on input and memory stays bounded: the input size, the
//! logical line length, the properties per card, the number of cards, the photo
//! size and the number of reported errors are capped by [`VcardLimits`]. Bad
//! input inside a card is reported as a [`CardError`] with its line number and
//! the rest of the card and of the file is still imported.

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::NaiveDate;
use encoding_rs::{Encoding, UTF_8, UTF_16BE, UTF_16LE, WINDOWS_1252};

use kith_model::model::PartialDate;

/// Components kept of a structured value (N, ADR, ORG); real cards have at
/// most 7, and dropping junk beyond keeps memory proportional to the input
/// (each component costs a `String`, far more than the one `;` it came from).
pub const COMPONENTS_PER_VALUE_MAX: usize = 8;
/// TYPE values kept per property.
pub const TYPES_PER_PROPERTY_MAX: usize = 16;
/// CATEGORIES and NICKNAME items kept per card (each list).
pub const LIST_ITEMS_PER_CARD_MAX: usize = 64;
/// Upper bound of the fixed cost of one kept property beyond its text
/// (string headers of its value, components, types and label).
pub const PROPERTY_OVERHEAD_BYTES_MAX: usize = 1024;
/// Upper bound of the fixed cost of one card beyond its properties.
pub const CARD_OVERHEAD_BYTES_MAX: usize = 8 * 1024;
/// Upper bound of one reported error.
pub const ERROR_BYTES_MAX: usize = 512;

/// Caps that keep parsing bounded in time and memory whatever the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcardLimits {
    /// Largest accepted input file.
    pub input_size_bytes_max: usize,
    /// Longest logical (unfolded) line; longer properties are dropped with an error.
    pub line_length_bytes_max: usize,
    /// Properties kept per card; the rest of an oversized card is dropped with an error.
    pub properties_per_card_max: usize,
    /// Cards per file; more is a file-level error.
    pub cards_max: usize,
    /// Largest decoded inline photo kept; larger photos are dropped with an error.
    pub photo_size_bytes_max: usize,
    /// Errors reported individually; beyond that they are only counted.
    pub errors_max: usize,
}

impl Default for VcardLimits {
    fn default() -> Self {
        VcardLimits {
            input_size_bytes_max: 256 * 1024 * 1024,
            line_length_bytes_max: 4 * 1024 * 1024,
            properties_per_card_max: 2_000,
            cards_max: 200_000,
            photo_size_bytes_max: 1024 * 1024,
            errors_max: 10_000,
        }
    }
}

/// A file-level failure: nothing of the file is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VcardFileError {
    /// The file is over [`VcardLimits::input_size_bytes_max`].
    #[error(
        "the file is {size_bytes} bytes, more than the {size_bytes_max} bytes a vCard import accepts"
    )]
    TooLarge {
        /// Size of the file given.
        size_bytes: usize,
        /// The limit it exceeds.
        size_bytes_max: usize,
    },
    /// The file holds more than [`VcardLimits::cards_max`] cards; split it.
    #[error("the file holds more than {cards_max} cards; split it into smaller files")]
    TooManyCards {
        /// The limit it exceeds.
        cards_max: usize,
    },
    /// Not a vCard file at all (wrong file chosen, or a different format).
    #[error("no vCard found (no BEGIN:VCARD line)")]
    NotVcard,
}

/// What went wrong with part of a card (or with text outside any card).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CardErrorKind {
    /// A line that is not `NAME[;PARAMS]:VALUE`; the line is skipped.
    MalformedLine,
    /// A logical line longer than the limit; the property is skipped.
    LineTooLong,
    /// More properties than the limit; the rest of the card is skipped.
    TooManyProperties,
    /// A card without `END:VCARD`; what it holds is kept.
    UnterminatedCard,
    /// Text outside `BEGIN:VCARD`..`END:VCARD`; skipped.
    OutsideCard,
    /// A photo that could not be decoded; the photo is skipped, the card kept.
    BadPhoto,
    /// A photo over the size limit; the photo is skipped, the card kept.
    PhotoTooLarge,
    /// A date that is not one of the accepted forms; the date is skipped.
    BadDate,
    /// A card that holds nothing to make a contact of; the card is skipped.
    EmptyCard,
}

/// One problem, located by its line number (1-based, physical lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardError {
    /// 1-based physical line where the problem is.
    pub line: usize,
    /// What kind of problem, and so what was skipped.
    pub kind: CardErrorKind,
    /// The problem in words, for the user.
    pub message: String,
}

impl std::fmt::Display for CardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The result of parsing one file: the cards that parsed, and what went wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VcardImport {
    /// The cards that parsed, in file order.
    pub cards: Vec<ParsedCard>,
    /// Problems met, at most [`VcardLimits::errors_max`].
    pub errors: Vec<CardError>,
    /// Errors beyond [`VcardLimits::errors_max`], counted but not kept.
    pub errors_dropped: usize,
}

impl VcardImport {
    /// The most [`VcardImport::retained_size_bytes`] may be for an input of
    /// `input_size_bytes`: decoded text grows at most 4x (Windows-1252 or
    /// UTF-16 to UTF-8), plus fixed costs per kept property, card and error,
    /// all of which are capped by [`VcardLimits`].
    pub fn retained_size_bound_bytes(&self, input_size_bytes: usize) -> usize {
        let properties: usize = self.cards.iter().map(|c| c.property_count).sum();
        4 * input_size_bytes
            + PROPERTY_OVERHEAD_BYTES_MAX * properties
            + CARD_OVERHEAD_BYTES_MAX * self.cards.len()
            + ERROR_BYTES_MAX * self.errors.len()
    }

    /// An upper estimate of the heap bytes the result holds (used to check the caps).
    pub fn retained_size_bytes(&self) -> usize {
        let cards: usize = self.cards.iter().map(ParsedCard::retained_size_bytes).sum();
        let errors: usize = self
            .errors
            .iter()
            .map(|e| e.message.len() + std::mem::size_of::<CardError>())
            .sum();
        cards + errors
    }
}

/// N: the structured name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructuredName {
    /// Family name(s); empty when absent.
    pub family: String,
    /// Given name(s); empty when absent.
    pub given: String,
    /// Additional (middle) names; empty when absent.
    pub additional: String,
    /// Honorific prefixes ("Dr."); empty when absent.
    pub prefixes: String,
    /// Honorific suffixes ("PhD"); empty when absent.
    pub suffixes: String,
}

/// A value with its TYPE parameters and its group label (X-ABLabel), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labelled {
    /// The value, unescaped (an address, number or URL as written).
    pub value: String,
    /// Lower-case TYPE values in file order (`pref` included).
    pub types: Vec<String>,
    /// The label from a sibling `X-ABLabel`, Apple built-ins mapped to plain words.
    pub custom_label: Option<String>,
    /// PREF, TYPE=pref or PREF=n.
    pub pref: bool,
}

/// ADR: the seven components (post office box, extended, street, locality,
/// region, postal code, country).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// The components in that order, as many as the file gave.
    pub components: Vec<String>,
    /// Lower-case TYPE values in file order.
    pub types: Vec<String>,
    /// The label from a sibling `X-ABLabel`, if any.
    pub custom_label: Option<String>,
}

/// Where a photo is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhotoSource {
    /// Decoded bytes (base64 or a data: URI).
    Inline(Vec<u8>),
    /// A link to the photo.
    Uri(String),
}

/// PHOTO, when present and usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// MIME type (`image/jpeg`) when the card gives one.
    pub media_type: Option<String>,
    /// The photo bytes or its link.
    pub source: PhotoSource,
}

/// The fields of one card that Kith uses, decoded to plain text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedCard {
    /// Line of `BEGIN:VCARD`.
    pub line: usize,
    /// VERSION as written ("2.1", "3.0", "4.0"); `None` when absent.
    pub version: Option<String>,
    /// FN, the display name; `None` when absent.
    pub formatted_name: Option<String>,
    /// N; `None` when absent.
    pub name: Option<StructuredName>,
    /// NICKNAME values, split at commas.
    pub nicknames: Vec<String>,
    /// ORG values, each split into organisation and unit components.
    pub organisations: Vec<Vec<String>>,
    /// TITLE values (job titles).
    pub titles: Vec<String>,
    /// ROLE values (functions), used when there is no TITLE.
    pub roles: Vec<String>,
    /// EMAIL values with their labels.
    pub emails: Vec<Labelled>,
    /// TEL values with their labels, numbers as written.
    pub phones: Vec<Labelled>,
    /// URL values with their labels.
    pub urls: Vec<Labelled>,
    /// ADR values.
    pub addresses: Vec<Address>,
    /// NOTE values, unescaped.
    pub notes: Vec<String>,
    /// CATEGORIES values, split at commas.
    pub categories: Vec<String>,
    /// BDAY, when it is a date in an accepted form.
    pub birthday: Option<PartialDate>,
    /// UID, the card's stable identity in its source; keys re-import.
    pub uid: Option<String>,
    /// Apple's X-ABUID.
    pub apple_uid: Option<String>,
    /// PHOTO, when present, decodable and within the size limit.
    pub photo: Option<Photo>,
    /// Properties read (all names, used or not).
    pub property_count: usize,
}

impl ParsedCard {
    fn retained_size_bytes(&self) -> usize {
        fn s(v: &str) -> usize {
            v.len() + std::mem::size_of::<String>()
        }
        fn l(v: &Labelled) -> usize {
            s(&v.value)
                + v.types.iter().map(|t| s(t)).sum::<usize>()
                + v.custom_label.as_deref().map_or(0, s)
        }
        let mut n = std::mem::size_of::<ParsedCard>();
        n += self.version.as_deref().map_or(0, s);
        n += self.formatted_name.as_deref().map_or(0, s);
        if let Some(name) = &self.name {
            n += s(&name.family)
                + s(&name.given)
                + s(&name.additional)
                + s(&name.prefixes)
                + s(&name.suffixes);
        }
        n += self.nicknames.iter().map(|v| s(v)).sum::<usize>();
        n += self
            .organisations
            .iter()
            .flatten()
            .map(|v| s(v))
            .sum::<usize>();
        n += self
            .titles
            .iter()
            .chain(&self.roles)
            .chain(&self.notes)
            .chain(&self.categories)
            .map(|v| s(v))
            .sum::<usize>();
        n += self
            .emails
            .iter()
            .chain(&self.phones)
            .chain(&self.urls)
            .map(l)
            .sum::<usize>();
        n += self
            .addresses
            .iter()
            .map(|a| {
                a.components
                    .iter()
                    .chain(&a.types)
                    .map(|v| s(v))
                    .sum::<usize>()
                    + a.custom_label.as_deref().map_or(0, s)
            })
            .sum::<usize>();
        n += self.uid.as_deref().map_or(0, s) + self.apple_uid.as_deref().map_or(0, s);
        if let Some(p) = &self.photo {
            n += p.media_type.as_deref().map_or(0, s);
            n += match &p.source {
                PhotoSource::Inline(b) => b.len(),
                PhotoSource::Uri(u) => s(u),
            };
        }
        n
    }
}

/// Parses every card of a vCard file.
///
/// File-level problems (too large, no card at all, too many cards) are errors;
/// everything else is reported per card in [`VcardImport::errors`].
pub fn parse_vcards(input: &[u8], limits: &VcardLimits) -> Result<VcardImport, VcardFileError> {
    parse_vcards_into(input, limits, true, None)
}

/// [`parse_vcards`] for a caller that consumes each card as soon as it is
/// complete: `sink` receives the cards (in file order) instead of
/// [`VcardImport::cards`], which stays empty, so a file's cards are never all
/// in memory at once. With `keep_photos` false, photos are checked exactly
/// as [`parse_vcards`] checks them (same errors) but not decoded nor kept
/// (`ParsedCard::photo` is `None`): for callers that drop them anyway.
pub fn parse_vcards_streaming(
    input: &[u8],
    limits: &VcardLimits,
    keep_photos: bool,
    sink: &mut dyn FnMut(ParsedCard),
) -> Result<VcardImport, VcardFileError> {
    parse_vcards_into(input, limits, keep_photos, Some(sink))
}

fn parse_vcards_into<'l>(
    input: &[u8],
    limits: &'l VcardLimits,
    keep_photos: bool,
    sink: Option<&'l mut dyn FnMut(ParsedCard)>,
) -> Result<VcardImport, VcardFileError> {
    if input.len() > limits.input_size_bytes_max {
        return Err(VcardFileError::TooLarge {
            size_bytes: input.len(),
            size_bytes_max: limits.input_size_bytes_max,
        });
    }
    let decoded = decode_input(input);
    let mut parser = Parser {
        limits,
        keep_photos,
        sink,
        cards_seen: 0,
        unicode_input: decoded.unicode,
        out: VcardImport::default(),
        card: None,
        saw_begin: false,
        outside_reported_at: None,
    };
    let lines = PhysicalLines::new(&decoded.bytes);
    let mut logical = LogicalLines::new(lines, limits.line_length_bytes_max);
    while let Some(line) = logical.next_line() {
        parser.line(line)?;
    }
    parser.finish()?;
    if !parser.saw_begin {
        return Err(VcardFileError::NotVcard);
    }
    Ok(parser.out)
}

/// The input as UTF-8-or-8-bit bytes, and whether it was already Unicode text
/// (UTF-16 input), in which case CHARSET parameters no longer apply to it.
#[derive(Debug)]
pub struct DecodedInput<'a> {
    /// The text without BOM; borrowed when no conversion was needed.
    pub bytes: Cow<'a, [u8]>,
    /// True when the input was UTF-16 and is now UTF-8 for certain.
    pub unicode: bool,
}

/// Strips a UTF-8 BOM and converts UTF-16 (BOM, or `BEGIN` spelled with NULs) to UTF-8.
pub fn decode_input(input: &[u8]) -> DecodedInput<'_> {
    let utf16 = match input {
        [0xFF, 0xFE, ..] => Some((UTF_16LE, &input[2..])),
        [0xFE, 0xFF, ..] => Some((UTF_16BE, &input[2..])),
        [b, 0, ..] if b.is_ascii_alphabetic() => Some((UTF_16LE, input)),
        [0, b, ..] if b.is_ascii_alphabetic() => Some((UTF_16BE, input)),
        _ => None,
    };
    if let Some((enc, body)) = utf16 {
        let (text, _had_errors) = enc.decode_without_bom_handling(body);
        return DecodedInput {
            bytes: Cow::Owned(text.into_owned().into_bytes()),
            unicode: true,
        };
    }
    let body = input.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(input);
    DecodedInput {
        bytes: Cow::Borrowed(body),
        unicode: false,
    }
}

/// Physical lines with their 1-based numbers; CRLF, LF, or lone CR when the
/// input has no LF at all (classic Mac files).
struct PhysicalLines<'a> {
    rest: &'a [u8],
    sep: u8,
    number: usize,
}

impl<'a> PhysicalLines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let sep = if !bytes.contains(&b'\n') && bytes.contains(&b'\r') {
            b'\r'
        } else {
            b'\n'
        };
        PhysicalLines {
            rest: bytes,
            sep,
            number: 0,
        }
    }
}

impl<'a> Iterator for PhysicalLines<'a> {
    type Item = (usize, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        self.number += 1;
        let (line, rest) = match self.rest.iter().position(|&b| b == self.sep) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((self.number, line))
    }
}

/// One unfolded line.
struct LogicalLine {
    number: usize,
    bytes: Vec<u8>,
    too_long: bool,
}

struct LogicalLines<'a> {
    lines: std::iter::Peekable<PhysicalLines<'a>>,
    line_length_bytes_max: usize,
}

impl<'a> LogicalLines<'a> {
    fn new(lines: PhysicalLines<'a>, line_length_bytes_max: usize) -> Self {
        LogicalLines {
            lines: lines.peekable(),
            line_length_bytes_max,
        }
    }

    fn next_line(&mut self) -> Option<LogicalLine> {
        let (number, first) = loop {
            let (n, l) = self.lines.next()?;
            if !l.iter().all(u8::is_ascii_whitespace) {
                break (n, l);
            }
        };
        let qp = params_mention_qp(first);
        let mut out = LogicalLine {
            number,
            bytes: Vec::with_capacity(first.len().min(self.line_length_bytes_max)),
            too_long: false,
        };
        push_capped(&mut out, first, self.line_length_bytes_max);
        while let Some(&(_, next)) = self.lines.peek() {
            if let [b' ' | b'\t', rest @ ..] = next {
                push_capped(&mut out, rest, self.line_length_bytes_max);
            } else if qp && out.bytes.last() == Some(&b'=') && !is_end_line(next) {
                // A quoted-printable soft line break (Android, Outlook): the
                // continuation does not start with a space.
                out.bytes.pop();
                push_capped(&mut out, next, self.line_length_bytes_max);
            } else {
                break;
            }
            self.lines.next();
        }
        Some(out)
    }
}

fn push_capped(line: &mut LogicalLine, more: &[u8], cap: usize) {
    if line.too_long || line.bytes.len() + more.len() > cap {
        line.too_long = true;
        return;
    }
    line.bytes.extend_from_slice(more);
}

fn is_end_line(line: &[u8]) -> bool {
    let t = trim_ascii(line);
    t.len() >= 9 && t[..9].eq_ignore_ascii_case(b"END:VCARD")
}

/// Whether the parameter section of a raw property line asks for quoted-printable.
fn params_mention_qp(line: &[u8]) -> bool {
    let head = match find_value_colon(line) {
        Some(i) => &line[..i],
        None => line,
    };
    contains_ignore_case(head, b"QUOTED-PRINTABLE")
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// Index of the colon that ends the name and parameters (colons inside quoted
/// parameter values do not count).
fn find_value_colon(line: &[u8]) -> Option<usize> {
    let mut in_quotes = false;
    let mut in_params = false;
    for (i, &b) in line.iter().enumerate() {
        match b {
            b';' if !in_quotes => in_params = true,
            b'"' if in_params => in_quotes = !in_quotes,
            b':' if !in_quotes => return Some(i),
            _ => {}
        }
    }
    None
}

/// Content transfer encoding of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferEncoding {
    None,
    QuotedPrintable,
    Base64,
}

/// The parameters Kith uses.
#[derive(Debug, Clone)]
struct Params {
    types: Vec<String>,
    encoding: TransferEncoding,
    charset: Option<String>,
    value_type: Option<String>,
    media_type: Option<String>,
    pref: bool,
    omit_year: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            types: Vec::new(),
            encoding: TransferEncoding::None,
            charset: None,
            value_type: None,
            media_type: None,
            pref: false,
            omit_year: false,
        }
    }
}

/// A property line split into its parts; the value is still raw bytes.
#[derive(Debug)]
struct RawProperty<'a> {
    group: Option<String>,
    name: String,
    params: Params,
    value: &'a [u8],
}

fn parse_property(line: &[u8]) -> Result<RawProperty<'_>, String> {
    let colon =
        find_value_colon(line).ok_or_else(|| "no ':' between name and value".to_string())?;
    let head = &line[..colon];
    let value = &line[colon + 1..];
    let name_end = head.iter().position(|&b| b == b';').unwrap_or(head.len());
    let full_name = trim_ascii(&head[..name_end]);
    if full_name.is_empty()
        || !full_name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "'{}' is not a property name",
            lossy_snippet(full_name)
        ));
    }
    // ASCII checked above, so this cannot fail; still, no unwrap on input.
    let full_name = std::str::from_utf8(full_name).unwrap_or_default();
    let (group, name) = match full_name.rsplit_once('.') {
        Some((g, n)) => (Some(g.to_string()), n.to_ascii_uppercase()),
        None => (None, full_name.to_ascii_uppercase()),
    };
    if name.is_empty() {
        return Err("empty property name after the group".to_string());
    }
    let mut params = Params::default();
    if name_end < head.len() {
        for raw in split_params(&head[name_end + 1..]) {
            apply_param(&mut params, raw);
        }
    }
    Ok(RawProperty {
        group,
        name,
        params,
        value,
    })
}

fn lossy_snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
    if b.len() > 40 { format!("{s}...") } else { s }
}

/// Splits `a=b;c="d;e"` on semicolons outside double quotes.
fn split_params(section: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, &b) in section.iter().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b';' if !in_quotes => {
                out.push(&section[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&section[start..]);
    out
}

fn apply_param(params: &mut Params, raw: &[u8]) {
    let raw = trim_ascii(raw);
    if raw.is_empty() {
        return;
    }
    let (key, value) = match raw.iter().position(|&b| b == b'=') {
        Some(i) => (
            trim_ascii(&raw[..i]).to_ascii_uppercase(),
            Some(&raw[i + 1..]),
        ),
        None => (raw.to_ascii_uppercase(), None),
    };
    let Some(value) = value else {
        // vCard 2.1 bare parameter: an encoding, or a type.
        match key.as_slice() {
            b"QUOTED-PRINTABLE" => params.encoding = TransferEncoding::QuotedPrintable,
            b"BASE64" | b"B" => params.encoding = TransferEncoding::Base64,
            b"8BIT" | b"7BIT" => {}
            _ => push_type(params, &decode_lossy(&key).to_ascii_lowercase()),
        }
        return;
    };
    let values = param_values(value);
    match key.as_slice() {
        b"TYPE" => {
            // TYPE="work,voice" (vCard 4.0) is a list even inside quotes.
            for v in values.iter().flat_map(|v| v.split(',')) {
                push_type(params, &v.to_ascii_lowercase());
            }
        }
        b"ENCODING" => {
            for v in values {
                match v.to_ascii_uppercase().as_str() {
                    "QUOTED-PRINTABLE" | "Q" => params.encoding = TransferEncoding::QuotedPrintable,
                    "BASE64" | "B" => params.encoding = TransferEncoding::Base64,
                    _ => {}
                }
            }
        }
        b"CHARSET" => params.charset = values.into_iter().next(),
        b"VALUE" => params.value_type = values.into_iter().next().map(|v| v.to_ascii_lowercase()),
        b"MEDIATYPE" => params.media_type = values.into_iter().next(),
        b"PREF" => params.pref = true,
        b"X-APPLE-OMIT-YEAR" => params.omit_year = true,
        _ => {}
    }
}

fn push_type(params: &mut Params, t: &str) {
    let t = t.trim();
    if t.is_empty() {
        return;
    }
    if t == "pref" {
        params.pref = true;
    }
    // Duplicates carry no meaning; the count is capped to bound memory.
    if params.types.len() < TYPES_PER_PROPERTY_MAX && !params.types.iter().any(|x| x == t) {
        params.types.push(t.to_string());
    }
}

/// A parameter value: comma-separated, each part optionally quoted, with RFC
/// 6868 escapes (`^n` newline, `^^` caret, `^'` double quote).
fn param_values(raw: &[u8]) -> Vec<String> {
    let text = decode_lossy(raw);
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in text.chars() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                if out.len() >= TYPES_PER_PROPERTY_MAX {
                    break;
                }
                out.push(std::mem::take(&mut current));
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|v| rfc6868_decode(v.trim()))
        .filter(|v| !v.is_empty())
        .collect()
}

/// RFC 6868 parameter value escapes.
pub fn rfc6868_decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            match chars.peek() {
                Some('n' | 'N') => {
                    out.push('\n');
                    chars.next();
                }
                Some('^') => {
                    out.push('^');
                    chars.next();
                }
                Some('\'') => {
                    out.push('"');
                    chars.next();
                }
                _ => out.push('^'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// UTF-8 where valid; each invalid byte read as Windows-1252 (the usual
/// encoding of files that are "mostly UTF-8").
pub fn decode_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut out = String::with_capacity(bytes.len() + 8);
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    let (text, _) = WINDOWS_1252.decode_without_bom_handling(chunk.invalid());
                    out.push_str(&text);
                }
            }
            out
        }
    }
}

/// Decodes bytes in the named charset; UTF-8 (with the Windows-1252 fallback)
/// when none is named or the name is unknown.
pub fn decode_charset(bytes: &[u8], charset: Option<&str>) -> String {
    match charset.and_then(|c| Encoding::for_label(c.trim().as_bytes())) {
        Some(enc) if enc != UTF_8 => enc.decode_without_bom_handling(bytes).0.into_owned(),
        _ => decode_lossy(bytes),
    }
}

/// Quoted-printable decoding; malformed escapes are kept literally (lenient,
/// as real exports contain them) and soft line breaks `=\r\n` are removed.
pub fn qp_decode(raw: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'=' {
            match (raw.get(i + 1), raw.get(i + 2)) {
                (Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                    out.push(hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0));
                    i += 3;
                    continue;
                }
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn base64_engine() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

/// Base64 with any whitespace (folding leftovers) ignored. Lenient like the
/// phones that wrote it: padding anywhere is dropped, and a dangling last
/// character (a truncated export) is ignored rather than failing the photo.
pub fn base64_decode_lenient(raw: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let mut compact: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    if compact.len() % 4 == 1 {
        compact.pop();
    }
    base64_engine().decode(compact)
}

/// What [`base64_decode_lenient`] would decode `raw` to, its size only,
/// without allocating: the same bytes are ignored (whitespace, `=`, a
/// dangling last character) and the same bytes refused.
pub fn base64_decoded_len_lenient(raw: &[u8]) -> Result<usize, base64::DecodeError> {
    let kept = |b: &u8| !b.is_ascii_whitespace() && *b != b'=';
    let total = raw.iter().filter(|b| kept(b)).count();
    let len = if total % 4 == 1 { total - 1 } else { total };
    for (i, b) in raw.iter().filter(|b| kept(b)).take(len).enumerate() {
        if !(b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/') {
            return Err(base64::DecodeError::InvalidByte(i, *b));
        }
    }
    Ok(len / 4 * 3
        + match len % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
}

/// vCard text unescaping: `\n` `\N` newline, `\,` `\;` `\:` `\\` and
/// Google's `\"` literal;
/// line breaks normalised to `\n`. An unknown escape is kept as written.
pub fn unescape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some('n' | 'N') => {
                    out.push('\n');
                    chars.next();
                }
                Some(&e @ (',' | ';' | ':' | '\\' | '"')) => {
                    out.push(e);
                    chars.next();
                }
                _ => out.push('\\'),
            },
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits on `sep` where it is not escaped by a backslash; the parts keep their escapes.
pub fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    split_unescaped_iter(s, sep).collect()
}

/// Lazy [`split_unescaped`], so callers can stop after the parts they keep.
pub fn split_unescaped_iter(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        let mut escaped = false;
        for (i, c) in r.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == sep {
                rest = Some(&r[i + sep.len_utf8()..]);
                return Some(&r[..i]);
            }
        }
        rest = None;
        Some(r)
    })
}

/// The first components of a structured value, unescaped and trimmed.
fn components(text: &str, max: usize) -> Vec<String> {
    split_unescaped_iter(text, ';')
        .take(max)
        .map(|p| unescape_text(p).trim().to_string())
        .collect()
}

/// Parses the date forms found in vCards: `YYYY-MM-DD`, `YYYYMMDD`, `--MMDD`,
/// `--MM-DD`, and date-times (the time is dropped). Apple's year 1604 means
/// "no year". `None` when the text is none of these or not a real date.
pub fn parse_partial_date(s: &str) -> Option<PartialDate> {
    let s = s.trim();
    let date = match s.find(['T', 't']) {
        Some(0) => return None,
        Some(i) => &s[..i],
        None => s,
    };
    let (year, rest) = if let Some(md) = date.strip_prefix("--") {
        (None, md.to_string())
    } else {
        let digits: String = date.chars().filter(|c| *c != '-').collect();
        if digits.len() != 8 || date.chars().any(|c| !(c.is_ascii_digit() || c == '-')) {
            return None;
        }
        if date.contains('-') && !(date.len() == 10 && &date[4..5] == "-" && &date[7..8] == "-") {
            return None;
        }
        let year: i32 = digits[..4].parse().ok()?;
        (Some(year), digits[4..].to_string())
    };
    let md: String = rest.chars().filter(|c| *c != '-').collect();
    if md.len() != 4 || !md.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if year.is_none() && rest.contains('-') && !(rest.len() == 5 && &rest[2..3] == "-") {
        return None;
    }
    let month: u8 = md[..2].parse().ok()?;
    let day: u8 = md[2..].parse().ok()?;
    let year = year.filter(|y| *y != 1604);
    // Validate against a leap year when the year is unknown, so --0229 is accepted.
    NaiveDate::from_ymd_opt(year.unwrap_or(2000), u32::from(month), u32::from(day))?;
    Some(PartialDate { year, month, day })
}

/// Maps Apple's built-in labels (`_$!<Mobile>!$_`) to plain lower-case words;
/// custom labels are kept as written.
pub fn apple_label(label: &str) -> String {
    let t = label.trim();
    match t.strip_prefix("_$!<").and_then(|r| r.strip_suffix(">!$_")) {
        Some(inner) => inner.to_lowercase(),
        None => t.to_string(),
    }
}

/// A property of the card being built, with its group for X-ABLabel.
#[derive(Debug)]
enum Slot {
    Email(usize),
    Phone(usize),
    Url(usize),
    Address(usize),
}

struct CardBuilder {
    card: ParsedCard,
    /// A valid photo was seen (later PHOTO properties are ignored).
    photo_done: bool,
    group_slots: Vec<(String, Slot)>,
    group_labels: HashMap<String, String>,
    overflow_reported: bool,
}

struct Parser<'l> {
    limits: &'l VcardLimits,
    /// Decode and keep photos (else only check them).
    keep_photos: bool,
    /// Where finished cards go; `None`: `out.cards`.
    sink: Option<&'l mut dyn FnMut(ParsedCard)>,
    /// Cards finished so far (bounded by `limits.cards_max`).
    cards_seen: usize,
    unicode_input: bool,
    out: VcardImport,
    card: Option<CardBuilder>,
    saw_begin: bool,
    outside_reported_at: Option<usize>,
}

impl Parser<'_> {
    fn error(&mut self, line: usize, kind: CardErrorKind, message: String) {
        if self.out.errors.len() < self.limits.errors_max {
            self.out.errors.push(CardError {
                line,
                kind,
                message,
            });
        } else {
            self.out.errors_dropped += 1;
        }
    }

    fn line(&mut self, line: LogicalLine) -> Result<(), VcardFileError> {
        let t = trim_ascii(&line.bytes);
        if t.len() >= 11
            && t[..6].eq_ignore_ascii_case(b"BEGIN:")
            && trim_ascii(&t[6..]).eq_ignore_ascii_case(b"VCARD")
        {
            if let Some(open) = self.card.take() {
                let begin = open.card.line;
                self.error(
                    line.number,
                    CardErrorKind::UnterminatedCard,
                    format!("the card that starts at line {begin} has no END:VCARD; imported what it holds"),
                );
                self.close(open)?;
            }
            self.saw_begin = true;
            self.outside_reported_at = None;
            self.card = Some(CardBuilder {
                card: ParsedCard {
                    line: line.number,
                    ..ParsedCard::default()
                },
                photo_done: false,
                group_slots: Vec::new(),
                group_labels: HashMap::new(),
                overflow_reported: false,
            });
            return Ok(());
        }
        if t.len() >= 9
            && t[..4].eq_ignore_ascii_case(b"END:")
            && trim_ascii(&t[4..]).eq_ignore_ascii_case(b"VCARD")
        {
            match self.card.take() {
                Some(open) => self.close(open)?,
                None => self.error(
                    line.number,
                    CardErrorKind::OutsideCard,
                    "END:VCARD without a BEGIN:VCARD".to_string(),
                ),
            }
            return Ok(());
        }
        let Some(mut builder) = self.card.take() else {
            if self.outside_reported_at.is_none() {
                self.outside_reported_at = Some(line.number);
                self.error(
                    line.number,
                    CardErrorKind::OutsideCard,
                    "text outside BEGIN:VCARD..END:VCARD is ignored".to_string(),
                );
            }
            return Ok(());
        };
        self.property(&mut builder, &line);
        self.card = Some(builder);
        Ok(())
    }

    fn close(&mut self, builder: CardBuilder) -> Result<(), VcardFileError> {
        let CardBuilder {
            mut card,
            group_slots,
            group_labels,
            ..
        } = builder;
        let mut group_labels = group_labels;
        for (group, slot) in group_slots {
            // A label names the one property of its group (the first, if a
            // malformed card has several), so it is never copied per sibling.
            let Some(label) = group_labels.remove(&group) else {
                continue;
            };
            let label = Some(apple_label(&label));
            match slot {
                Slot::Email(i) => set_label(card.emails.get_mut(i), label),
                Slot::Phone(i) => set_label(card.phones.get_mut(i), label),
                Slot::Url(i) => set_label(card.urls.get_mut(i), label),
                Slot::Address(i) => {
                    if let Some(a) = card.addresses.get_mut(i) {
                        a.custom_label = label;
                    }
                }
            }
        }
        if self.cards_seen >= self.limits.cards_max {
            return Err(VcardFileError::TooManyCards {
                cards_max: self.limits.cards_max,
            });
        }
        self.cards_seen += 1;
        match self.sink.as_mut() {
            Some(sink) => sink(card),
            None => self.out.cards.push(card),
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), VcardFileError> {
        if let Some(open) = self.card.take() {
            let begin = open.card.line;
            self.error(
                begin,
                CardErrorKind::UnterminatedCard,
                format!(
                    "the card that starts at line {begin} has no END:VCARD; imported what it holds"
                ),
            );
            self.close(open)?;
        }
        Ok(())
    }

    fn property(&mut self, b: &mut CardBuilder, line: &LogicalLine) {
        if b.card.property_count >= self.limits.properties_per_card_max {
            if !b.overflow_reported {
                b.overflow_reported = true;
                self.error(
                    line.number,
                    CardErrorKind::TooManyProperties,
                    format!(
                        "the card has more than {} properties; the rest are ignored",
                        self.limits.properties_per_card_max
                    ),
                );
            }
            return;
        }
        b.card.property_count += 1;
        if line.too_long {
            self.error(
                line.number,
                CardErrorKind::LineTooLong,
                format!(
                    "property longer than {} bytes ignored",
                    self.limits.line_length_bytes_max
                ),
            );
            return;
        }
        let prop = match parse_property(&line.bytes) {
            Ok(p) => p,
            Err(msg) => {
                self.error(line.number, CardErrorKind::MalformedLine, msg);
                return;
            }
        };
        let name = prop.name.as_str();
        if name == "PHOTO" {
            if !b.photo_done {
                match self.photo(&prop) {
                    Ok(p) => {
                        b.photo_done = true;
                        if self.keep_photos {
                            b.card.photo = Some(p);
                        }
                    }
                    Err((kind, msg)) => self.error(line.number, kind, msg),
                }
            }
            return;
        }
        if !matches!(
            name,
            "VERSION"
                | "FN"
                | "N"
                | "NICKNAME"
                | "ORG"
                | "TITLE"
                | "ROLE"
                | "EMAIL"
                | "TEL"
                | "URL"
                | "ADR"
                | "NOTE"
                | "CATEGORIES"
                | "BDAY"
                | "UID"
                | "X-ABUID"
                | "X-ABLABEL"
        ) {
            return;
        }
        let text = self.value_text(&prop);
        let card = &mut b.card;
        let group = prop.group.clone();
        let params = prop.params;
        let labelled = |value: String| Labelled {
            value,
            types: params.types.clone(),
            custom_label: None,
            pref: params.pref,
        };
        match name {
            "VERSION" => card.version = Some(text.trim().to_string()),
            "FN" => {
                let v = unescape_text(&text).trim().to_string();
                if card.formatted_name.is_none() && !v.is_empty() {
                    card.formatted_name = Some(v);
                }
            }
            "N" if card.name.is_none() => {
                let parts = components(&text, 5);
                let part = |i: usize| parts.get(i).cloned().unwrap_or_default();
                card.name = Some(StructuredName {
                    family: part(0),
                    given: part(1),
                    additional: part(2),
                    prefixes: part(3),
                    suffixes: part(4),
                });
            }
            "NICKNAME" => split_list_into(&mut card.nicknames, &text),
            "ORG" => {
                let parts = components(&text, COMPONENTS_PER_VALUE_MAX);
                if parts.iter().any(|p| !p.is_empty()) {
                    card.organisations.push(parts);
                }
            }
            "TITLE" => push_nonempty(&mut card.titles, unescape_text(&text)),
            "ROLE" => push_nonempty(&mut card.roles, unescape_text(&text)),
            "NOTE" => {
                let v = unescape_text(&text);
                if !v.trim().is_empty() {
                    card.notes.push(v);
                }
            }
            "CATEGORIES" => split_list_into(&mut card.categories, &text),
            "EMAIL" => {
                let v = unescape_text(&text);
                let v = v.trim();
                let v = strip_prefix_ignore_case(v, "mailto:").unwrap_or(v).trim();
                if !v.is_empty() {
                    card.emails.push(labelled(v.to_string()));
                    if let Some(g) = group {
                        b.group_slots.push((g, Slot::Email(card.emails.len() - 1)));
                    }
                }
            }
            "TEL" => {
                let v = unescape_text(&text);
                let mut v = v.trim();
                if params.value_type.as_deref() == Some("uri") {
                    v = strip_prefix_ignore_case(v, "tel:").unwrap_or(v).trim();
                }
                if !v.is_empty() {
                    card.phones.push(labelled(v.to_string()));
                    if let Some(g) = group {
                        b.group_slots.push((g, Slot::Phone(card.phones.len() - 1)));
                    }
                }
            }
            "URL" => {
                let v = unescape_text(&text).trim().to_string();
                if !v.is_empty() {
                    card.urls.push(labelled(v));
                    if let Some(g) = group {
                        b.group_slots.push((g, Slot::Url(card.urls.len() - 1)));
                    }
                }
            }
            "ADR" => {
                let components = components(&text, 7);
                if components.iter().any(|c| !c.is_empty()) {
                    card.addresses.push(Address {
                        components,
                        types: params.types.clone(),
                        custom_label: None,
                    });
                    if let Some(g) = group {
                        b.group_slots
                            .push((g, Slot::Address(card.addresses.len() - 1)));
                    }
                }
            }
            "BDAY" if card.birthday.is_none() => {
                let v = unescape_text(&text);
                match parse_partial_date(&v) {
                    Some(mut d) => {
                        if params.omit_year {
                            d.year = None;
                        }
                        card.birthday = Some(d);
                    }
                    None if params.value_type.as_deref() == Some("text") => {}
                    None => self.error(
                        line.number,
                        CardErrorKind::BadDate,
                        format!("BDAY '{}' is not a date; ignored", snippet(&v)),
                    ),
                }
            }
            "UID" => {
                let v = unescape_text(&text).trim().to_string();
                if card.uid.is_none() && !v.is_empty() {
                    card.uid = Some(v);
                }
            }
            "X-ABUID" => {
                let v = unescape_text(&text).trim().to_string();
                if card.apple_uid.is_none() && !v.is_empty() {
                    card.apple_uid = Some(v);
                }
            }
            "X-ABLABEL" => {
                if let Some(g) = group {
                    let v = unescape_text(&text).trim().to_string();
                    if !v.is_empty() {
                        b.group_labels.insert(g, v);
                    }
                }
            }
            _ => {}
        }
    }

    /// The value as text: transfer decoding, then charset.
    fn value_text(&self, prop: &RawProperty<'_>) -> String {
        let charset = prop.params.charset.as_deref();
        match prop.params.encoding {
            TransferEncoding::QuotedPrintable => decode_charset(&qp_decode(prop.value), charset),
            TransferEncoding::Base64 => match base64_decode_lenient(prop.value) {
                Ok(bytes) => decode_charset(&bytes, charset),
                Err(_) => decode_lossy(prop.value),
            },
            TransferEncoding::None if self.unicode_input => decode_lossy(prop.value),
            TransferEncoding::None => decode_charset(prop.value, charset),
        }
    }

    /// A base64 photo's bytes (empty when photos are not kept) and decoded size.
    fn base64_photo(&self, raw: &[u8]) -> Result<(Vec<u8>, usize), base64::DecodeError> {
        if self.keep_photos {
            let data = base64_decode_lenient(raw)?;
            let len = data.len();
            Ok((data, len))
        } else {
            Ok((Vec::new(), base64_decoded_len_lenient(raw)?))
        }
    }

    fn photo(&self, prop: &RawProperty<'_>) -> Result<Photo, (CardErrorKind, String)> {
        let cap = self.limits.photo_size_bytes_max;
        let too_large = |n: usize| {
            (
                CardErrorKind::PhotoTooLarge,
                format!("photo of about {n} bytes is over the {cap}-byte limit; photo skipped"),
            )
        };
        let media_type = prop.params.media_type.clone().or_else(|| {
            prop.params
                .types
                .iter()
                .find(|t| t.as_str() != "pref")
                .map(|t| format!("image/{t}"))
        });
        if prop.params.encoding == TransferEncoding::Base64 {
            let estimate = prop.value.len() / 4 * 3;
            if estimate > cap + cap / 8 + 16 {
                return Err(too_large(estimate));
            }
            let (data, len) = self.base64_photo(prop.value).map_err(|e| {
                (
                    CardErrorKind::BadPhoto,
                    format!("photo is not valid base64 ({e}); photo skipped"),
                )
            })?;
            if len > cap {
                return Err(too_large(len));
            }
            return Ok(Photo {
                media_type,
                source: PhotoSource::Inline(data),
            });
        }
        let text = decode_lossy(prop.value);
        let text = text.trim();
        if let Some(rest) = strip_prefix_ignore_case(text, "data:") {
            let (meta, payload) = rest.split_once(',').ok_or_else(|| {
                (
                    CardErrorKind::BadPhoto,
                    "data: URI without ','; photo skipped".to_string(),
                )
            })?;
            let is_base64 = meta.to_ascii_lowercase().ends_with(";base64");
            let mt = meta
                .split(';')
                .next()
                .filter(|m| !m.is_empty())
                .map(str::to_string);
            if payload.len() / 4 * 3 > cap + cap / 8 + 16 {
                return Err(too_large(payload.len() / 4 * 3));
            }
            let (data, len) = if is_base64 {
                self.base64_photo(payload.as_bytes()).map_err(|e| {
                    (
                        CardErrorKind::BadPhoto,
                        format!("data: URI is not valid base64 ({e}); photo skipped"),
                    )
                })?
            } else {
                let d = percent_decode(payload);
                let n = d.len();
                (d, n)
            };
            if len > cap {
                return Err(too_large(len));
            }
            return Ok(Photo {
                media_type: mt.or(media_type),
                source: PhotoSource::Inline(data),
            });
        }
        if text.is_empty() {
            return Err((CardErrorKind::BadPhoto, "empty PHOTO; skipped".to_string()));
        }
        if text.len() > 8 * 1024 {
            return Err((
                CardErrorKind::BadPhoto,
                "PHOTO link longer than 8 KiB; skipped".to_string(),
            ));
        }
        Ok(Photo {
            media_type,
            source: PhotoSource::Uri(text.to_string()),
        })
    }
}

fn set_label(item: Option<&mut Labelled>, label: Option<String>) {
    if let Some(item) = item {
        item.custom_label = label;
    }
}

fn push_nonempty(list: &mut Vec<String>, v: String) {
    let t = v.trim();
    if !t.is_empty() {
        list.push(t.to_string());
    }
}

/// Appends the items of a comma-separated text list (CATEGORIES, NICKNAME),
/// unescaped and trimmed, up to [`LIST_ITEMS_PER_CARD_MAX`] per card.
fn split_list_into(list: &mut Vec<String>, text: &str) {
    for p in split_unescaped_iter(text, ',') {
        if list.len() >= LIST_ITEMS_PER_CARD_MAX {
            break;
        }
        let item = unescape_text(p).trim().to_string();
        if !item.is_empty() {
            list.push(item);
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().nth(40).is_some() {
        out.push_str("...");
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(hs) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(hs, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> VcardImport {
        parse_vcards(s, &VcardLimits::default()).unwrap()
    }

    fn one(s: &str) -> ParsedCard {
        let r = parse(s.as_bytes());
        assert_eq!(r.cards.len(), 1, "{r:?}");
        r.cards.into_iter().next().unwrap()
    }

    fn utf16(s: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in s.encode_utf16() {
            let b = if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            };
            out.extend_from_slice(&b);
        }
        out
    }

    const JOSE: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:José Ñúñez\r\nEND:VCARD\r\n";

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(one(JOSE).formatted_name.as_deref(), Some("José Ñúñez"));
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice(JOSE.as_bytes());
        assert_eq!(
            parse(&bom).cards[0].formatted_name.as_deref(),
            Some("José Ñúñez")
        );
    }

    #[test]
    fn utf16_le_and_be_with_bom() {
        for be in [false, true] {
            let r = parse(&utf16(JOSE, be));
            assert_eq!(
                r.cards[0].formatted_name.as_deref(),
                Some("José Ñúñez"),
                "be={be}"
            );
        }
    }

    #[test]
    fn charset_params_and_windows_1252_fallback() {
        let mut latin1 = b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=ISO-8859-1:Jos".to_vec();
        latin1.extend_from_slice(&[0xE9, b'\r', b'\n']);
        latin1.extend_from_slice(b"NOTE;CHARSET=windows-1252:");
        latin1.extend_from_slice(&[0x80, b' ', 0x93, b'q', 0x94, b'\r', b'\n']);
        latin1.extend_from_slice(b"ORG:Caf");
        latin1.extend_from_slice(&[0xE9, b'\r', b'\n']);
        latin1.extend_from_slice(b"TITLE;CHARSET=UTF-8:Chef \xC3\xA9\r\nEND:VCARD\r\n");
        let c = &parse(&latin1).cards[0];
        assert_eq!(c.formatted_name.as_deref(), Some("José"));
        assert_eq!(c.notes, vec!["€ \u{201C}q\u{201D}".to_string()]);
        // invalid UTF-8 without a charset falls back to Windows-1252 byte by byte
        assert_eq!(c.organisations, vec![vec!["Café".to_string()]]);
        assert_eq!(c.titles, vec!["Chef é".to_string()]);
    }

    #[test]
    fn folding_with_crlf_or_lf_and_space_or_tab() {
        let c = one("BEGIN:VCARD\nVERSION:3.0\nFN:Jo\n hn\r\n\t Doe\nEND:VCARD\n");
        assert_eq!(c.formatted_name.as_deref(), Some("John Doe"));
    }

    #[test]
    fn quoted_printable_soft_breaks_then_charset() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=C3=91=20=C3=\r\n=91;;;;\r\n\
             NOTE;QUOTED-PRINTABLE;CHARSET=ISO-8859-1:caf=E9=0D=\r\n=0Aline 2\r\nEND:VCARD\r\n",
        );
        assert_eq!(c.name.unwrap().family, "Ñ Ñ");
        assert_eq!(c.notes, vec!["café\nline 2".to_string()]);
    }

    #[test]
    fn qp_soft_break_does_not_swallow_end() {
        let r = parse(
            b"BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:abc=\r\nEND:VCARD\r\n",
        );
        assert_eq!(r.cards.len(), 1);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    #[test]
    fn bare_params_type_lists_and_repeated_types() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:A\r\nTEL;CELL;PREF:1\r\nTEL;TYPE=WORK,VOICE:2\r\n\
             TEL;type=HOME;type=FAX:3\r\nTEL;TYPE=\"work,cell\";PREF=1:4\r\nEND:VCARD\r\n",
        );
        let t: Vec<(&str, Vec<&str>, bool)> = c
            .phones
            .iter()
            .map(|p| {
                (
                    p.value.as_str(),
                    p.types.iter().map(String::as_str).collect(),
                    p.pref,
                )
            })
            .collect();
        assert_eq!(
            t,
            vec![
                ("1", vec!["cell", "pref"], true),
                ("2", vec!["work", "voice"], false),
                ("3", vec!["home", "fax"], false),
                ("4", vec!["work", "cell"], true),
            ]
        );
    }

    #[test]
    fn value_uri_tel_and_mailto() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nTEL;VALUE=uri:tel:+1-555-0100\r\nEMAIL:mailto:a@b.c\r\nEND:VCARD\r\n",
        );
        assert_eq!(c.phones[0].value, "+1-555-0100");
        assert_eq!(c.emails[0].value, "a@b.c");
    }

    #[test]
    fn rfc6868_param_escapes() {
        assert_eq!(rfc6868_decode("a^nb^^c^'d^x"), "a\nb^c\"d^x");
        let c = one("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nTEL;TYPE=\"x^'y^'\":1\r\nEND:VCARD\r\n");
        assert_eq!(c.phones[0].types, vec!["x\"y\"".to_string()]);
    }

    #[test]
    fn text_escapes_including_google_colon() {
        assert_eq!(unescape_text(r"a\nb\, c\; d\\e\:f\N"), "a\nb, c; d\\e:f\n");
        assert_eq!(unescape_text(r"trailing\"), "trailing\\");
        assert_eq!(
            unescape_text(r#"say \"hi\" C:\Users"#),
            "say \"hi\" C:\\Users"
        );
        assert_eq!(unescape_text("crlf\r\nlf"), "crlf\nlf");
    }

    #[test]
    fn structured_values_split_on_unescaped_semicolons() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe\\;Smith;John;Richter\\, James;Mr.;Sr.\r\nADR:;;1 Main St\\; Rear;Town;;;\r\nEND:VCARD\r\n",
        );
        let n = c.name.unwrap();
        assert_eq!(
            (n.family.as_str(), n.given.as_str(), n.additional.as_str()),
            ("Doe;Smith", "John", "Richter, James")
        );
        assert_eq!(c.addresses[0].components[2], "1 Main St; Rear");
        assert_eq!(c.addresses[0].components.len(), 7);
    }

    #[test]
    fn groups_attach_labels_and_apple_labels_are_mapped() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nitem1.X-ABLabel:_$!<Mobile>!$_\r\nitem1.TEL:1\r\n\
             item2.TEL:2\r\nitem2.X-ABLabel:AssistantPhone\r\nitem3.EMAIL:a@b.c\r\nEND:VCARD\r\n",
        );
        assert_eq!(c.phones[0].custom_label.as_deref(), Some("mobile"));
        assert_eq!(c.phones[1].custom_label.as_deref(), Some("AssistantPhone"));
        assert_eq!(c.emails[0].custom_label, None);
    }

    #[test]
    fn dates_in_every_form() {
        let d = |y, m, day| {
            Some(PartialDate {
                year: y,
                month: m,
                day,
            })
        };
        assert_eq!(parse_partial_date("1980-03-22"), d(Some(1980), 3, 22));
        assert_eq!(parse_partial_date("19800322"), d(Some(1980), 3, 22));
        assert_eq!(parse_partial_date("--0203"), d(None, 2, 3));
        assert_eq!(parse_partial_date("--02-03"), d(None, 2, 3));
        assert_eq!(parse_partial_date("--0229"), d(None, 2, 29));
        assert_eq!(
            parse_partial_date("1980-03-22T10:00:00Z"),
            d(Some(1980), 3, 22)
        );
        assert_eq!(parse_partial_date("19800322T100000"), d(Some(1980), 3, 22));
        assert_eq!(parse_partial_date("1604-03-22"), d(None, 3, 22));
        assert_eq!(parse_partial_date("1980-02-30"), None);
        assert_eq!(parse_partial_date("1980-0322"), None);
        assert_eq!(parse_partial_date("T1000"), None);
        assert_eq!(parse_partial_date("circa 1800"), None);
        let c = one(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nBDAY;X-APPLE-OMIT-YEAR=1604:1604-05-06\r\nEND:VCARD\r\n",
        );
        assert_eq!(c.birthday, d(None, 5, 6));
        let c = one(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nBDAY;X-APPLE-OMIT-YEAR=1604:2000-05-06\r\nEND:VCARD\r\n",
        );
        assert_eq!(c.birthday, d(None, 5, 6));
    }

    #[test]
    fn bad_date_is_reported_and_card_kept() {
        let r = parse(b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nBDAY:someday\r\nEND:VCARD\r\n");
        assert_eq!(r.cards.len(), 1);
        assert_eq!(r.errors[0].kind, CardErrorKind::BadDate);
        assert_eq!(r.errors[0].line, 4);
    }

    #[test]
    fn base64_photo_ignoring_whitespace_and_data_uri() {
        let c = one(
            "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nPHOTO;ENCODING=b;TYPE=JPEG:aGVs\r\n bG8g\r\n  d29y bGQ=\r\nEND:VCARD\r\n",
        );
        let p = c.photo.unwrap();
        assert_eq!(p.source, PhotoSource::Inline(b"hello world".to_vec()));
        assert_eq!(p.media_type.as_deref(), Some("image/jpeg"));
        let c = one(
            "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:A\r\nPHOTO:data:image/png;base64,aGk=\r\nEND:VCARD\r\n",
        );
        let p = c.photo.unwrap();
        assert_eq!(p.source, PhotoSource::Inline(b"hi".to_vec()));
        assert_eq!(p.media_type.as_deref(), Some("image/png"));
        let c = one("BEGIN:VCARD\r\nVERSION:2.1\r\nFN:A\r\nPHOTO;BASE64:aGk\r\n\r\nEND:VCARD\r\n");
        assert_eq!(c.photo.unwrap().source, PhotoSource::Inline(b"hi".to_vec()));
    }

    #[test]
    fn bad_or_oversized_photo_never_aborts_the_card() {
        let limits = VcardLimits {
            photo_size_bytes_max: 8,
            ..VcardLimits::default()
        };
        let r = parse_vcards(
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nPHOTO;ENCODING=b:!!!notbase64\r\nFN:A\r\nEND:VCARD\r\n\
              BEGIN:VCARD\r\nVERSION:3.0\r\nFN:B\r\nPHOTO;ENCODING=b:aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=\r\nEND:VCARD\r\n",
            &limits,
        )
        .unwrap();
        assert_eq!(r.cards.len(), 2);
        assert!(r.cards.iter().all(|c| c.photo.is_none()));
        let kinds: Vec<_> = r.errors.iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (3, CardErrorKind::BadPhoto),
                (9, CardErrorKind::PhotoTooLarge)
            ]
        );
    }

    #[test]
    fn one_bad_card_never_aborts_the_file() {
        let r = parse(
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nthis is not a property\r\nFN:A\r\nEND:VCARD\r\n\
              garbage between cards\r\nBEGIN:VCARD\r\nFN:B\r\nBEGIN:VCARD\r\nFN:C\r\nEND:VCARD\r\nBEGIN:VCARD\r\nFN:D\r\n",
        );
        let names: Vec<_> = r
            .cards
            .iter()
            .map(|c| c.formatted_name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["A", "B", "C", "D"]);
        let kinds: Vec<_> = r.errors.iter().map(|e| (e.line, e.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (3, CardErrorKind::MalformedLine),
                (6, CardErrorKind::OutsideCard),
                (9, CardErrorKind::UnterminatedCard),
                (12, CardErrorKind::UnterminatedCard),
            ]
        );
    }

    #[test]
    fn caps_are_enforced() {
        let limits = VcardLimits {
            input_size_bytes_max: 10,
            ..VcardLimits::default()
        };
        assert!(matches!(
            parse_vcards(JOSE.as_bytes(), &limits),
            Err(VcardFileError::TooLarge { .. })
        ));
        let limits = VcardLimits {
            cards_max: 1,
            ..VcardLimits::default()
        };
        let two = format!("{JOSE}{JOSE}");
        assert_eq!(
            parse_vcards(two.as_bytes(), &limits),
            Err(VcardFileError::TooManyCards { cards_max: 1 })
        );
        let limits = VcardLimits {
            properties_per_card_max: 3,
            line_length_bytes_max: 20,
            ..VcardLimits::default()
        };
        let r = parse_vcards(
            b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:A\r\nNOTE:0123456789012345678901234\r\nEMAIL:x@y.z\r\nEND:VCARD\r\n",
            &limits,
        )
        .unwrap();
        assert_eq!(r.cards[0].formatted_name.as_deref(), Some("A"));
        assert!(r.cards[0].notes.is_empty());
        assert!(r.cards[0].emails.is_empty());
        let kinds: Vec<_> = r.errors.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![CardErrorKind::LineTooLong, CardErrorKind::TooManyProperties]
        );
        assert_eq!(
            parse_vcards(b"hello", &VcardLimits::default()),
            Err(VcardFileError::NotVcard)
        );
        assert_eq!(
            parse_vcards(b"", &VcardLimits::default()),
            Err(VcardFileError::NotVcard)
        );
    }

    #[test]
    fn card_errors_display_their_line() {
        let e = CardError {
            line: 7,
            kind: CardErrorKind::BadDate,
            message: "BDAY 'x' is not a date; ignored".into(),
        };
        assert_eq!(e.to_string(), "line 7: BDAY 'x' is not a date; ignored");
    }

    #[test]
    fn lone_cr_line_endings() {
        let c = one("BEGIN:VCARD\rVERSION:3.0\rFN:Mac\r Classic\rEND:VCARD\r");
        assert_eq!(c.formatted_name.as_deref(), Some("MacClassic"));
    }
}
