"""Kith through its generated Python bindings: every method, every error case
(a typed KithError, never a crash), the listener, the panic guard, threads,
async methods, and the Python example. Real stores in temporary directories."""

import asyncio
import math
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

import kith_ffi as raw_kith_ffi
from blocking import kith_ffi, run
from kith_ffi import (
    Circle,
    ContactField,
    ContactPoint,
    ContactSort,
    ContactPatch,
    Direction,
    ExchangeWhat,
    GoalStatus,
    GoalPatch,
    Initiator,
    InteractionKind,
    InteractionPatch,
    KithError,
    NewContact,
    NewExchange,
    NewFollowUp,
    NewGoal,
    NewInteraction,
    NewProject,
    ProjectStatus,
    ProjectPatch,
    Seniority,
    SyncState,
)

REPO = pathlib.Path(__file__).resolve().parents[3]
# For child Python processes that stand for another app process (an extension).
CHILD_ENV = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join(
        [str(REPO / "bindings" / "generated" / "python"), str(pathlib.Path(__file__).parent)]
    ),
)
# The phone build (release-ffi, `panic = "abort"`) ends the process on a panic
# after logging it; every other build turns a panic into KithError.Internal.
PANIC_ABORTS = raw_kith_ffi.debug_panic_aborts()
BAD_ID = "not-a-ulid"
MISSING_ID = "01J00000000000000000000000"


class Recorder(kith_ffi.KithListener):
    """Collects every callback; optionally calls back into Kith or raises."""

    def __init__(self, kith=None, fail=False):
        self.changes = []
        self.states = []
        self.kith = kith
        self.fail = fail
        self.reentrant_reads = []
        self.lock = threading.Lock()

    def on_change(self, summary):
        with self.lock:
            self.changes.append(summary)
        if self.kith is not None and summary.contact_ids:
            # A listener may call back into Kith: no lock is held during callbacks.
            self.reentrant_reads.append(self.kith.get_contact(summary.contact_ids[0]).name)
        if self.fail:
            raise RuntimeError("listener failure")

    def on_sync_state(self, state):
        self.states.append(state)


def invalid_field(excinfo):
    assert isinstance(excinfo.value, KithError.InvalidInput), repr(excinfo.value)
    return excinfo.value.field


# ---------------------------------------------------------------- lifecycle


def test_version_and_data_dir(kith, tmp_path):
    assert kith_ffi.kith_version() == "0.1.0"
    assert kith.data_dir() == str(tmp_path / "store")


def test_open_refuses_an_empty_dir():
    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.Kith.open("  ")
    assert e.value.field == "data_dir"


def test_handles_on_one_folder_share_one_store_and_close_with_the_last(tmp_path):
    path = str(tmp_path / "s")
    first = kith_ffi.Kith.open(path)
    first.add_contact(NewContact(name="Ana Lima"))
    # A second handle (a WorkManager worker, another screen) shares the engine.
    second = kith_ffi.Kith.open(path)
    bo = second.add_contact(NewContact(name="Bo Chen"))
    assert first.get_contact(bo.id).name == "Bo Chen"
    first.close()
    first.close()  # idempotent
    with pytest.raises(KithError.Locked):
        first.list_projects()
    with pytest.raises(KithError.Locked):
        first.enter_foreground()
    assert [c.name for c in second.list_contacts(ContactSort.NAME)] == ["Ana Lima", "Bo Chen"]
    second.close()
    # Closed with the last handle: another process can open the file.
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, kith_ffi; from blocking import kith_ffi; k = kith_ffi.Kith.open(sys.argv[1]); "
         "k.add_contact(kith_ffi.NewContact(name='From another process')); k.close()", path],
        capture_output=True, text=True, timeout=60, env=CHILD_ENV,
    )
    assert out.returncode == 0, out.stderr
    third = kith_ffi.Kith.open(path)
    assert len(third.list_contacts(ContactSort.NAME)) == 3
    third.close()


def test_the_store_is_released_when_no_handle_is_in_the_foreground(tmp_path):
    path = str(tmp_path / "phone")
    ui = kith_ffi.Kith.open(path)
    ana = ui.add_contact(NewContact(name="Ana Lima"))
    worker = kith_ffi.Kith.open(path)
    ui.enter_background()
    ui.enter_background()  # idempotent
    # The worker's lease keeps the store open under the backgrounded UI.
    assert not ui.is_in_foreground() and not ui.is_released()
    worker.log_interaction(NewInteraction(summary="Synced by the worker", participant_ids=[ana.id]))
    worker.close()
    assert ui.is_released()
    with pytest.raises(KithError.Locked):
        ui.get_contact(ana.id)
    with pytest.raises(KithError.Locked):
        ui.add_contact(NewContact(name="Bo"))
    # Released: another process (an app extension) can write.
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, kith_ffi; from blocking import kith_ffi; k = kith_ffi.Kith.open(sys.argv[1]); "
         "k.add_contact(kith_ffi.NewContact(name='From the share sheet')); k.close()", path],
        capture_output=True, text=True, timeout=60, env=CHILD_ENV,
    )
    assert out.returncode == 0, out.stderr
    ui.enter_foreground()
    ui.enter_foreground()  # idempotent
    assert ui.is_in_foreground() and not ui.is_released()
    assert ui.get_contact(ana.id).name == "Ana Lima"
    assert len(ui.list_contacts(ContactSort.NAME)) == 2
    assert ui.timeline(ana.id, 0, 10, False)[0].summary == "Synced by the worker"
    ui.close()


def test_an_extension_handle_waits_for_another_process_then_writes(tmp_path):
    path = str(tmp_path / "phone")
    kith_ffi.Kith.open(path).close()
    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.Kith.open_waiting(path, 10_001)
    assert e.value.field == "lock_wait_ms"
    # The main app, another process, holds the store until told to let go.
    app = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, kith_ffi; from blocking import kith_ffi; k = kith_ffi.Kith.open(sys.argv[1]); "
         "k.add_contact(kith_ffi.NewContact(name='Ana Lima')); print('holding', flush=True); "
         "sys.stdin.readline(); k.close()", path],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=CHILD_ENV,
    )
    try:
        assert app.stdout.readline().strip() == "holding"
        rec = LogRecorder()
        kith_ffi.set_logger(rec, kith_ffi.LogLevel.WARN)
        done = []

        def share():
            # The app holds the file exclusively: opening already waits for it.
            ext = kith_ffi.Kith.open_waiting(path, 10_000)
            done.append(ext.add_contact(NewContact(name="Shared")))
            done.append(len(ext.list_contacts(ContactSort.NAME)))
            ext.close()

        writer = threading.Thread(target=share)
        writer.start()
        # Let the app go only once the extension says it waits.
        deadline = time.monotonic() + 30
        while not any("waiting for it" in r.message for r in rec.records):
            assert time.monotonic() < deadline, "the extension never waited"
            time.sleep(0.01)
        app.stdin.write("\n")
        app.stdin.flush()
        writer.join(timeout=30)
        assert len(done) == 2 and done[0].name == "Shared" and done[1] == 2, done
    finally:
        kith_ffi.clear_logger()
        app.kill()
        app.wait()


# ---------------------------------------------------------------- contacts


