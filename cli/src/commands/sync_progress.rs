//! The progress line of `kith sync --watch`: turns the sync engine's
//! [`RelayEvent::Progress`] events into one status line on stderr,
//! rewritten in place on a terminal and ended when the transfer finishes
//! (plain lines when stderr is not a terminal).

use kith_core::sync::{RelayEvent, Transfer};

/// A transfer's progress as one status line (None for other events):
/// "snapshot: 3.1 of 6.0 MB (52%)", "pulling: 1200 of 5000 entries (0.8 MB)".
pub(crate) fn progress_line(e: &RelayEvent) -> Option<(String, bool)> {
    let RelayEvent::Progress {
        transfer,
        done_bytes,
        total_bytes,
        done_entries,
        total_entries,
    } = e
    else {
        return None;
    };
    let mb = |b: u64| b as f64 / 1e6;
    let pct = |d: u64, t: u64| (d.min(t) * 100).checked_div(t).unwrap_or(100);
    let (what, done) = match transfer {
        Transfer::SnapshotDownload => ("downloading the snapshot", true),
        Transfer::SnapshotUpload => ("uploading a snapshot", true),
        Transfer::Pull => ("pulling", false),
    };
    let (text, finished) = match (done, total_bytes, total_entries) {
        (true, Some(t), _) => (
            format!(
                "{what}: {:.1} of {:.1} MB ({}%)",
                mb(*done_bytes),
                mb(*t),
                pct(*done_bytes, *t)
            ),
            done_bytes >= t,
        ),
        (false, _, Some(t)) => (
            format!(
                "{what}: {done_entries} of {t} entries ({:.1} MB, {}%)",
                mb(*done_bytes),
                pct(*done_entries, *t)
            ),
            done_entries >= t,
        ),
        _ => (
            format!("{what}: {done_entries} entries ({:.1} MB)", mb(*done_bytes)),
            false,
        ),
    };
    Some((text, finished))
}

/// Rewrites the progress line in place on a terminal (ends it when the
/// transfer finished); prints plain lines otherwise.
pub(crate) fn to_stderr((text, finished): &(String, bool)) -> std::io::Result<()> {
    use std::io::{IsTerminal, Write};
    let mut err = std::io::stderr();
    if err.is_terminal() {
        write!(err, "\r\x1b[2K{text}")?;
        if *finished {
            writeln!(err)?;
        }
    } else {
        writeln!(err, "{text}")?;
    }
    err.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(
        transfer: Transfer,
        done: (u64, u64),
        total: (Option<u64>, Option<u64>),
    ) -> RelayEvent {
        RelayEvent::Progress {
            transfer,
            done_bytes: done.0,
            total_bytes: total.0,
            done_entries: done.1,
            total_entries: total.1,
        }
    }

    #[test]
    fn lines_show_what_moved_of_the_total() {
        let (t, done) = progress_line(&progress(
            Transfer::SnapshotDownload,
            (3_100_000, 0),
            (Some(6_000_000), None),
        ))
        .unwrap();
        assert_eq!(t, "downloading the snapshot: 3.1 of 6.0 MB (51%)");
        assert!(!done);
        let (t, done) = progress_line(&progress(
            Transfer::SnapshotUpload,
            (6_000_000, 0),
            (Some(6_000_000), None),
        ))
        .unwrap();
        assert_eq!(t, "uploading a snapshot: 6.0 of 6.0 MB (100%)");
        assert!(done);
        let (t, done) = progress_line(&progress(
            Transfer::Pull,
            (800_000, 1200),
            (None, Some(5000)),
        ))
        .unwrap();
        assert_eq!(t, "pulling: 1200 of 5000 entries (0.8 MB, 24%)");
        assert!(!done);
        // Total not known yet; an empty total never divides by zero.
        let (t, _) = progress_line(&progress(Transfer::Pull, (0, 7), (None, None))).unwrap();
        assert_eq!(t, "pulling: 7 entries (0.0 MB)");
        let (t, done) = progress_line(&progress(
            Transfer::SnapshotDownload,
            (0, 0),
            (Some(0), None),
        ))
        .unwrap();
        assert_eq!(t, "downloading the snapshot: 0.0 of 0.0 MB (100%)");
        assert!(done);
        assert!(progress_line(&RelayEvent::Lagged).is_none());
    }
}
