"""Loads the generated Python bindings (bindings/generated/python, written by
scripts/bindings.sh --test-hooks) and gives each test a fresh store."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
GENERATED = REPO / "bindings" / "generated" / "python"
if not (GENERATED / "kith_ffi.py").exists():
    raise RuntimeError(
        f"{GENERATED}/kith_ffi.py is missing: run scripts/bindings.sh --test-hooks first"
    )
sys.path.insert(0, str(GENERATED))

import kith_ffi as _raw_kith_ffi  # noqa: E402,F401  (loads the library)
from blocking import kith_ffi  # noqa: E402


@pytest.fixture
def kith(tmp_path):
    k = kith_ffi.Kith.open(str(tmp_path / "store"))
    yield k
    k.close()


@pytest.fixture
def ana(kith):
    return kith.add_contact(
        kith_ffi.NewContact(
            name="Ana Lima",
            organisation="St Mary's",
            role="Head of nursing",
            discipline="nursing",
            seniority=kith_ffi.Seniority.SENIOR,
            inside_org=True,
            circles=[kith_ffi.Circle.OPERATIONAL, kith_ffi.Circle.STRATEGIC],
            emails=[kith_ffi.ContactPoint(value="ana@stmarys.example", label="work")],
        )
    )