def test_contact_add_get_update_archive(kith, ana):
    assert ana.seniority == Seniority.SENIOR
    assert set(ana.circles) == {Circle.OPERATIONAL, Circle.STRATEGIC}
    assert ana.emails == [ContactPoint(value="ana@stmarys.example", label="work")]
    assert kith.get_contact(ana.id) == ana

    updated = kith.edit_contact(
        ana.id,
        ContactPatch(role="Director of nursing", tags=["mentor"], clear=[ContactField.DISCIPLINE]),
    )
    assert updated.role == "Director of nursing"
    assert updated.tags == ["mentor"]
    assert updated.discipline is None
    assert updated.organisation == "St Mary's"
    assert updated.updated_ms >= ana.updated_ms

    archived = kith.archive_contact(ana.id)
    assert archived.archived
    assert kith.list_contacts(ContactSort.NAME, 0, 50, False) == []
    assert [c.id for c in kith.list_contacts(ContactSort.NAME, 0, 50, True)] == [ana.id]
    assert not kith.unarchive_contact(ana.id).archived


def test_contact_input_errors(kith, ana):
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_contact(NewContact(name="   "))
    assert invalid_field(e) == "name"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_contact(NewContact(name="Bo", first_met="yesterday"))
    assert invalid_field(e) == "first_met"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.edit_contact(ana.id, ContactPatch(role="x", clear=[ContactField.ROLE]))
    assert invalid_field(e) == "role"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.get_contact(BAD_ID)
    assert invalid_field(e) == "id"
    with pytest.raises(KithError.NotFound) as e:
        kith.get_contact(MISSING_ID)
    assert e.value.what == "contact" and e.value.id == MISSING_ID
    with pytest.raises(KithError.NotFound):
        kith.edit_contact(MISSING_ID, ContactPatch(name="x"))
    with pytest.raises(KithError.NotFound):
        kith.archive_contact(MISSING_ID)
    # Nothing was written by the failed calls.
    assert [c.name for c in kith.list_contacts(ContactSort.NAME, 0, 50, True)] == ["Ana Lima"]


def test_list_contacts_is_paged_and_sorted(kith):
    names = ["Carla Dias", "Ana Lima", "Bruno Costa", "Élodie Martin", "david rey"]
    ids = {n: kith.add_contact(NewContact(name=n)).id for n in names}
    page1 = kith.list_contacts(ContactSort.NAME, 0, 2, False)
    page2 = kith.list_contacts(ContactSort.NAME, 2, 2, False)
    page3 = kith.list_contacts(ContactSort.NAME, 4, 2, False)
    assert [c.name for c in page1 + page2 + page3] == [
        "Ana Lima",
        "Bruno Costa",
        "Carla Dias",
        "david rey",
        "Élodie Martin",
    ]
    kith.log_interaction(NewInteraction(summary="Call", participant_ids=[ids["Carla Dias"]]))
    recent = kith.list_contacts(ContactSort.LAST_INTERACTION, 0, 1, False)
    assert recent[0].name == "Carla Dias"
    for bad in (0, 1001):
        with pytest.raises(KithError.InvalidInput) as e:
            kith.list_contacts(ContactSort.NAME, 0, bad, False)
        assert invalid_field(e) == "limit"


def test_contact_stats(kith, ana):
    assert kith.contact_stats(ana.id).interaction_count == 0
    kith.log_interaction(NewInteraction(summary="Coffee", participant_ids=[ana.id], at_ms=1_700_000_000_000))
    stats = kith.contact_stats(ana.id)
    assert stats.interaction_count == 1
    assert stats.last_interaction_ms == 1_700_000_000_000
    with pytest.raises(KithError.NotFound):
        kith.contact_stats(MISSING_ID)


def test_duplicates_and_merge(kith, ana):
    dup = kith.add_contact(
        NewContact(name="ana  LIMA", emails=[ContactPoint(value="ANA@stmarys.example", label="")])
    )
    met = kith.log_interaction(NewInteraction(summary="Ward round", participant_ids=[dup.id]))
    pairs = kith.likely_duplicates()
    assert len(pairs) == 1
    assert {pairs[0].contact_a, pairs[0].contact_b} == {ana.id, dup.id}
    reasons = pairs[0].reasons
    assert [r.email for r in reasons if r.is_same_email()] == ["ana@stmarys.example"]
    assert [r.name for r in reasons if r.is_same_name()] == ["ana lima"]

    rec = Recorder()
    kith.add_listener(rec)
    kept = kith.merge_contacts(ana.id, dup.id)
    assert kept.id == ana.id
    assert kith.get_contact(dup.id).merged_into == ana.id
    assert kith.get_interaction(met).participants == [ana.id]
    assert kith.likely_duplicates() == []
    assert set(rec.changes[-1].contact_ids) == {ana.id, dup.id}
    assert rec.changes[-1].interaction_ids == [met]

    assert kept.merged_from == [dup.id]
    assert kith.contact_stats(ana.id).interaction_count == 1

    with pytest.raises(KithError.Conflict):
        kith.merge_contacts(ana.id, ana.id)
    with pytest.raises(KithError.Conflict):
        kith.merge_contacts(ana.id, dup.id)
    with pytest.raises(KithError.InvalidInput) as e:
        kith.merge_contacts(ana.id, BAD_ID)
    assert invalid_field(e) == "duplicate_id"

    # A value the duplicate gets after the merge (as another device that had
    # not synced would write it) shows as a conflict on the kept contact.
    kith.edit_contact(dup.id, ContactPatch(organisation="Elsewhere"))
    shown = kith.get_contact(ana.id)
    assert shown.organisation == "St Mary's"
    assert [(k.field, k.value, k.from_contact_id) for k in shown.conflicts] == [
        ("organisation", "Elsewhere", dup.id)
    ]
    # Writing the field settles it.
    settled = kith.edit_contact(ana.id, ContactPatch(organisation="St Mary's"))
    assert settled.conflicts == []

    # Unmerge gives the duplicate back its meeting.
    back = kith.unmerge_contact(dup.id)
    assert (back.id, back.merged_into, back.archived) == (dup.id, None, False)
    assert kith.get_interaction(met).participants == [dup.id]
    assert kith.get_contact(ana.id).merged_from == []
    assert kith.contact_stats(ana.id).interaction_count == 0
    assert set(rec.changes[-1].contact_ids) == {ana.id, dup.id}
    assert rec.changes[-1].interaction_ids == [met]
    with pytest.raises(KithError.Conflict):
        kith.unmerge_contact(dup.id)
    with pytest.raises(KithError.InvalidInput) as e:
        kith.unmerge_contact(BAD_ID)
    assert invalid_field(e) == "contact_id"


# ---------------------------------------------------------------- interactions


