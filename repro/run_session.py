"""What a ``paperkb run`` process needs around :mod:`repro.runner`: the claims it sets
aside as not runnable here, and the signals that end its runs as Ctrl-C does."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from typing import Any


def set_aside_not_runnable(claims: Iterable[Any], named: Iterable[str] = ()) -> tuple[list[Any], list[Any]]:
    """``(kept, aside)``: ``aside`` are the claims that deliberately name no experiment and
    say in ``needs::`` what they would need (data, hardware, human raters), which
    ``run --all`` lists once at the end instead of warning about each; a claim named on
    the command line (``named``) is kept, so that naming it still says why it cannot run."""
    keep = set(named)
    kept: list[Any] = []
    aside: list[Any] = []
    for c in claims:
        deliberate = not c.experiments and bool(getattr(c, "needs", "")) and c.id not in keep
        (aside if deliberate else kept).append(c)
    return kept, aside


def not_runnable_line(claims: list[Any]) -> str:
    """One line naming the claims :func:`set_aside_not_runnable` set aside ('' when there are none)."""
    if not claims:
        return ""
    count = f"{len(claims)} claim" + ("" if len(claims) == 1 else "s")
    ids = ", ".join(c.id for c in claims)
    return (
        f"not runnable here: {ids} ({count} naming no experiment; `paperkb claims --status needs` says what each needs)"
    )


class StopSignalsInterrupt:
    """While runs go on, SIGTERM and SIGHUP (``kill``, a closed terminal or SSH session)
    take the Ctrl-C path: they raise KeyboardInterrupt, so the child is ended and the
    current and queued runs are recorded as interrupted at once, instead of waiting for
    the next paperkb to reap them. Handlers can only be set from the main thread; in
    any other this does nothing."""

    SIGNALS = ("SIGTERM", "SIGHUP")

    def __enter__(self) -> StopSignalsInterrupt:
        self.saved: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self.saved[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
