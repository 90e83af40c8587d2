//! Errors of reading a calendar file: every one names the physical line (1-based; 0 when the
//! error is about the whole file) so the person can open the file and see it.

/// A calendar file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", if *.line > 0 { format!("line {}: ", .line) } else { String::new() })]
pub struct IcsError {
    /// Physical line (1-based); 0 when the error is about the whole file.
    pub line: usize,
    /// What is wrong.
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
    /// The file is larger than the cap.
    TooLarge {
        /// The file's size.
        size_bytes: usize,
        /// The cap.
        size_bytes_max: usize,
    },
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// Not UTF-8 text (save the calendar as UTF-8).
    #[error("not UTF-8 text (save the calendar as UTF-8)")]
    NotUtf8,
    /// A content line is longer than … bytes.
    #[error("a content line is longer than {line_length_bytes_max} bytes")]
    LineTooLong {
        /// The cap.
        line_length_bytes_max: usize,
    },
    /// Damaged content line: ….
    #[error("damaged content line: {0}")]
    BadContentLine(&'static str),
    /// BEGIN with an invalid component name ….
    #[error("BEGIN with an invalid component name {0:?}")]
    BadComponentName(String),
    /// Components nested deeper than ….
    #[error("components nested deeper than {depth_max}")]
    TooDeep {
        /// The cap.
        depth_max: usize,
    },
    /// More than … components.
    #[error("more than {components_max} components")]
    TooManyComponents {
        /// The cap.
        components_max: usize,
    },
    /// … has more than … properties.
    #[error("{component} has more than {properties_max} properties")]
    TooManyProperties {
        /// The component's name.
        component: String,
        /// The cap.
        properties_max: usize,
    },
    /// A property has more than … parameters.
    #[error("a property has more than {parameters_max} parameters")]
    TooManyParameters {
        /// The cap.
        parameters_max: usize,
    },
    /// END:… without a BEGIN.
    #[error("END:{0} without a BEGIN")]
    EndWithoutBegin(String),
    /// END:… closes BEGIN:… of line ….
    #[error("END:{found} closes BEGIN:{expected} of line {begin_line}")]
    MismatchedEnd {
        /// The component BEGIN opened.
        expected: String,
        /// The component END closed.
        found: String,
        /// Line of the BEGIN.
        begin_line: usize,
    },
    /// BEGIN:… is never closed (truncated file?).
    #[error("BEGIN:{0} is never closed (truncated file?)")]
    Unterminated(String),
    /// Property … outside any component.
    #[error("property {0} outside any component")]
    OutsideComponent(String),
    /// No VCALENDAR in the file.
    #[error("no VCALENDAR in the file")]
    NoCalendar,
    /// …: … is not a date or date-time (YYYYMMDD or YYYYMMDDTHHMMSS[Z]).
    #[error("{property}: {value:?} is not a date or date-time (YYYYMMDD or YYYYMMDDTHHMMSS[Z])")]
    BadDate {
        /// The property's name.
        property: String,
        /// The value as written.
        value: String,
    },
    /// …: … is not a duration (like PT1H30M).
    #[error("{property}: {value:?} is not a duration (like PT1H30M)")]
    BadDuration {
        /// The property's name.
        property: String,
        /// The value as written.
        value: String,
    },
    #[error(
        "unknown time zone {0:?} (neither an IANA name, a Windows name nor defined by a VTIMEZONE of the file)"
    )]
    /// A TZID that names no zone.
    UnknownZone(String),
    /// VEVENT without ….
    #[error("VEVENT without {0}")]
    Missing(&'static str),
    /// RRULE: ….
    #[error("RRULE: {0}")]
    BadRecurrence(String),
    /// The file yields more than … occurrences in the window.
    #[error("the file yields more than {occurrences_max} occurrences in the window")]
    TooManyOccurrences {
        /// The cap.
        occurrences_max: usize,
    },
}
