"""A test adapter over the async Python bindings: `Blocking(x)` forwards every
attribute of `x`, and a call whose result is a coroutine (every call that
touches the store, the key store or the network is async) is awaited at once
with `asyncio.run`, bounded by TIMEOUT_S. Objects coming back (`Kith`,
`DeviceInvitation`, `JoinAttempt`) are wrapped the same way.

Most tests check *what* each method does, one step after another; the
adapter keeps them readable. *How* the async API behaves (coroutines, a
running event loop never blocked, cancellation, concurrent awaits) is tested
directly on the raw objects (`.raw`) in test_kith.py and test_sync.py, and
examples/python/after_meeting.py shows the idiomatic `await` style."""

import asyncio
import atexit
import inspect
import time

import kith_ffi as _raw

# CPython before 3.14 kills (pthread_exit) a thread that asks for the GIL once the
# interpreter is finalizing; the library's runtime thread that delivered the last
# result may still be returning from that callback when a script ends right after
# its last await, and the forced unwind through Rust aborts the process ("FATAL:
# exception not rethrown"). Before finalization, give it a moment to return.
atexit.register(time.sleep, 0.2)

# No single call of the tests may take longer (a sync round's own timeout is 60 s).
TIMEOUT_S = 120

_OBJECTS = (_raw.Kith, _raw.DeviceInvitation, _raw.JoinAttempt)


def run(coro):
    """Awaits one coroutine on a fresh event loop, bounded by TIMEOUT_S. A value
    that is not a coroutine (the result of a call through `Blocking`, already
    awaited) is returned as it is."""
    if not inspect.iscoroutine(coro):
        return coro

    async def bounded():
        return await asyncio.wait_for(coro, TIMEOUT_S)

    return asyncio.run(bounded())


def _wrap(value):
    if isinstance(value, _OBJECTS) or any(value is c for c in _OBJECTS) or value is _raw:
        return Blocking(value)
    return value


def _unwrap(value):
    return value.raw if isinstance(value, Blocking) else value


class Blocking:
    """See the module docstring. `.raw` is the wrapped object."""

    __slots__ = ("raw",)

    def __init__(self, raw):
        object.__setattr__(self, "raw", raw)

    def __getattr__(self, name):
        attr = getattr(self.raw, name)
        if inspect.isclass(attr):
            return _wrap(attr)
        if not inspect.isroutine(attr):
            return attr

        def call(*args, **kwargs):
            result = attr(*map(_unwrap, args), **{k: _unwrap(v) for k, v in kwargs.items()})
            if inspect.iscoroutine(result):
                result = run(result)
            return _wrap(result)

        return call

    def __eq__(self, other):
        return self.raw is _unwrap(other)

    def __hash__(self):
        return id(self.raw)

    def __repr__(self):
        return f"Blocking({self.raw!r})"


# The module itself, for `kith_ffi.Kith.open(...)`, `kith_ffi.restore_backup(...)`.
kith_ffi = Blocking(_raw)
