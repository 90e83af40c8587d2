//! Follow-ups: what is due today, what is overdue, and what got done.
//!
//! Over every follow-up of every non-deleted interaction (future interactions
//! included: a follow-up is a to-do whatever its interaction's time). "Today"
//! is now's date at the `utc_offset_minutes` of the parameters. Open = not
//! done. Due today: open with due date today; overdue: open with due date
//! before today (oldest first); done recently: done in the last
//! `follow_up_done_window_days` (30).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::InsightsInput;
use crate::metric::{Coverage, Metric};
use crate::prepare::{ContactRef, DAY_MS, Prepared};
use kith_model::ids::{FollowUpId, InteractionId};

/// One open follow-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenFollowUp {
    /// The interaction it belongs to.
    pub interaction: InteractionId,
    /// Its id within that interaction.
    pub follow_up: FollowUpId,
    /// What to do.
    pub text: String,
    /// Due date; `None` means no deadline.
    pub due: Option<NaiveDate>,
    /// Days past due (0 when due today).
    pub days_overdue: i64,
    /// The interaction's current participants.
    pub with: Vec<ContactRef>,
    /// The interaction's one-line summary.
    pub summary: String,
}

/// Follow-up status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FollowUps {
    /// Today's date at the parameters' `utc_offset_minutes`.
    pub today: NaiveDate,
    /// Open and due today.
    pub due_today: Vec<OpenFollowUp>,
    /// Open and due before today, oldest first.
    pub overdue: Vec<OpenFollowUp>,
    /// Every open follow-up, due or not.
    pub open_total: u32,
    /// Open follow-ups with no due date.
    pub open_without_due: u32,
    /// Done within the last 30 days.
    pub done_recently: u32,
}

/// Follow-up status at now.
pub fn compute(input: &InsightsInput<'_>) -> Metric<FollowUps> {
    from_prepared(&Prepared::new(input))
}

pub(crate) fn from_prepared(p: &Prepared<'_>) -> Metric<FollowUps> {
    let today = p.today();
    let done_from = p
        .now_ms
        .saturating_sub(i64::from(p.params.follow_up_done_window_days).saturating_mul(DAY_MS));
    let mut all = 0u32;
    let mut f = FollowUps {
        today,
        due_today: Vec::new(),
        overdue: Vec::new(),
        open_total: 0,
        open_without_due: 0,
        done_recently: 0,
    };
    for i in &p.interactions {
        for fu in i.follow_ups.values() {
            all += 1;
            if let Some(done) = fu.done_ms {
                f.done_recently += u32::from(done >= done_from && done <= p.now_ms);
                continue;
            }
            f.open_total += 1;
            let Some(due) = fu.due else {
                f.open_without_due += 1;
                continue;
            };
            if due > today {
                continue;
            }
            let mut with: Vec<usize> = i
                .participants
                .iter()
                .filter_map(|id| p.by_id.get(id).copied())
                .collect();
            with.sort_unstable();
            with.dedup();
            let item = OpenFollowUp {
                interaction: i.id,
                follow_up: fu.id,
                text: fu.text.clone(),
                due: Some(due),
                days_overdue: (today - due).num_days(),
                with: with.iter().map(|&c| p.contact_ref(c)).collect(),
                summary: i.summary.clone(),
            };
            if due == today {
                f.due_today.push(item);
            } else {
                f.overdue.push(item);
            }
        }
    }
    let key = |x: &OpenFollowUp| (x.due, x.interaction, x.follow_up);
    f.overdue.sort_by_key(key);
    f.due_today.sort_by_key(key);
    if all == 0 {
        return Metric::no_data("no follow-up logged");
    }
    Metric::Value {
        coverage: Coverage::full(all),
        value: f,
    }
}
