"""When to stop retrying a download: one rule with four bounds, and what zoo says when it gives up.

1. The same failure twice in a row (the same kind, at the same byte; a 5xx, a 429 or a refused connection
   excepted: those pass with time) ends it: a stall or a cut at byte N after a restart from zero, or after
   a resume that brought nothing, will happen again.
2. ZOO_FETCH_RETRIES (5) retries in a row that bring no new bytes (the furthest the file ever got), at
   most 2 of them when each restarts from byte 0 (a server that ignores Range: every one costs the whole
   file again).
3. 4 x ZOO_FETCH_RETRIES retries in all, however many bytes each attempt brings.
4. A deadline for the whole file: ZOO_FETCH_DEADLINE seconds, by default 30 min plus 1 s per 128 KiB
   of its size (a 1 GB file: 2.8 h), so a slow but steady network finishes and a server that trickles does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from zoo.weights.sources import TransientError, setting

MAX_BACKOFF = 30.0  # seconds between two attempts, at most
DEADLINE_BASE = 1800.0  # seconds
DEADLINE_RATE = 128 << 10  # bytes per second the default deadline allows on top of its base
ATTEMPTS_PER_RETRY = 4  # attempts in all, per retry allowed in a row without progress
RESTARTS_IN_A_ROW = 2  # retries in a row without progress when each restarts from byte 0


class GaveUp(TransientError):
    """Retries or time ran out; the message says what happened. The `.part` stays for a later resume."""


def retries() -> int:
    """ZOO_FETCH_RETRIES: retries in a row without progress (default 5)."""
    return int(setting("ZOO_FETCH_RETRIES", 5, integer=True))


def backoff() -> float:
    """ZOO_FETCH_BACKOFF: the first delay between attempts in seconds (default 0.5; doubles, at most 30 s)."""
    return setting("ZOO_FETCH_BACKOFF", 0.5)


def deadline_seconds(size: int | None) -> float:
    """The time one file may take in all: ZOO_FETCH_DEADLINE, else 30 min plus 1 s per 128 KiB of `size`."""
    fixed = setting("ZOO_FETCH_DEADLINE", 0.0)
    return fixed if fixed else DEADLINE_BASE + (size or 0) / DEADLINE_RATE


def amount(received: int, total: int | None) -> str:
    """`8,388,608 of 25,165,824 bytes`, or `8,388,608 bytes` when the size is not known."""
    return f"{received:,} of {total:,} bytes" if total is not None else f"{received:,} bytes"


@dataclass(frozen=True)
class Failure:
    """How one attempt ended: `reason` in plain words (without the URL), the bytes in the file after it."""

    reason: str
    end: int
    patient: bool = False  # a 5xx, a 429, a refused connection: retried with backoff even when it repeats
    restarted: bool = False  # it asked to resume, and the server sent the file from byte 0


class RetryBudget:
    """The attempts at one URL of one file: `failed()` says how long to wait before the next, or raises GaveUp."""

    def __init__(self, url: str, started: float | None = None) -> None:
        self.url = url
        self.started = time.monotonic() if started is None else started
        self.retries = retries()
        self.attempts = 0
        self.best = 0  # the furthest the file ever got
        self.in_a_row = 0  # failures in a row that brought no new bytes
        self.repeats = 0  # the last failure, this many times in a row
        self.last: Failure | None = None
        self.ignores_range = False

    def deadline(self, total: int | None) -> float:
        return self.started + deadline_seconds(total)

    def remaining(self, total: int | None) -> float:
        return self.deadline(total) - time.monotonic()

    def failed(self, failure: Failure, total: int | None) -> float:
        """Count `failure`; the seconds to wait before the next attempt, or GaveUp."""
        self.attempts += 1
        progress = failure.end > self.best
        self.best = max(self.best, failure.end)
        self.ignores_range |= failure.restarted
        same = not progress and self.last is not None and failure.reason == self.last.reason
        self.repeats = self.repeats + 1 if same else 1
        self.in_a_row = 0 if progress else self.in_a_row + 1
        self.last = failure
        if not self.retries:
            raise self._give_up(f"{failure.reason} (ZOO_FETCH_RETRIES=0: no retries)")
        if same and not failure.patient:
            raise self._give_up(f"{failure.reason}, {self.repeats} times{self._range_note()}")
        if self.in_a_row > (min(self.retries, RESTARTS_IN_A_ROW) if failure.restarted else self.retries):
            raise self._give_up(
                f"{self.in_a_row} attempts in a row failed without new bytes (the last: {failure.reason})"
                f"{self._range_note()}"
            )
        if self.attempts > ATTEMPTS_PER_RETRY * self.retries:
            raise self._give_up(
                f"still incomplete after {self.attempts} attempts, the most zoo makes for one file "
                f"(ZOO_FETCH_RETRIES={self.retries}; the last: {failure.reason})"
            )
        delay = min(MAX_BACKOFF, backoff() * 2 ** max(0, self.in_a_row - 1))
        if delay >= self.remaining(total):
            raise self.out_of_time(failure.end, total)
        return delay

    def out_of_time(self, received: int, total: int | None, attempts: int | None = None) -> GaveUp:
        """The error for a file whose deadline passed with `received` bytes in it, after `attempts` attempts at
        this URL (default: those that failed so far)."""
        attempts = self.attempts if attempts is None else attempts
        seconds = _seconds(deadline_seconds(total))
        what = (
            "ZOO_FETCH_DEADLINE"
            if setting("ZOO_FETCH_DEADLINE", 0.0)
            else "30 min + 1 s per 128 KiB; ZOO_FETCH_DEADLINE sets it"
        )
        if not attempts:
            return self._give_up(f"not tried: the file's {seconds} s deadline ({what}) had passed at its other URLs")
        last = f"; the last failure: {self.last.reason}" if self.last is not None else ""
        return self._give_up(
            f"not complete within its {seconds} s deadline ({what}): {amount(received, total)} after "
            f"{attempts} attempt{'s' if attempts > 1 else ''}{last}"
        )

    def _range_note(self) -> str:
        if not self.ignores_range:
            return ""
        return ", and ignores Range requests, so every attempt restarted from the beginning"

    def _give_up(self, what: str) -> GaveUp:
        return GaveUp(f"{self.url}: {what}; giving up", reason=what)


def _seconds(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:g}"