def test_log_get_update_delete_undelete(kith, ana):
    project = kith.add_project(NewProject(name="Discharge pathway"))
    iid = kith.log_interaction(
        NewInteraction(
            summary="Coffee after the board meeting",
            participant_ids=[ana.id],
            participant_names=["Rui Sousa"],
            create_missing=True,
            kind=InteractionKind.MEAL,
            initiator=Initiator.ME,
            at_ms=1_767_000_000_000,
            offset_minutes=60,
            notes="She will introduce me to the regional lead.",
            project_id=project.id,
            exchanges=[
                NewExchange(what=ExchangeWhat.INSIGHT, direction=Direction.RECEIVED, with_contact_id=ana.id),
                NewExchange(what=ExchangeWhat.SUPPORT, direction=Direction.GAVE),
            ],
            follow_ups=[NewFollowUp(text="Send the audit summary", due="2026-01-10")],
        )
    )
    assert len(iid) == 26
    got = kith.get_interaction(iid)
    assert got.summary == "Coffee after the board meeting"
    assert got.kind == InteractionKind.MEAL and got.initiator == Initiator.ME
    assert got.at_ms == 1_767_000_000_000 and got.offset_minutes == 60
    assert got.project == project.id
    assert len(got.participants) == 2 and ana.id in got.participants
    rui = [p for p in got.participants if p != ana.id][0]
    assert kith.get_contact(rui).name == "Rui Sousa"
    assert {(e.what, e.direction, e.with_contact_id) for e in got.exchanges} == {
        (ExchangeWhat.INSIGHT, Direction.RECEIVED, ana.id),
        (ExchangeWhat.SUPPORT, Direction.GAVE, None),
    }
    assert [(f.text, f.due, f.interaction_id) for f in got.follow_ups] == [
        ("Send the audit summary", "2026-01-10", iid)
    ]

    changed = kith.edit_interaction(
        iid, InteractionPatch(summary="Lunch after the board", notes="Edited", clear_project=True)
    )
    assert changed.summary == "Lunch after the board" and changed.notes == "Edited"
    assert changed.project is None
    assert changed.kind == InteractionKind.MEAL

    deleted = kith.delete_interaction(iid)
    assert deleted.deleted_ms is not None
    assert kith.timeline(ana.id, 0, 20, False) == []
    assert [i.id for i in kith.timeline(ana.id, 0, 20, True)] == [iid]
    restored = kith.undelete_interaction(iid)
    assert restored.deleted_ms is None
    assert [i.id for i in kith.timeline(ana.id, 0, 20, False)] == [iid]


def test_interaction_input_errors(kith, ana):
    cases = [
        (NewInteraction(summary="", participant_ids=[ana.id]), "summary"),
        (NewInteraction(summary="Met"), "participants"),
        (NewInteraction(summary="Met", participant_ids=[BAD_ID]), "participant_ids"),
        (NewInteraction(summary="Met", participant_names=["Nobody Known"]), "participant_names"),
        (NewInteraction(summary="Met", participant_ids=[ana.id], project_id=BAD_ID), "project_id"),
        (
            NewInteraction(
                summary="Met",
                participant_ids=[ana.id],
                follow_ups=[NewFollowUp(text="x", due="31/12/2026")],
            ),
            "due",
        ),
        (
            NewInteraction(
                summary="Met",
                participant_ids=[ana.id],
                exchanges=[NewExchange(what=ExchangeWhat.FEEDBACK, direction=Direction.GAVE, with_contact_id="x")],
            ),
            "exchanges.with_contact_id",
        ),
        (NewInteraction(summary="x" * 501, participant_ids=[ana.id]), "summary"),
    ]
    for new, field in cases:
        with pytest.raises(KithError.InvalidInput) as e:
            kith.log_interaction(new)
        assert invalid_field(e) == field, (new, e.value)
    with pytest.raises(KithError.NotFound) as e:
        kith.log_interaction(NewInteraction(summary="Met", participant_ids=[MISSING_ID]))
    assert e.value.what == "contact"
    with pytest.raises(KithError.NotFound):
        kith.log_interaction(NewInteraction(summary="Met", participant_ids=[ana.id], project_id=MISSING_ID))
    for call in (kith.get_interaction, kith.delete_interaction, kith.undelete_interaction):
        with pytest.raises(KithError.NotFound):
            call(MISSING_ID)
        with pytest.raises(KithError.InvalidInput):
            call(BAD_ID)
    with pytest.raises(KithError.NotFound):
        kith.edit_interaction(MISSING_ID, InteractionPatch(summary="x"))
    iid = kith.log_interaction(NewInteraction(summary="Met", participant_ids=[ana.id]))
    with pytest.raises(KithError.InvalidInput) as e:
        kith.edit_interaction(iid, InteractionPatch(project_id=MISSING_ID, clear_project=True))
    assert invalid_field(e) == "project_id"
    # The store holds exactly the one valid interaction.
    assert [i.id for i in kith.timeline(None, 0, 100, True)] == [iid]


def test_timeline_is_paged_newest_first(kith, ana):
    base = 1_760_000_000_000
    ids = [
        kith.log_interaction(NewInteraction(summary=f"Meeting {n}", participant_ids=[ana.id], at_ms=base + n * 60_000))
        for n in range(7)
    ]
    pages = [kith.timeline(ana.id, off, 3, False) for off in (0, 3, 6)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i.id for p in pages for i in p] == list(reversed(ids))
    assert [i.id for i in kith.timeline(None, 0, 2, False)] == [ids[6], ids[5]]
    with pytest.raises(KithError.NotFound):
        kith.timeline(MISSING_ID, 0, 10, False)
    with pytest.raises(KithError.InvalidInput) as e:
        kith.timeline(BAD_ID, 0, 10, False)
    assert invalid_field(e) == "contact_id"


def test_search(kith, ana):
    kith.log_interaction(NewInteraction(summary="Rota planning", participant_ids=[ana.id], notes="Night shifts"))
    found = kith.search("lim", 10)
    assert [c.id for c in found.contacts] == [ana.id]
    found = kith.search("NIGHT", 10)
    assert [i.summary for i in found.interactions] == ["Rota planning"]
    assert kith.search("élodie", 10).contacts == []
    with pytest.raises(KithError.InvalidInput):
        kith.search("x", 0)


# ---------------------------------------------------------------- follow-ups


def test_follow_ups(kith, ana):
    iid = kith.log_interaction(
        NewInteraction(
            summary="Met",
            participant_ids=[ana.id],
            follow_ups=[NewFollowUp(text="Book a visit", due="2026-03-01")],
        )
    )
    later = kith.add_follow_up(iid, "Share the paper", "2026-04-15")
    undated = kith.add_follow_up(iid, "Say thanks", None)
    assert later.interaction_id == iid and later.due == "2026-04-15"

    assert [f.follow_up.text for f in kith.open_follow_ups()] == [
        "Book a visit",
        "Share the paper",
        "Say thanks",
    ]
    due = kith.follow_ups_due_by("2026-03-31")
    assert [f.follow_up.text for f in due] == ["Book a visit"]
    assert due[0].summary == "Met" and due[0].participant_ids == [ana.id]
    assert [f.follow_up.text for f in kith.overdue_follow_ups("2026-04-15")] == ["Book a visit"]

    done = kith.complete_follow_up(iid, later.id)
    assert done.done_ms is not None
    assert [f.follow_up.id for f in kith.open_follow_ups()].count(later.id) == 0
    assert kith.reopen_follow_up(iid, later.id).done_ms is None
    assert undated.due is None

    with pytest.raises(KithError.InvalidInput) as e:
        kith.follow_ups_due_by("soon")
    assert invalid_field(e) == "date"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_follow_up(iid, "x", "2026-13-01")
    assert invalid_field(e) == "due"
    with pytest.raises(KithError.InvalidInput):
        kith.add_follow_up(iid, "   ", None)
    with pytest.raises(KithError.NotFound) as e:
        kith.complete_follow_up(iid, MISSING_ID)
    assert e.value.what == "follow-up"
    with pytest.raises(KithError.NotFound):
        kith.add_follow_up(MISSING_ID, "x", None)
    with pytest.raises(KithError.InvalidInput) as e:
        kith.reopen_follow_up(iid, BAD_ID)
    assert invalid_field(e) == "follow_up_id"


