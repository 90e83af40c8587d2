//! Time-zone names of real calendar files → IANA zones (chrono-tz's copy of the database).
//!
//! Exporters write TZID in several ways: an IANA name (Google, Apple, khal), an IANA name behind
//! a vendor prefix (`/mozilla.org/20070129_1/Europe/Berlin`, `custom_America/New_York`), a
//! Windows name (Outlook, Exchange: `W. Europe Standard Time`), or a name that only the file's
//! own VTIMEZONE explains (then X-LIC-LOCATION, or else its standard offset, is used). Resolution
//! tries them in that order; a name none explains is an error for the event, not a guess.

use chrono_tz::Tz;

use crate::parse::Component;

/// The Windows zone names Outlook and Exchange write most, from CLDR's windowsZones (territory
/// 001 column). Names not here fall back to the file's VTIMEZONE.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time", "America/Denver"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time", "America/New_York"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("UTC", "Etc/UTC"),
    ("Coordinated Universal Time", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Calcutta"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
];

/// Resolves a TZID of `calendar` (whose VTIMEZONE components may define it).
pub(crate) fn resolve(tzid: &str, calendar: &Component) -> Option<Tz> {
    let tzid = tzid.trim();
    if let Ok(tz) = tzid.parse::<Tz>() {
        return Some(tz);
    }
    if let Some(tz) = iana_suffix(tzid) {
        return Some(tz);
    }
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(tzid))
    {
        return iana.parse().ok();
    }
    let vtz = calendar.children.iter().find(|c| {
        c.name == "VTIMEZONE" && c.prop("TZID").is_some_and(|p| p.value.trim() == tzid)
    })?;
    if let Some(tz) = vtz
        .prop("X-LIC-LOCATION")
        .and_then(|p| p.value.trim().parse::<Tz>().ok())
    {
        return Some(tz);
    }
    // Last resort: the standard offset, as a fixed Etc/GMT zone (only whole hours exist there).
    let standard = vtz
        .children
        .iter()
        .find(|c| c.name == "STANDARD")
        .or_else(|| vtz.children.first())?;
    let offset = standard.prop("TZOFFSETTO")?.value.trim().to_owned();
    let (sign, digits) = match offset.as_bytes().first()? {
        b'+' => (1i32, &offset[1..]),
        b'-' => (-1i32, &offset[1..]),
        _ => return None,
    };
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) || &digits[2..4] != "00" {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    // Etc/GMT signs are inverted (POSIX): UTC+2 is Etc/GMT-2.
    let name = match sign * hours {
        0 => "Etc/UTC".to_owned(),
        h if h > 0 => format!("Etc/GMT-{h}"),
        h => format!("Etc/GMT+{}", -h),
    };
    name.parse().ok()
}

/// An IANA name at the end of a vendor-prefixed TZID.
fn iana_suffix(tzid: &str) -> Option<Tz> {
    if tzid.len() > 200 {
        return None;
    }
    tzid.char_indices()
        .filter(|(_, c)| matches!(c, '/' | '_' | '-' | ' '))
        .map(|(i, c)| i + c.len_utf8())
        .filter(|&i| i < tzid.len())
        .find_map(|i| {
            tzid[i..]
                .parse::<Tz>()
                .ok()
                .filter(|_| tzid[i..].contains('/'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_real_exporters() {
        let empty = Component::default();
        assert_eq!(resolve("Europe/Berlin", &empty), Some(Tz::Europe__Berlin));
        assert_eq!(
            resolve("/mozilla.org/20070129_1/Europe/Berlin", &empty),
            Some(Tz::Europe__Berlin)
        );
        assert_eq!(
            resolve("custom_America/New_York", &empty),
            Some(Tz::America__New_York)
        );
        assert_eq!(
            resolve("Central Standard Time", &empty),
            Some(Tz::America__Chicago)
        );
        assert_eq!(resolve("Nowhere Standard Time", &empty), None);
    }
}
