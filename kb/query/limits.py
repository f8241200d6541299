"""Bounds on what one query may cost: rows, list and string sizes, regex and total time.

A query comes from the command line or from a note someone else wrote (``render``), so
every way of making work grow is capped and reported as one :class:`QueryError` line:
FLATTEN multiplies rows, ``+`` and ``reduce`` double lists and strings, ``padleft`` and
``*`` allocate on request, a regex can backtrack for ever, and lambdas can loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kb.query.errors import QueryError


@dataclass(frozen=True)
class Limits:
    max_rows: int = 200_000  # rows alive after any command (FLATTEN multiplies them)
    max_list: int = 1_000_000  # elements in one list value
    max_string: int = 10_000_000  # characters in one string value
    time_s: float = 10.0  # CPU time for one query (or for all the blocks of one note in render)
    wall_factor: float = 3.0  # ... and at most this many times as long by the clock (a busy machine)
    regex_time_s: float = 1.0  # CPU time for one regex search, match, split or replace


DEFAULT_LIMITS = Limits()


@dataclass
class Budget:
    """The limits of one evaluation and the clock they run against: this process's CPU
    time, which a busy machine does not stretch (the regex module's timeout counts it too)."""

    limits: Limits = DEFAULT_LIMITS
    deadline: float = field(default=0.0)
    wall_deadline: float = field(default=0.0)
    ticks: int = 0

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.process_time() + self.limits.time_s
        if not self.wall_deadline:
            self.wall_deadline = time.monotonic() + self.limits.time_s * self.limits.wall_factor

    def check_time(self) -> None:
        if time.process_time() > self.deadline:
            raise QueryError(f"query took longer than its {self.limits.time_s:g} s limit")
        if time.monotonic() > self.wall_deadline:
            raise QueryError(
                f"query took longer than {self.limits.time_s * self.limits.wall_factor:g} s "
                f"by the clock (the machine is busy; the limit is {self.limits.time_s:g} s of CPU)"
            )

    def tick(self) -> None:
        """Cheap enough for every lambda call: the clock is read one call in 256."""
        self.ticks += 1
        if not self.ticks & 255:
            self.check_time()

    def regex_timeout(self) -> float:
        self.check_time()
        left = self.deadline - time.process_time()
        return max(min(self.limits.regex_time_s, left), 0.001)

    def string_size(self, n: int, what: str) -> None:
        if n > self.limits.max_string:
            raise QueryError(
                f"{what}: a string of {n:,} characters is over the {self.limits.max_string:,}-character limit"
            )

    def list_size(self, n: int, what: str) -> None:
        if n > self.limits.max_list:
            raise QueryError(f"{what}: a list of {n:,} elements is over the {self.limits.max_list:,}-element limit")

    def rows(self, n: int, what: str) -> None:
        if n > self.limits.max_rows:
            raise QueryError(f"{what}: {n:,} rows is over the {self.limits.max_rows:,}-row limit")