# ---------------------------------------------------------------- projects and goals


def test_projects(kith):
    p = kith.add_project(NewProject(name="Discharge pathway", description="With social care"))
    assert p.status == ProjectStatus.ACTIVE
    q = kith.edit_project(p.id, ProjectPatch(status=ProjectStatus.DONE))
    assert q.status == ProjectStatus.DONE and q.description == "With social care"
    assert kith.get_project(p.id) == q
    assert kith.list_projects() == [q]
    with pytest.raises(KithError.InvalidInput):
        kith.add_project(NewProject(name=""))
    with pytest.raises(KithError.NotFound):
        kith.get_project(MISSING_ID)
    with pytest.raises(KithError.NotFound):
        kith.edit_project(MISSING_ID, ProjectPatch(name="x"))


def test_goals(kith, ana):
    g = kith.add_goal(NewGoal(title="Move into service design", contact_ids=[ana.id]))
    assert g.priority == 2 and g.status == GoalStatus.ACTIVE and g.contacts == [ana.id]
    h = kith.edit_goal(g.id, GoalPatch(priority=1, status=GoalStatus.ACHIEVED, contact_ids=[]))
    assert (h.priority, h.status, h.contacts) == (1, GoalStatus.ACHIEVED, [])
    assert kith.get_goal(g.id) == h
    assert kith.list_goals() == [h]
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_goal(NewGoal(title="x", priority=4))
    assert invalid_field(e) == "priority"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_goal(NewGoal(title="x", contact_ids=[BAD_ID]))
    assert invalid_field(e) == "contact_ids"
    with pytest.raises(KithError.NotFound):
        kith.add_goal(NewGoal(title="x", contact_ids=[MISSING_ID]))
    with pytest.raises(KithError.NotFound):
        kith.get_goal(MISSING_ID)
    with pytest.raises(KithError.InvalidInput) as e:
        kith.edit_goal(g.id, GoalPatch(priority=0))
    assert invalid_field(e) == "priority"


# ---------------------------------------------------------------- settings


def test_settings(kith):
    s = kith.get_settings()
    assert s.cadence_days == {Circle.OPERATIONAL: 30, Circle.PERSONAL: 90, Circle.STRATEGIC: 60}
    assert s.core_size == 15 and s.my_organisation is None
    rec = Recorder()
    kith.add_listener(rec)
    s.my_organisation = "  St Mary's  "
    s.strategic_target = 0.3
    s.cadence_days = {Circle.STRATEGIC: 45}
    stored = kith.set_settings(s)
    assert stored.my_organisation == "St Mary's"
    assert kith.get_settings() == stored
    assert rec.changes[-1].settings and rec.changes[-1].contact_ids == []
    n = len(rec.changes)
    for field, change in [
        ("core_size", dict(core_size=0)),
        ("strategic_target", dict(strategic_target=1.5)),
        ("strategic_target", dict(strategic_target=float("nan"))),
        ("cadence_days", dict(cadence_days={Circle.PERSONAL: 0})),
    ]:
        bad = kith.get_settings()
        for k, v in change.items():
            setattr(bad, k, v)
        with pytest.raises(KithError.InvalidInput) as e:
            kith.set_settings(bad)
        assert invalid_field(e) == field
    assert kith.get_settings() == stored
    assert len(rec.changes) == n


# ---------------------------------------------------------------- listener


def test_listener_hears_every_local_write(kith):
    rec = Recorder(kith=kith)
    handle = kith.add_listener(rec)
    assert rec.states == [SyncState.DISABLED()]

    c = kith.add_contact(NewContact(name="Ana Lima"))
    assert rec.changes[-1].contact_ids == [c.id]
    assert rec.reentrant_reads == ["Ana Lima"]  # called back into Kith from the callback
    iid = kith.log_interaction(NewInteraction(summary="Met", participant_ids=[c.id]))
    assert rec.changes[-1].interaction_ids == [iid]
    assert rec.changes[-1].contact_ids == [c.id]
    kith.edit_interaction(iid, InteractionPatch(notes="more"))
    kith.delete_interaction(iid)
    kith.undelete_interaction(iid)
    f = kith.add_follow_up(iid, "Call back", None)
    kith.complete_follow_up(iid, f.id)
    assert all(ch.interaction_ids == [iid] for ch in rec.changes[-5:])
    # Edits of the interaction itself also name its participants (their
    # last-met date and counts move with it).
    assert [ch.contact_ids for ch in rec.changes[-5:-2]] == [[c.id]] * 3
    p = kith.add_project(NewProject(name="P"))
    assert rec.changes[-1].project_ids == [p.id]
    g = kith.add_goal(NewGoal(title="G"))
    assert rec.changes[-1].goal_ids == [g.id]
    n = len(rec.changes)

    # Reads and failed writes notify nobody.
    kith.list_contacts(ContactSort.NAME, 0, 10, False)
    with pytest.raises(KithError.InvalidInput):
        kith.add_contact(NewContact(name=""))
    assert len(rec.changes) == n

    assert kith.remove_listener(handle)
    assert not kith.remove_listener(handle)
    kith.add_contact(NewContact(name="Bo"))
    assert len(rec.changes) == n


def test_a_failing_listener_does_not_fail_the_write(kith):
    bad, good = Recorder(fail=True), Recorder()
    kith.add_listener(bad)
    kith.add_listener(good)
    c = kith.add_contact(NewContact(name="Ana Lima"))
    assert kith.get_contact(c.id).name == "Ana Lima"
    assert len(bad.changes) == 1 and len(good.changes) == 1


def test_listener_registrations_are_bounded(kith):
    handles = [kith.add_listener(Recorder()) for _ in range(32)]
    with pytest.raises(KithError.InvalidInput) as e:
        kith.add_listener(Recorder())
    assert invalid_field(e) == "listener"
    kith.remove_listener(handles[0])
    kith.add_listener(Recorder())


# ---------------------------------------------------------------- logging


class LogRecorder(kith_ffi.KithLogger):
    """Collects the library's log records; optionally raises from inside `log`."""

    def __init__(self, fail=False):
        self.records = []
        self.fail = fail

    def log(self, record):
        self.records.append(record)
        if self.fail:
            raise RuntimeError("a logger that throws")


def test_logs_and_panics_reach_the_apps_logger_at_its_level(tmp_path):
    rec = LogRecorder()
    kith_ffi.set_logger(rec, kith_ffi.LogLevel.INFO)
    try:
        k = kith_ffi.Kith.open(str(tmp_path / "a"))
        opened = [r for r in rec.records if r.message.startswith("store opened")]
        assert opened and opened[0].level == kith_ffi.LogLevel.INFO, rec.records
        assert str(tmp_path / "a") in opened[0].message
        # (In the phone build a panic ends the process: see the test below.)
        if not PANIC_ABORTS:
            with pytest.raises(KithError.Internal):
                k.debug_panic("a panic for the logger")
            panics = [r for r in rec.records if r.target == "panic"]
            assert len(panics) == 1 and panics[0].level == kith_ffi.LogLevel.ERROR
            assert "a panic for the logger" in panics[0].message
        k.close()
        # Only warnings and errors now: opening logs nothing.
        kith_ffi.set_logger(rec, kith_ffi.LogLevel.WARN)
        before = len(rec.records)
        kith_ffi.Kith.open(str(tmp_path / "b")).close()
        assert len(rec.records) == before, rec.records[before:]
        # A logger that throws does not break the call that logged.
        bad = LogRecorder(fail=True)
        kith_ffi.set_logger(bad, kith_ffi.LogLevel.INFO)
        kith_ffi.Kith.open(str(tmp_path / "c")).close()
        assert bad.records, "the throwing logger was called"
    finally:
        kith_ffi.clear_logger()
    n = len(rec.records)
    kith_ffi.Kith.open(str(tmp_path / "d")).close()
    assert len(rec.records) == n


