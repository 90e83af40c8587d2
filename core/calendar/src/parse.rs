//! The iCalendar syntax layer: bytes → a tree of components holding properties.
//!
//! Data flow: the input (with or without a byte-order mark, CRLF or LF line ends) is split into
//! physical lines, folded lines are joined (a line that starts with a space or tab continues the
//! previous one), each logical content line is split into name, parameters (quoted values and
//! RFC 6868 `^n`/`^^`/`^'` escapes decoded) and value, and `BEGIN`/`END` lines build the tree
//! with an explicit stack (no recursion, so nesting cannot overflow the call stack).
//!
//! Every limit in [`IcsLimits`] is checked before the memory is taken, and every error carries the
//! physical line number where the offending content line starts, so "line 4" is the line a
//! person sees in an editor. Meaning (dates, zones, attendees) is the job of `expand`.

use crate::error::{IcsError, IcsErrorKind};

/// Caps on what one file may make the parser hold. Defaults suit a calendar export of many
/// years; the fuzz target and the property tests use smaller ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcsLimits {
    /// Largest file accepted.
    pub input_size_bytes_max: usize,
    /// One logical (unfolded) content line.
    pub line_length_bytes_max: usize,
    /// All components (VCALENDAR, VEVENT, VALARM, VTIMEZONE, ...) in the file.
    pub components_max: usize,
    /// Properties one component may hold.
    pub properties_per_component_max: usize,
    /// The cap.
    pub depth_max: usize,
    /// Parameters one property may carry.
    pub parameters_per_property_max: usize,
    /// Occurrences one recurring series may yield inside the asked window.
    pub occurrences_per_series_max: u16,
    /// Occurrences the whole file may yield inside the asked window.
    pub occurrences_max: usize,
}

impl Default for IcsLimits {
    fn default() -> Self {
        Self {
            input_size_bytes_max: 64 << 20,
            line_length_bytes_max: 256 << 10,
            components_max: 500_000,
            properties_per_component_max: 4_096,
            depth_max: 8,
            parameters_per_property_max: 64,
            occurrences_per_series_max: 2_000,
            occurrences_max: 200_000,
        }
    }
}

/// One parameter: its name upper-cased, its values with quotes removed and RFC 6868 decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Display name.
    pub name: String,
    /// Values, quotes removed and RFC 6868 decoded.
    pub values: Vec<String>,
}

/// One content line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-cased name (`DTSTART`, `ATTENDEE`, `X-FOO`).
    pub name: String,
    /// Parameters in file order.
    pub params: Vec<Param>,
    /// Raw value (text escapes are decoded by the reader of each property, not here).
    pub value: String,
    /// Physical line (1-based) where this content line starts.
    pub line: usize,
}

impl Property {
    /// First value of the named parameter (name compared case-insensitively).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .and_then(|p| p.values.first())
            .map(String::as_str)
    }
}

/// A component (`VCALENDAR`, `VEVENT`, ...) with its properties and sub-components.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Display name.
    pub name: String,
    /// Properties in file order.
    pub properties: Vec<Property>,
    /// Sub-components (VALARM, STANDARD, ...).
    pub children: Vec<Component>,
    /// Line of its BEGIN.
    pub line: usize,
}

impl Component {
    /// The first property named `name` (upper-case).
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
    /// Every property named `name` (upper-case), in file order.
    pub fn props<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.properties.iter().filter(move |p| p.name == name)
    }
    /// Bytes this component retains (for the memory-bound property).
    pub fn retained_size_bytes(&self) -> usize {
        let own: usize = self
            .properties
            .iter()
            .map(|p| {
                p.name.len()
                    + p.value.len()
                    + p.params
                        .iter()
                        .map(|q| q.name.len() + q.values.iter().map(String::len).sum::<usize>())
                        .sum::<usize>()
            })
            .sum();
        self.name.len()
            + own
            + self
                .children
                .iter()
                .map(Component::retained_size_bytes)
                .sum::<usize>()
    }
}

