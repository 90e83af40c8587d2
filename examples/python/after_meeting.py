"""After the meeting: log who, what, what was exchanged and the follow-up,
through Kith's generated Python bindings, then read it back.

Run (after scripts/bindings.sh):
    PYTHONPATH=bindings/generated/python python3 examples/python/after_meeting.py [DATA_DIR [RELAY]]
Without DATA_DIR it uses a temporary directory. With RELAY (kith://KEY@HOST:PORT)
it then syncs the meeting to the user's other devices through that relay.

Every call that touches the store or the network is a coroutine (await it);
`add_listener` and the other in-memory accessors are plain calls.
"""

import asyncio
import atexit
import datetime
import sys
import tempfile
import time

import kith_ffi
from kith_ffi import (
    Circle,
    ContactPoint,
    Direction,
    ExchangeWhat,
    Initiator,
    InteractionKind,
    NewContact,
    NewExchange,
    NewFollowUp,
    NewInteraction,
    Seniority,
)


class PrintChanges(kith_ffi.KithListener):
    """What a UI would do: refresh the screens showing the changed records."""

    def on_change(self, summary):
        print(
            f"  (listener: {len(summary.contact_ids)} contact(s), "
            f"{len(summary.interaction_ids)} interaction(s) changed)"
        )

    def on_sync_state(self, state):
        print(f"  (listener: sync is {state})")


async def main(data_dir, relay=None):
    kith = await kith_ffi.Kith.open(data_dir)
    kith.add_listener(PrintChanges())

    ana = await kith.add_contact(
        NewContact(
            name="Ana Lima",
            organisation="St Mary's Hospital",
            role="Director of nursing",
            discipline="nursing",
            seniority=Seniority.SENIOR,
            inside_org=True,
            circles=[Circle.OPERATIONAL, Circle.STRATEGIC],
            emails=[ContactPoint(value="ana.lima@stmarys.example", label="work")],
        )
    )

    # The meeting just ended: log it in one call, durable when it returns.
    due = (datetime.date.today() + datetime.timedelta(days=7)).isoformat()
    interaction_id = await kith.log_interaction(
        NewInteraction(
            summary="Coffee after the discharge-pathway board",
            participant_ids=[ana.id],
            participant_names=["Rui Sousa"],  # not in Kith yet: created on the fly
            create_missing=True,
            kind=InteractionKind.MEAL,
            initiator=Initiator.ME,
            notes="Ana will introduce me to the regional lead for social care.",
            exchanges=[
                NewExchange(what=ExchangeWhat.INSIGHT, direction=Direction.RECEIVED, with_contact_id=ana.id),
                NewExchange(what=ExchangeWhat.SUPPORT, direction=Direction.GAVE),
            ],
            follow_ups=[NewFollowUp(text="Send the audit summary", due=due)],
        )
    )
    print(f"Logged interaction {interaction_id}")

    print("Ana's timeline:")
    for i in await kith.timeline(ana.id, 0, 20, False):
        names = ", ".join([(await kith.get_contact(p)).name for p in i.participants])
        print(f"  {i.summary} — with {names}")
    print("Follow-ups due within a week:")
    for item in await kith.follow_ups_due_by(due):
        print(f"  {item.follow_up.due}: {item.follow_up.text} ({item.summary})")

    try:
        await kith.log_interaction(NewInteraction(summary="", participant_ids=[ana.id]))
    except kith_ffi.KithError.InvalidInput as e:
        print(f"Refused as expected: {e.field}: {e.reason}")

    if relay:
        # First run on this device: a new account (keys in keys.json beside the
        # store; an app passes its keychain with Kith.open_with_key_store).
        if await kith.account() is None:
            await kith.create_account("laptop", relay)
        try:
            report = await kith.sync_now()
            print(f"Synced: sent {report.pushed_entries} entries ({report.bytes_sent} bytes)")
        except kith_ffi.KithError.Network as e:
            print(f"Offline, the meeting stays here until the next sync: {e.reason}")

    await kith.close()


if __name__ == "__main__":
    # CPython before 3.14 kills a thread that asks for the GIL during interpreter
    # shutdown; give the library's thread that delivered the last result a moment
    # to return from Python first (see bindings/README.md, Python).
    atexit.register(time.sleep, 0.2)
    if len(sys.argv) > 1:
        asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
    else:
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(main(d))