# ---------------------------------------------------------------- panic guard

# A child app process: a logger that prints panic records, one write, then a panic.
PANIC_CHILD = """
import sys
from blocking import kith_ffi

class Logcat(kith_ffi.KithLogger):
    def log(self, record):
        if record.target == "panic":
            print("LOGGED " + record.message.replace("\\n", " | "), flush=True)

kith_ffi.set_logger(Logcat(), kith_ffi.LogLevel.WARN)
k = kith_ffi.Kith.open(sys.argv[1])
k.add_contact(kith_ffi.NewContact(name="Ana Lima"))
print("WRITTEN", flush=True)
try:
    k.debug_panic("a deliberate panic")
except kith_ffi.KithError.Internal as e:
    print("INTERNAL " + e.reason, flush=True)
k.close()
"""


def test_a_panic_is_logged_then_is_internal_or_a_crash_in_the_phone_build(tmp_path):
    """Both builds report a panic through the app's logger with its message and
    location. The phone build (panic = "abort") then ends the process (SIGABRT, a
    crash report); the others return KithError.Internal. Nothing written is lost."""
    path = str(tmp_path / "s")
    out = subprocess.run(
        [sys.executable, "-c", PANIC_CHILD, path],
        capture_output=True, text=True, timeout=60, env=CHILD_ENV,
    )
    lines = out.stdout.splitlines()
    assert "WRITTEN" in lines, (out.stdout, out.stderr)
    logged = [l for l in lines if l.startswith("LOGGED ")]
    assert len(logged) == 1, (out.stdout, out.stderr)
    assert logged[0].startswith("LOGGED panic at bindings/src/kith.rs:"), logged
    assert "a deliberate panic" in logged[0], logged
    internal = [l for l in lines if l.startswith("INTERNAL ")]
    if PANIC_ABORTS:
        assert out.returncode == -signal.SIGABRT, (out.returncode, out.stderr)
        assert internal == [], internal
    else:
        assert out.returncode == 0, out.stderr
        assert internal == ["INTERNAL debug_panic panicked: a deliberate panic"], internal
    # The write before the panic was committed: reopening finds it.
    k = kith_ffi.Kith.open(path)
    assert [c.name for c in k.list_contacts(ContactSort.NAME)] == ["Ana Lima"]
    k.close()


@pytest.mark.skipif(PANIC_ABORTS, reason="the phone build aborts on a panic (test above)")
def test_a_rust_panic_becomes_internal_and_the_store_stays_usable(kith, ana):
    with pytest.raises(KithError.Internal) as e:
        kith.debug_panic("deliberate test panic")
    assert "deliberate test panic" in e.value.reason
    with pytest.raises(KithError.Internal):
        kith.debug_panic_holding_store()
    # The panic poisoned the store's lock: the next call reloaded the store
    # from disk (nothing half-changed survives) and carries on.
    assert not kith.is_released()
    # The interpreter is alive and the store works after both panics.
    assert kith.get_contact(ana.id).name == "Ana Lima"
    kith.log_interaction(NewInteraction(summary="After the panic", participant_ids=[ana.id]))
    assert len(kith.timeline(ana.id, 0, 10, False)) == 1


# ---------------------------------------------------------------- async


# The threading rule (bindings/README.md): every call that touches the store's files, the key
# store or the network is a coroutine; only in-memory accessors are plain calls.
ASYNC_METHODS = [
    "close", "enter_background", "enter_foreground",
    "add_contact", "edit_contact", "get_contact", "list_contacts", "contact_stats",
    "archive_contact", "unarchive_contact", "merge_contacts", "unmerge_contact",
    "likely_duplicates", "log_interaction", "get_interaction", "edit_interaction",
    "delete_interaction", "undelete_interaction", "timeline", "search", "add_follow_up",
    "complete_follow_up", "reopen_follow_up", "open_follow_ups", "follow_ups_due_by",
    "overdue_follow_ups", "add_project", "edit_project", "get_project", "list_projects",
    "add_goal", "edit_goal", "get_goal", "list_goals", "get_settings", "set_settings",
    "reindex", "check_store", "insights", "insights_json", "insights_html",
    "meetings_to_log", "log_meeting", "dismiss_meeting", "next_meeting_end",
    "meeting_log_share", "import_vcard", "import_linkedin_csv", "export_vcard", "export_json",
    "export_contacts_csv", "export_interactions_csv", "backup", "create_account", "account",
    "set_relay", "devices", "invite", "start_join", "revoke", "recover", "sync_now",
    "start_sync", "sync_status",
]
SYNC_METHODS = [
    "data_dir", "is_in_foreground", "is_released", "add_listener", "remove_listener",
    "stop_sync", "set_sync_timeout_ms", "set_registration_token",
]


def test_every_call_that_touches_disk_or_network_is_a_coroutine():
    import inspect

    cls = raw_kith_ffi.Kith
    for name in ASYNC_METHODS:
        assert inspect.iscoroutinefunction(getattr(cls, name)), name
    for name in SYNC_METHODS:
        assert not inspect.iscoroutinefunction(getattr(cls, name)), name
    for name in ("open", "open_with_key_store", "open_waiting"):
        assert inspect.iscoroutinefunction(getattr(cls, name)), name
    assert inspect.iscoroutinefunction(raw_kith_ffi.restore_backup)
    # One search: the old blocking/async pair is gone.
    assert not hasattr(cls, "search_async")
    # One pairing API: the objects (invite/start_join), not the flat calls.
    for gone in ("pair", "next_join_request", "approve_join", "refuse_join", "request_join", "join"):
        assert not hasattr(cls, gone), gone
    exported = {n for n in dir(cls) if not n.startswith("_")}
    hidden = {"debug_panic", "debug_panic_holding_store", "close_store"}
    assert exported - hidden - {"open", "open_with_key_store", "open_waiting"} <= \
        set(ASYNC_METHODS) | set(SYNC_METHODS), exported - set(ASYNC_METHODS) - set(SYNC_METHODS)


def test_the_async_api_never_blocks_the_event_loop(tmp_path):
    async def main():
        # A ticker task: it only advances while the loop is free.
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        k = await raw_kith_ffi.Kith.open(str(tmp_path / "s"))
        ana = await k.add_contact(NewContact(name="Ana Lima"))
        await k.log_interaction(NewInteraction(summary="Budget review", participant_ids=[ana.id]))
        before = ticks
        # A backup derives its key with Argon2id (64 MiB): long enough to see the loop run.
        backup = await k.backup("correct horse battery staple", True)
        during_backup = ticks - before
        results = await k.search("budget")
        # Several awaits at once on one handle: they serialise on the store, in any order.
        names = await asyncio.gather(*(k.get_contact(ana.id) for _ in range(8)))
        await k.reindex()
        await k.close()
        t.cancel()
        return backup, during_backup, results, names

    backup, during_backup, results, names = asyncio.run(main())
    assert len(backup) > 0
    assert during_backup > 0, "the event loop was blocked during backup()"
    assert [i.summary for i in results.interactions] == ["Budget review"]
    assert {c.name for c in names} == {"Ana Lima"}