/// Parses a whole file into its top-level components (normally one VCALENDAR; some exports
/// concatenate several).
pub(crate) fn parse_components(
    input: &[u8],
    limits: &IcsLimits,
) -> Result<Vec<Component>, IcsError> {
    if input.len() > limits.input_size_bytes_max {
        return Err(IcsError::new(
            0,
            IcsErrorKind::TooLarge {
                size_bytes: input.len(),
                size_bytes_max: limits.input_size_bytes_max,
            },
        ));
    }
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut roots: Vec<Component> = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    let mut components = 0usize;
    let mut saw_content = false;

    for logical in LogicalLines::new(input, limits.line_length_bytes_max) {
        let (line_no, bytes) = logical?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| IcsError::new(line_no, IcsErrorKind::NotUtf8))?;
        if text.trim().is_empty() {
            continue;
        }
        saw_content = true;
        let prop = parse_content_line(text, line_no, limits)?;
        match prop.name.as_str() {
            "BEGIN" => {
                let name = prop.value.trim().to_ascii_uppercase();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::BadComponentName(prop.value),
                    ));
                }
                if stack.len() >= limits.depth_max {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::TooDeep {
                            depth_max: limits.depth_max,
                        },
                    ));
                }
                components += 1;
                if components > limits.components_max {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::TooManyComponents {
                            components_max: limits.components_max,
                        },
                    ));
                }
                stack.push(Component {
                    name,
                    properties: Vec::new(),
                    children: Vec::new(),
                    line: line_no,
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let Some(done) = stack.pop() else {
                    return Err(IcsError::new(line_no, IcsErrorKind::EndWithoutBegin(name)));
                };
                if done.name != name {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::MismatchedEnd {
                            expected: done.name,
                            found: name,
                            begin_line: done.line,
                        },
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => roots.push(done),
                }
            }
            _ => {
                let Some(current) = stack.last_mut() else {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::OutsideComponent(prop.name),
                    ));
                };
                if current.properties.len() >= limits.properties_per_component_max {
                    return Err(IcsError::new(
                        line_no,
                        IcsErrorKind::TooManyProperties {
                            component: current.name.clone(),
                            properties_max: limits.properties_per_component_max,
                        },
                    ));
                }
                current.properties.push(prop);
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(IcsError::new(
            open.line,
            IcsErrorKind::Unterminated(open.name),
        ));
    }
    if !saw_content {
        return Err(IcsError::new(0, IcsErrorKind::Empty));
    }
    Ok(roots)
}

/// Splits input into unfolded logical lines with the physical line number where each starts.
struct LogicalLines<'a> {
    rest: &'a [u8],
    next_line_no: usize,
    line_length_bytes_max: usize,
}

impl<'a> LogicalLines<'a> {
    fn new(input: &'a [u8], line_length_bytes_max: usize) -> Self {
        Self {
            rest: input,
            next_line_no: 1,
            line_length_bytes_max,
        }
    }

    /// Takes one physical line (without its CR/LF).
    fn take_physical(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match self.rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, &self.rest[self.rest.len()..]),
        };
        self.rest = rest;
        self.next_line_no += 1;
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

impl Iterator for LogicalLines<'_> {
    type Item = Result<(usize, Vec<u8>), IcsError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start_no = self.next_line_no;
        let first = self.take_physical()?;
        if first.len() > self.line_length_bytes_max {
            return Some(Err(too_long(start_no, self.line_length_bytes_max)));
        }
        let mut buf = first.to_vec();
        // Folded continuation lines start with one space or tab, which is dropped.
        while matches!(self.rest.first(), Some(b' ' | b'\t')) {
            let Some(cont) = self.take_physical() else {
                break;
            };
            let cont = &cont[1..];
            if buf.len() + cont.len() > self.line_length_bytes_max {
                return Some(Err(too_long(start_no, self.line_length_bytes_max)));
            }
            buf.extend_from_slice(cont);
        }
        Some(Ok((start_no, buf)))
    }
}

