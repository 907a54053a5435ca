"""The CPU thread count of training (and decoding) steps, chosen by timing them as they run.

On a small CPU the best count depends on what else the machine is doing. On the idle 2-core
CPU, two threads train SmolLM2 1.3-1.5x faster than one; with other processes busy, each
parallel region waits for a descheduled thread, and two threads measured 10x slower than one
(41 against 4.3 ms per token). Load changes during a job, so no count fixed at start is right
throughout: the trainer times each candidate per token, keeps the fastest, and times the others
again now and then. A re-timing costs one step at the slower count, so how soon the next one
comes depends on how much slower that count was: a count 1.4x slower is timed again after 16
steps, one 10x slower after 256 (at most RETIMING_COST of the time goes to re-timing, or one
step in MAX_RETIMING).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence

RETIMING_COST = 0.025  # the share of training time that re-timing slower counts may cost
MIN_RETIMING, MAX_RETIMING = 8, 256  # steps between two re-timings
WINDOW = 3  # recent timings kept of the count in use: the median shrugs off one slow step


class ThreadChooser:
    """Picks the thread count for each step from the time per token that each count achieved.

    `next_count()` sets the count (through `set_threads`) and returns it; `record()` gives the
    step's time back. The first step runs at the smallest count, the safest on a busy machine,
    and is not timed: it pays one-off allocations.
    """

    def __init__(self, counts: Sequence[int], set_threads: Callable[[int], None]):
        if not counts or min(counts) < 1:
            raise ValueError(f"thread counts must be positive, not {list(counts)}")
        self.counts = sorted(set(counts))
        self._set_threads = set_threads
        self._timings: dict[int, deque[float]] = {count: deque(maxlen=WINDOW) for count in self.counts}
        self._last_timed: dict[int, int] = {count: -1 for count in self.counts}
        self._steps = 0
        self._current = self.counts[0]  # the count of the step being timed
        self._applied: int | None = None  # the count torch runs with now
        self._next_retiming = 0
        self.steps_per_count: dict[int, int] = {count: 0 for count in self.counts}

    @property
    def adaptive(self) -> bool:
        return len(self.counts) > 1

    def best(self) -> int:
        """The count with the lowest median time per token so far (the smallest before any timing)."""
        timed = [count for count in self.counts if self._timings[count]]
        if not timed:
            return self.counts[0]
        return min(timed, key=lambda count: (self._pace(count), count))

    def next_count(self) -> int:
        untimed = [count for count in self.counts if not self._timings[count]]
        if self._steps == 0:
            count = self.counts[0]
        elif untimed:
            count = untimed[0]
        elif self.adaptive and self._steps >= self._next_retiming:
            best = self.best()
            count = min((c for c in self.counts if c != best), key=lambda c: self._last_timed[c])
            self._timings[count].clear()  # its old timings are from another load: this one replaces them
        else:
            count = self.best()
        self._current = count
        return self._use(count)

    def use_best(self) -> int:
        """Set the fastest count so far for other work (evaluation); it is not timed."""
        return self._use(self.best())

    def record(self, seconds: float, tokens: int) -> None:
        """The time the step just run with `next_count()`'s count took for `tokens` tokens."""
        best_before = self.best()
        if self._steps > 0 and tokens > 0:
            self._timings[self._current].append(seconds / tokens)
            self._last_timed[self._current] = self._steps
        self.steps_per_count[self._current] += 1
        self._steps += 1
        best = self.best()
        if self._timings[self._current] and (self._current != best or best != best_before):
            # A slower count was timed, or the best changed: when to time the slower one again.
            slower = self._current if self._current != best else best_before
            self._next_retiming = self._steps + self._retiming_interval(slower, best)

    def _retiming_interval(self, slower: int, best: int) -> int:
        """Steps until `slower` is timed again, so that re-timing it costs at most RETIMING_COST
        of the time."""
        if not self._timings[slower] or not self._timings[best]:
            return MIN_RETIMING
        slowdown = self._pace(slower) / self._pace(best)
        return min(max(math.ceil((slowdown - 1) / RETIMING_COST), MIN_RETIMING), MAX_RETIMING)

    def _pace(self, count: int) -> float:
        return statistics.median(self._timings[count])

    def _use(self, count: int) -> int:
        if count != self._applied:
            self._set_threads(count)
            self._applied = count
        return count

    def summary(self) -> str:
        """For the job's log: the steps run at each count, and the time per token each achieved."""
        parts = []
        for count in self.counts:
            timings = self._timings[count]
            pace = f", {statistics.median(timings) * 1000:.2f} ms/token" if timings else ""
            parts.append(f"{count} thread{'s' if count > 1 else ''}: {self.steps_per_count[count]} steps{pace}")
        return "; ".join(parts)