def test_async_errors_are_typed_and_raised_at_the_await(kith):
    async def bad():
        await kith.raw.search("x", 0)

    with pytest.raises(KithError.InvalidInput) as e:
        asyncio.run(bad())
    assert e.value.field == "limit"


def test_negative_counts_offsets_and_times_are_invalid_input_never_a_crash(kith, ana):
    for call, field in [
        (lambda: kith.list_contacts(ContactSort.NAME, -1, 10, False), "offset"),
        (lambda: kith.list_contacts(ContactSort.NAME, 0, -5, False), "limit"),
        (lambda: kith.timeline(None, -3, 10, False), "offset"),
        (lambda: kith.timeline(None, 0, -1, False), "limit"),
        (lambda: kith.search("ana", -1), "limit"),
        (lambda: kith.set_sync_timeout_ms(-1), "timeout_ms"),
        (lambda: kith.invite(-2), "ttl_minutes"),
        (lambda: kith_ffi.Kith.open_waiting(kith.data_dir(), -1), "lock_wait_ms"),
        (lambda: kith.add_contact(NewContact(name="Bo", cadence_days=-7)), "cadence_days"),
        (lambda: kith.edit_contact(ana.id, ContactPatch(cadence_days=-1)), "cadence_days"),
        (lambda: kith.add_goal(NewGoal(title="Grow", priority=-1)), "priority"),
    ]:
        with pytest.raises(KithError.InvalidInput) as e:
            call()
        assert e.value.field == field, (field, e.value)
    # Values that fit a Kotlin Int/Long but no store limit are refused the same way.
    with pytest.raises(KithError.InvalidInput):
        kith.list_contacts(ContactSort.NAME, 0, 2**31 - 1, False)
    assert kith.get_contact(ana.id).name == "Ana Lima"


def test_records_and_states_print_readably(kith):
    assert str(SyncState.RETRYING("connection refused", 500)) == \
        "Retrying in 500 ms: connection refused"
    assert str(SyncState.LIVE()) == "Live"
    assert str(kith.sync_status().state) == "Disabled"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.search("x", 0)
    # uniffi's Python errors print their fields (the exported Display reaches Kotlin and Swift).
    assert "must be between 1 and 1000 (got 0)" in str(e.value)


# ---------------------------------------------------------------- threads


def test_several_python_threads_at_once(kith):
    contacts = [kith.add_contact(NewContact(name=f"Person {n}")).id for n in range(4)]
    rec = Recorder()
    kith.add_listener(rec)
    threads_n, per_thread = 8, 25
    errors = []
    start = threading.Barrier(threads_n)

    def worker(t):
        try:
            start.wait()
            for n in range(per_thread):
                kith.log_interaction(
                    NewInteraction(summary=f"t{t} n{n}", participant_ids=[contacts[(t + n) % 4]])
                )
                kith.timeline(None, 0, 5, False)
                kith.search("person", 5)
        except Exception as e:  # noqa: BLE001 - any failure fails the test below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    assert errors == []
    logged = kith.timeline(None, 0, 1000, False)
    assert len(logged) == threads_n * per_thread
    assert {i.summary for i in logged} == {f"t{t} n{n}" for t in range(threads_n) for n in range(per_thread)}
    assert sum(kith.contact_stats(c).interaction_count for c in contacts) == threads_n * per_thread
    assert len(rec.changes) == threads_n * per_thread


# ---------------------------------------------------------------- example and figures


def test_the_python_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "bindings" / "generated" / "python"))
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python" / "after_meeting.py"), str(tmp_path / "ex")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Logged" in out.stdout and "Send the audit summary" in out.stdout


def test_log_interaction_cost_figure(kith, capsys):
    """Prints the cost of log_interaction through the bindings (a figure, not
    asserted). Same workload as the Kotlin harness and the Rust bench: fresh
    store, one contact, 20 warm-up calls, 300 timed calls with 300-char notes."""
    ana = kith.add_contact(NewContact(name="Ana Lima"))
    n, warm_up, reads = 300, 20, 2000
    raw = kith.raw

    # Awaited in one running event loop, as an app does: the Blocking adapter
    # starts a fresh loop per call, which alone costs about 0.3 ms.
    async def timed():
        for i in range(warm_up):
            await raw.log_interaction(NewInteraction(summary=f"warm-up {i}", participant_ids=[ana.id], notes="x" * 300))
        t0 = time.perf_counter()
        for i in range(n):
            await raw.log_interaction(NewInteraction(summary=f"Meeting {i}", participant_ids=[ana.id], notes="x" * 300))
        t1 = time.perf_counter()
        # A read that touches no disk shows the cost of the crossing itself.
        for _ in range(reads):
            await raw.get_contact(ana.id)
        return t1 - t0, time.perf_counter() - t1

    write_s, read_s = asyncio.run(timed())
    us = write_s / n * 1e6
    with capsys.disabled():
        print(f"\n[figure] python: log_interaction through the bindings: {us:.0f} us/call (n={n})")
    assert len(kith.timeline(ana.id, 0, 1000, False)) == n + warm_up
    read_us = read_s / reads * 1e6
    with capsys.disabled():
        print(f"[figure] python: get_contact through the bindings: {read_us:.1f} us/call (n={reads})")


# ---------------------------------------------------------------- insights

DAY_MS = 86_400_000
# Reports are computed 200 days ahead: contacts added by the test (now) are
# then overdue on their circle's cadence.
NOW_MS = int(time.time() * 1000) + 200 * DAY_MS


def test_insights_of_an_empty_store_say_no_data(kith):
    ins = kith.insights(NOW_MS)
    assert ins.now_ms == NOW_MS
    assert ins.contacts_total == 0 and ins.interactions_total == 0
    assert ins.circle_balance.status.state == kith_ffi.MetricState.NO_DATA
    assert ins.circle_balance.status.reason
    assert ins.circle_balance.evenness is None and ins.circle_balance.circles == []
    assert ins.reciprocity.status.state == kith_ffi.MetricState.NO_DATA
    assert ins.reciprocity.balanced is None
    assert ins.reconnect.top == [] and ins.reconnect.overdue_total == 0
    assert [d.attribute for d in ins.composition] == [
        kith_ffi.Attribute.DISCIPLINE,
        kith_ffi.Attribute.SENIORITY,
        kith_ffi.Attribute.ORGANISATION,
        kith_ffi.Attribute.CIRCLE,
    ]
    assert all(d.blau is None for d in ins.composition)
    # Without a time the report is computed for now.
    assert abs(kith.insights(None).now_ms - time.time() * 1000) < 60_000
    with pytest.raises(KithError.InvalidInput) as e:
        kith.insights(-1)
    assert invalid_field(e) == "now_ms"