fn too_long(line: usize, max: usize) -> IcsError {
    IcsError::new(
        line,
        IcsErrorKind::LineTooLong {
            line_length_bytes_max: max,
        },
    )
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

/// `name *(";" param) ":" value`, where a param is `name "=" value *("," value)` and a value is
/// either quoted (no DQUOTE inside) or runs to the next `;`, `:` or `,`.
fn parse_content_line(text: &str, line: usize, limits: &IcsLimits) -> Result<Property, IcsError> {
    let bad = |why: &'static str| IcsError::new(line, IcsErrorKind::BadContentLine(why));
    let name_end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(bad("a content line must start with a property name"));
    }
    // Group prefixes (`item1.TEL`) are vCard; a dot here is a damaged line.
    let mut rest = &text[name_end..];
    let mut params = Vec::new();
    loop {
        let mut chars = rest.chars();
        match chars.next() {
            Some(':') => {
                rest = chars.as_str();
                break;
            }
            Some(';') => {
                rest = chars.as_str();
                let pend = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
                let pname = &rest[..pend];
                if pname.is_empty() {
                    return Err(bad("empty parameter name (two ';' in a row?)"));
                }
                rest = &rest[pend..];
                let Some(after_eq) = rest.strip_prefix('=') else {
                    return Err(bad("a parameter needs '=' and a value"));
                };
                rest = after_eq;
                let mut values = Vec::new();
                loop {
                    let (value, after) = if let Some(q) = rest.strip_prefix('"') {
                        let Some(close) = q.find('"') else {
                            return Err(bad("a quoted parameter value is not closed"));
                        };
                        (&q[..close], &q[close + 1..])
                    } else {
                        let end = rest.find([';', ':', ',', '"']).unwrap_or(rest.len());
                        if rest[end..].starts_with('"') {
                            return Err(bad("a quote in the middle of a parameter value"));
                        }
                        (&rest[..end], &rest[end..])
                    };
                    values.push(decode_rfc6868(value));
                    rest = after;
                    match rest.strip_prefix(',') {
                        Some(more) => rest = more,
                        None => break,
                    }
                }
                if params.len() >= limits.parameters_per_property_max {
                    return Err(IcsError::new(
                        line,
                        IcsErrorKind::TooManyParameters {
                            parameters_max: limits.parameters_per_property_max,
                        },
                    ));
                }
                params.push(Param {
                    name: pname.to_ascii_uppercase(),
                    values,
                });
            }
            _ => return Err(bad("expected ':' before the value")),
        }
    }
    Ok(Property {
        name: name.to_ascii_uppercase(),
        params,
        value: rest.to_owned(),
        line,
    })
}

/// RFC 6868: `^n` → newline, `^^` → `^`, `^'` → `"`; a `^` before anything else stays as is.
fn decode_rfc6868(value: &str) -> String {
    if !value.contains('^') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '^' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('n') => {
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
    }
    out
}

/// Text value escapes (RFC 5545 3.3.11): `\n`/`\N` → newline, `\,` `\;` `\\` → the character.
pub(crate) fn unescape_text(value: &str) -> String {
    if !value.contains('\\') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Property, IcsError> {
        parse_content_line(text, 7, &IcsLimits::default())
    }

    #[test]
    fn quoted_params_and_rfc6868() {
        let p = one("ATTENDEE;CN=\"Doe; Jane: ^'J^'\";X=a,\"b,c\",d:mailto:j@x").unwrap();
        assert_eq!(p.param("cn"), Some("Doe; Jane: \"J\""));
        assert_eq!(p.params[1].values, vec!["a", "b,c", "d"]);
        assert_eq!(p.value, "mailto:j@x");
        assert_eq!(decode_rfc6868("a^nb^^c^'d^x"), "a\nb^c\"d^x");
    }

    #[test]
    fn damaged_lines_name_their_line() {
        for bad in [
            "DTSTART;;VALUE=DATE:1",
            ";X=1:v",
            "X;Y:v",
            "X;Y=\"open:v",
            "NOVALUE",
            "X;Y=a\"b:v",
        ] {
            let e = one(bad).unwrap_err();
            assert_eq!(e.line, 7, "{bad}");
        }
    }

    #[test]
    fn unfolding_keeps_first_line_number() {
        let input = b"BEGIN:VCALENDAR\r\nX-A:one\r\n  two\r\n\tthree\r\nEND:VCALENDAR";
        let c = parse_components(input, &IcsLimits::default()).unwrap();
        let p = &c[0].properties[0];
        assert_eq!(p.value, "one twothree");
        assert_eq!(p.line, 2);
    }

    #[test]
    fn text_escapes() {
        assert_eq!(unescape_text(r"a\,b\;c\\d\ne\N"), "a,b;c\\d\ne\n");
    }
}
