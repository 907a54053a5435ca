"""The CPU thread count of training steps, chosen by timing them while the job runs.

On a small CPU the best count depends on what else the machine is doing. On the idle 2-core
CPU, two threads train SmolLM2 about 1.6x faster than one; with another process busy, each
parallel region waits for a descheduled thread and two threads fall far below one. Load changes
during a job (a smoke test, another run's validation), so no count fixed at start is right
throughout: the trainer times each candidate per token, keeps the fastest, and times the others
again now and then. Each re-timing of a slower count costs a slow step, so while the best stays
the best the re-timings grow rarer (8, 16, 32, then every 64 steps); a change starts over.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence

FIRST_RETIMING, LAST_RETIMING = 8, 64  # steps between two re-timings of the counts not in use
WINDOW = 3  # recent timings kept per count: the median of three shrugs off one slow step


class ThreadChooser:
    """Picks the thread count for each step from the time per token that each count achieved.

    `next_count()` sets the count (through `set_threads`) and returns it; `record()` gives the
    step's time back. The first step is not timed: it pays one-off allocations.
    """

    def __init__(self, counts: Sequence[int], set_threads: Callable[[int], None]):
        if not counts or min(counts) < 1:
            raise ValueError(f"thread counts must be positive, not {list(counts)}")
        self.counts = sorted(set(counts))
        self._set_threads = set_threads
        self._timings: dict[int, deque[float]] = {count: deque(maxlen=WINDOW) for count in self.counts}
        self._last_timed: dict[int, int] = {count: -1 for count in self.counts}
        self._steps = 0
        self._current = self.counts[-1]  # the count of the step being timed
        self._applied: int | None = None  # the count torch runs with now
        self._retiming_interval = FIRST_RETIMING
        self._next_retiming = FIRST_RETIMING
        self._best_before_retiming: int | None = None
        self.steps_per_count: dict[int, int] = {count: 0 for count in self.counts}

    @property
    def adaptive(self) -> bool:
        return len(self.counts) > 1

    def best(self) -> int:
        """The count with the lowest median time per token so far (the largest before any timing)."""
        timed = [count for count in self.counts if self._timings[count]]
        if not timed:
            return self.counts[-1]
        return min(timed, key=lambda count: (statistics.median(self._timings[count]), -count))

    def next_count(self) -> int:
        untimed = [count for count in self.counts if not self._timings[count]]
        if self._steps == 0:
            count = self.counts[-1]
        elif untimed:
            count = untimed[0]
        elif self._steps >= self._next_retiming and self.adaptive:
            best = self.best()
            count = min((c for c in self.counts if c != best), key=lambda c: self._last_timed[c])
            self._timings[count].clear()  # its old timings are from another load: this one replaces them
            self._after_retiming(best)
        else:
            count = self.best()
        self._current = count
        return self._use(count)

    def use_best(self) -> int:
        """Set the fastest count so far for other work (evaluation); it is not timed."""
        return self._use(self.best())

    def _use(self, count: int) -> int:
        if count != self._applied:
            self._set_threads(count)
            self._applied = count
        return count

    def _after_retiming(self, best: int) -> None:
        """Space the next re-timing: twice as far while the best holds, back to the start if not."""
        if self._best_before_retiming in (None, best):
            self._retiming_interval = min(2 * self._retiming_interval, LAST_RETIMING)
        else:
            self._retiming_interval = FIRST_RETIMING
        self._best_before_retiming = best
        self._next_retiming = self._steps + self._retiming_interval

    def record(self, seconds: float, tokens: int) -> None:
        """The time the step just run with `next_count()`'s count took for `tokens` tokens."""
        if self._steps > 0 and tokens > 0:
            self._timings[self._current].append(seconds / tokens)
            self._last_timed[self._current] = self._steps
        self.steps_per_count[self._current] += 1
        self._steps += 1

    def summary(self) -> str:
        """For the job's log: the steps run at each count, and the time per token each achieved."""
        parts = []
        for count in self.counts:
            timings = self._timings[count]
            pace = f", {statistics.median(timings) * 1000:.2f} ms/token" if timings else ""
            parts.append(f"{count} thread{'s' if count > 1 else ''}: {self.steps_per_count[count]} steps{pace}")
        return "; ".join(parts)