def seed_network(kith):
    """Two strategic ties: one met long ago, one never; an operational one met often."""
    ana = kith.add_contact(NewContact(name="Ana Lima", discipline="nursing", seniority=Seniority.SENIOR,
                                      organisation="St Mary's", circles=[Circle.STRATEGIC]))
    bo = kith.add_contact(NewContact(name="Bo Chen", discipline="finance", seniority=Seniority.SENIOR,
                                     organisation="Board", circles=[Circle.STRATEGIC]))
    cy = kith.add_contact(NewContact(name="Cy Reyes", discipline="it", seniority=Seniority.JUNIOR,
                                     organisation="St Mary's", circles=[Circle.OPERATIONAL]))
    kith.log_interaction(NewInteraction(summary="Coffee", participant_ids=[ana.id],
                                        at_ms=NOW_MS - 200 * DAY_MS))
    for d in (3, 10, 20):
        iid = kith.log_interaction(NewInteraction(summary=f"Stand-up {d}", participant_ids=[cy.id],
                                                  at_ms=NOW_MS - d * DAY_MS))
    kith.add_follow_up(iid, "Send the rota", "2025-12-01")
    return ana, bo, cy


def test_insights_figures_and_headlines(kith):
    ana, bo, cy = seed_network(kith)
    ins = kith.insights(NOW_MS)
    assert ins.contacts_total == 3 and ins.interactions_total == 4
    assert ins.headlines, "a network with overdue strategic ties has headlines"
    assert all(isinstance(f.severity, kith_ffi.Severity) and f.code and f.message for f in ins.headlines)

    cb = ins.circle_balance
    assert cb.status.state == kith_ffi.MetricState.VALUE
    counts = {s.circle: s.count for s in cb.circles}
    # Active ties only (met in the last year): Bo, never met, is not counted.
    assert counts == {Circle.OPERATIONAL: 1, Circle.PERSONAL: 0, Circle.STRATEGIC: 1}
    # Shannon evenness of (1, 0, 1) over three circles: ln 2 / ln 3.
    assert cb.evenness == pytest.approx(math.log(2) / math.log(3), abs=1e-9)

    by_id = {t.contact_id: t for t in ins.reconnect.top}
    assert ana.id in by_id and bo.id in by_id and cy.id not in by_id
    assert by_id[bo.id].never and by_id[bo.id].days_since is None
    assert by_id[bo.id].overdue_ratio > 1.0  # measured from when Bo was added
    assert not by_id[ana.id].never and by_id[ana.id].overdue_ratio > 1.0
    assert by_id[ana.id].days_since == 200 and by_id[ana.id].name == "Ana Lima"
    assert ins.reconnect.overdue_total == len(ins.reconnect.top)

    fu = ins.follow_ups
    assert fu.status.state == kith_ffi.MetricState.VALUE
    assert (fu.overdue, fu.due_today, fu.open_total) == (1, 0, 1)

    blau = {d.attribute: d for d in ins.composition}
    # Every seeded contact has a discipline: full coverage, so a value.
    assert blau[kith_ffi.Attribute.DISCIPLINE].status.state == kith_ffi.MetricState.VALUE


def test_insights_json_and_html(kith):
    import json

    seed_network(kith)
    doc = json.loads(kith.insights_json(NOW_MS))
    assert doc["report"]["now_ms"] == NOW_MS
    assert doc["headlines"] and {"severity", "code", "message"} <= set(doc["headlines"][0])
    assert doc["report"]["circle_balance"]["state"] == "value"
    # Active ties but no exchange recorded with any of them: not enough data.
    assert doc["report"]["reciprocity"]["state"] == "not_enough_data"
    html = kith.insights_html(NOW_MS)
    assert html.lstrip().lower().startswith("<!doctype html") and "Ana Lima" in html
    kith.enter_background()
    for call in (kith.insights, kith.insights_json, kith.insights_html):
        with pytest.raises(KithError.Locked):
            call(NOW_MS)


# ---------------------------------------------------------------- import / export / backup


def fixture(name):
    """A real-world vCard from the repository's tests/fixtures/vcard."""
    return (REPO / "tests" / "fixtures" / "vcard" / name).read_bytes()


def test_import_vcard_fixture_dry_run_then_real_then_again(kith):
    rec = Recorder()
    kith.add_listener(rec)
    data = fixture("rfc6350-example.vcf")

    dry = kith.import_vcard(data, True)
    assert dry.dry_run
    assert [(c.name, c.organisation, c.contact_id) for c in dry.created] == [("Simon Perreault", "Viagenie", None)]
    assert dry.created[0].source_line == 1
    assert kith.list_contacts(ContactSort.NAME, 0, 10, False) == []
    assert rec.changes == []  # a dry run writes nothing and notifies nobody

    done = kith.import_vcard(data, False)
    assert not done.dry_run and len(done.created) == 1
    simon = kith.get_contact(done.created[0].contact_id)
    assert simon.name == "Simon Perreault" and simon.organisation == "Viagenie"
    assert [e.value for e in simon.emails] == ["simon.perreault@viagenie.ca"]
    assert rec.changes[-1].contact_ids == [simon.id]

    again = kith.import_vcard(data, False)
    assert again.created == []
    assert [(a.name, a.existing_contact_id) for a in again.already_imported] == [("Simon Perreault", simon.id)]
    assert len(rec.changes) == 1  # nothing changed, nobody notified


def test_import_vcard_reports_duplicates_and_problems(kith):
    arnold = kith.add_contact(NewContact(name="A. Smith", emails=[ContactPoint(value="asmithk@gmail.com", label="")]))
    report = kith.import_vcard(fixture("gmail-list.vcf"), False)
    assert sorted(c.name for c in report.created) == ["Chris Beatle", "Doug White"]
    assert [(d.name, d.merge_into_id, d.same_as_line) for d in report.likely_duplicates] == [("Arnold Smith", arnold.id, None)]
    assert report.likely_duplicates[0].reasons == [kith_ffi.DuplicateReason.SAME_EMAIL(email="asmithk@gmail.com")]
    names = sorted(c.name for c in kith.list_contacts(ContactSort.NAME, 0, 10, False))
    assert names == ["A. Smith", "Chris Beatle", "Doug White"]  # the duplicate was not created

    # A card with nothing to name a contact by is skipped and reported with its line.
    mixed = b"BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:no name\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:3.0\r\nFN:Eve Park\r\nEND:VCARD\r\n"
    r = kith.import_vcard(mixed, True)
    assert [c.name for c in r.created] == ["Eve Park"]
    assert r.created[0].source_line == 5
    assert [p.line for p in r.problems] == [1] and r.problems[0].message
    assert r.problems_not_listed == 0


def test_import_bad_bytes_is_invalid_input_and_writes_nothing(kith, ana):
    for call in (kith.import_vcard, kith.import_linkedin_csv):
        for bad in (b"", b"\xff\xfe\x00garbage\x00", b"hello,world\n1,2\n"):
            with pytest.raises(KithError.InvalidInput) as e:
                call(bad, False)
            assert invalid_field(e) == "bytes"
    assert [c.name for c in kith.list_contacts(ContactSort.NAME, 0, 10, False)] == ["Ana Lima"]


