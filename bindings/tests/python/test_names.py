"""Names from every language through the bindings (issue 21): the shared
table core/tests/data/names.tsv. Every query finds its person through
search(); every look-alike pair (and no other) is a likely duplicate, and an
import of the other spellings reports each as one."""

import pathlib

from kith_ffi import NewContact

TABLE = pathlib.Path(__file__).resolve().parents[3] / "core" / "tests" / "data" / "names.tsv"


def table():
    people, dups = [], []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        if f[0] == "person" and len(f) == 4:
            people.append((f[2], f[3].split("|")))
        elif f[0] == "dup" and len(f) == 3:
            dups.append((f[1], f[2]))
        else:
            raise AssertionError(f"bad line in names.tsv: {line!r}")
    return people, dups


def test_every_query_finds_its_person(kith):
    people, _ = table()
    assert len(people) >= 40
    ids = {name: kith.add_contact(NewContact(name=name)).id for name, _ in people}
    missed = [
        f"{q!r} -> {name}"
        for name, queries in people
        for q in queries
        if ids[name] not in {c.id for c in kith.search(q, 100).contacts}
    ]
    assert missed == []
    assert kith.likely_duplicates() == []


def test_every_look_alike_pair_is_a_likely_duplicate(kith):
    _, dups = table()
    firsts = sorted({a for a, _ in dups})
    ids = {a: kith.add_contact(NewContact(name=a)).id for a in firsts}

    # The other spellings arrive from a phone's address book.
    vcf = "".join(f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:{b}\r\nEND:VCARD\r\n" for _, b in dups)
    report = kith.import_vcard(vcf.encode("utf-8"), True)
    assert report.created == []
    reported = {(d.merge_into_id, d.name) for d in report.likely_duplicates}
    for a, b in dups:
        assert (ids[a], b) in reported, f"import missed {b} ~ {a}"

    for b in sorted({b for _, b in dups}):
        ids[b] = kith.add_contact(NewContact(name=b)).id
    names = {v: k for k, v in ids.items()}
    pairs = kith.likely_duplicates()
    assert all(len(p.reasons) == 1 and p.reasons[0].is_same_name() for p in pairs)
    got = {frozenset((names[p.contact_a], names[p.contact_b])) for p in pairs}
    # Exactly the pairs of the table: no other combination (e.g. "Joerg
    # Grossmann" ~ "Jorg Grossmann") is reported.
    assert got == {frozenset(p) for p in dups}
