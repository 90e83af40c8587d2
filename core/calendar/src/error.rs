//! Errors of reading a calendar file: every one names the physical line (1-based; 0 when the
//! error is about the whole file) so the person can open the file and see it.

/// A calendar file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", if *.line > 0 { format!("line {}: ", .line) } else { String::new() })]
pub struct IcsError {
    pub line: usize,
    pub kind: IcsErrorKind,
}

impl IcsError {
    pub(crate) fn new(line: usize, kind: IcsErrorKind) -> Self {
        Self { line, kind }
    }
}

/// What is wrong, with what to do about it where there is something to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsErrorKind {
    #[error(
        "the file is {size_bytes} bytes, more than the {size_bytes_max} bytes a calendar file may have; split the export"
    )]
    TooLarge {
        size_bytes: usize,
        size_bytes_max: usize,
    },
    #[error("the file is empty")]
    Empty,
    #[error("not UTF-8 text (save the calendar as UTF-8)")]
    NotUtf8,
    #[error("a content line is longer than {line_length_bytes_max} bytes")]
    LineTooLong { line_length_bytes_max: usize },
    #[error("damaged content line: {0}")]
    BadContentLine(&'static str),
    #[error("BEGIN with an invalid component name {0:?}")]
    BadComponentName(String),
    #[error("components nested deeper than {depth_max}")]
    TooDeep { depth_max: usize },
    #[error("more than {components_max} components")]
    TooManyComponents { components_max: usize },
    #[error("{component} has more than {properties_max} properties")]
    TooManyProperties {
        component: String,
        properties_max: usize,
    },
    #[error("a property has more than {parameters_max} parameters")]
    TooManyParameters { parameters_max: usize },
    #[error("END:{0} without a BEGIN")]
    EndWithoutBegin(String),
    #[error("END:{found} closes BEGIN:{expected} of line {begin_line}")]
    MismatchedEnd {
        expected: String,
        found: String,
        begin_line: usize,
    },
    #[error("BEGIN:{0} is never closed (truncated file?)")]
    Unterminated(String),
    #[error("property {0} outside any component")]
    OutsideComponent(String),
    #[error("no VCALENDAR in the file")]
    NoCalendar,
    #[error("{property}: {value:?} is not a date or date-time (YYYYMMDD or YYYYMMDDTHHMMSS[Z])")]
    BadDate { property: String, value: String },
    #[error("{property}: {value:?} is not a duration (like PT1H30M)")]
    BadDuration { property: String, value: String },
    #[error(
        "unknown time zone {0:?} (neither an IANA name, a Windows name nor defined by a VTIMEZONE of the file)"
    )]
    UnknownZone(String),
    #[error("VEVENT without {0}")]
    Missing(&'static str),
    #[error("RRULE: {0}")]
    BadRecurrence(String),
    #[error("the file yields more than {occurrences_max} occurrences in the window")]
    TooManyOccurrences { occurrences_max: usize },
}