LINKEDIN_CSV = (
    "Notes:\n"
    "\"When exporting your connection data, you may notice that some of the email addresses are missing.\"\n"
    "\n"
    "First Name,Last Name,URL,Email Address,Company,Position,Connected On\n"
    "Dana,Okafor,https://www.linkedin.com/in/dana-okafor,dana@example.org,Acme,CTO,07 Dec 2025\n"
    ",,https://www.linkedin.com/in/nobody,,,,07 Dec 2025\n"
    "Eli,Stone,https://www.linkedin.com/in/eli-stone,,Globex,Analyst,01 Jan 2024\n"
).encode()


def test_import_linkedin_csv(kith):
    rec = Recorder()
    kith.add_listener(rec)
    r = kith.import_linkedin_csv(LINKEDIN_CSV, False)
    assert [(c.name, c.organisation) for c in r.created] == [("Dana Okafor", "Acme"), ("Eli Stone", "Globex")]
    assert [c.source_line for c in r.created] == [5, 7]
    assert [p.line for p in r.problems] == [6]
    assert sorted(rec.changes[-1].contact_ids) == sorted(c.contact_id for c in r.created)
    again = kith.import_linkedin_csv(LINKEDIN_CSV, False)
    assert again.created == [] and len(again.already_imported) == 2


def test_exports(kith, ana):
    import csv
    import io
    import json

    kith.log_interaction(NewInteraction(summary="Coffee, after the board", participant_ids=[ana.id]))
    vcf = kith.export_vcard()
    assert vcf.startswith("BEGIN:VCARD") and "FN:Ana Lima" in vcf
    doc = json.loads(kith.export_json())
    assert [c["name"] for c in doc["contacts"]] == ["Ana Lima"] and len(doc["interactions"]) == 1
    rows = list(csv.reader(io.StringIO(kith.export_contacts_csv())))
    assert len(rows) == 2 and "Ana Lima" in rows[1]
    irows = list(csv.reader(io.StringIO(kith.export_interactions_csv())))
    assert len(irows) == 2 and "Coffee, after the board" in irows[1]


def test_vcard_export_imports_into_another_store(kith, ana, tmp_path):
    kith.add_contact(NewContact(name="Bo Chen", phones=[ContactPoint(value="+44 20 7946 0000", label="work")]))
    other = kith_ffi.Kith.open(str(tmp_path / "other"))
    try:
        r = other.import_vcard(kith.export_vcard().encode(), False)
        assert sorted(c.name for c in r.created) == ["Ana Lima", "Bo Chen"]
        copy = {c.name: c for c in other.list_contacts(ContactSort.NAME, 0, 10, False)}
        assert copy["Ana Lima"].organisation == "St Mary's"
        assert [e.value for e in copy["Ana Lima"].emails] == ["ana@stmarys.example"]
        assert [p.value for p in copy["Bo Chen"].phones] == ["+44 20 7946 0000"]
    finally:
        other.close()


def test_backup_and_restore(kith, ana, tmp_path):
    iid = kith.log_interaction(NewInteraction(summary="Coffee", participant_ids=[ana.id]))
    sealed = kith.backup("correct horse battery staple")
    assert sealed[:8] == b"KITHBAK\x00"
    assert b"Ana Lima" not in sealed  # encrypted

    target = tmp_path / "restored"
    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.restore_backup(str(target), "wrong horse", sealed)
    assert invalid_field(e) == "passphrase"
    assert not target.exists() or not any(target.iterdir())  # nothing written

    damaged = bytearray(sealed)
    damaged[-5] ^= 0x01
    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.restore_backup(str(target), "correct horse battery staple", bytes(damaged))
    assert invalid_field(e) == "backup"
    for junk in (b"", b"not a backup at all", bytes(sealed[:50])):
        with pytest.raises(KithError.InvalidInput) as e:
            kith_ffi.restore_backup(str(target), "correct horse battery staple", junk)
        assert invalid_field(e) == "backup"
    assert not target.exists() or not any(target.iterdir())

    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.restore_backup(str(target), "", sealed)
    assert invalid_field(e) == "passphrase"
    with pytest.raises(KithError.InvalidInput) as e:
        kith.backup("")
    assert invalid_field(e) == "passphrase"

    restored = kith_ffi.restore_backup(str(target), "correct horse battery staple", sealed)
    try:
        assert restored.get_contact(ana.id).name == "Ana Lima"
        assert restored.get_interaction(iid).summary == "Coffee"
        restored.add_contact(NewContact(name="After the restore"))
    finally:
        restored.close()
    # The directory now holds a store: restoring into it again is refused.
    with pytest.raises(KithError.InvalidInput) as e:
        kith_ffi.restore_backup(str(target), "correct horse battery staple", sealed)
    assert invalid_field(e) == "data_dir"


# ---------------------------------------------------------------- generated code (no Swift compiler here)


def test_generated_kotlin_and_swift_follow_bindings_uniffi_toml():
    """What bindings/uniffi.toml asks of the generated code, read from the files
    scripts/bindings.sh wrote (the Swift cannot be compiled on this machine)."""
    import re

    gen = REPO / "bindings" / "generated"
    kotlin = (gen / "kotlin" / "dev" / "kith" / "kith_ffi.kt").read_text()
    swift = (gen / "swift" / "kith_ffi.swift").read_text()
    # Immutable records: `val` in Kotlin data classes, `let` in Swift structs.
    contact_kt = re.search(r"data class Contact \((.*?)\n\) ?\{", kotlin, re.S)
    assert contact_kt, "data class Contact not found"
    assert "var " not in contact_kt.group(1) and "val `id`: kotlin.String" in contact_kt.group(1)
    contact_sw = re.search(r"public struct Contact[^{]*\{(.*?)\n\}", swift, re.S)
    assert contact_sw and "public var " not in contact_sw.group(1)
    assert "public let id: String" in contact_sw.group(1)
    # Signed types only: no unsigned Kotlin or Swift integers anywhere in the API.
    # (the API's types are written qualified in Kotlin: `kotlin.Int`; uniffi's internals use
    # unqualified ULong for buffer sizes, and fileprivate UInt64 handles in Swift)
    assert not re.search(r"kotlin\.U(?:Int|Long|Short|Byte)\b", kotlin)
    assert "kotlin.Long" in kotlin and "kotlin.Int" in kotlin
    assert not re.search(r"public (?:let|var) \w+: UInt(?:8|16|32|64)\b", swift)
    assert not re.search(r"(?:public|open) func (?!FfiConverter)\w+\([^)]*UInt(?:8|16|32|64)", swift)
    # Swift names that would collide with SwiftUI / SwiftData in an app module.
    for name in ("Circle", "Attribute", "Settings"):
        assert not re.search(rf"public (?:enum|struct|class) {name}\b", swift), name
        assert re.search(rf"public (?:enum|struct) Kith{name}\b", swift), name
    # uniffi's debug-dump errorDescription is off: the extension file provides a readable one.
    assert "String(reflecting: self)" not in swift.split("enum KithError")[1].split("\n}\n")[0]
    ext = (gen / "swift" / "KithExtensions.swift").read_text()
    assert "extension KithError: LocalizedError" in ext
    assert "public var errorDescription: String? { description }" in ext
    # SyncState and KithError print through Rust's Display.
    assert re.search(r"extension SyncState: CustomStringConvertible", swift) or \
        "CustomStringConvertible" in swift.split("enum SyncState")[1].split("\n}\n")[0]
    # The Kotlin helpers ship beside the generated file.
    assert (gen / "kotlin" / "dev" / "kith" / "KithFlows.kt").is_file()
