"""The trainer's thread count: each candidate timed, the fastest kept, the others timed again as
the load changes, at a bounded cost."""

import pytest

from include.tuning_engine.threads import MAX_RETIMING, RETIMING_COST, ThreadChooser


class Machine:
    """Steps whose time per token depends on the thread count and on the machine's load."""

    def __init__(self, ms_per_token: dict[int, float]):
        self.ms_per_token = ms_per_token
        self.torch_threads: list[int] = []  # every set_num_threads call

    def run(self, chooser: ThreadChooser, steps: int, tokens: int = 500) -> list[int]:
        counts = []
        for _ in range(steps):
            count = chooser.next_count()
            assert self.torch_threads[-1] == count
            chooser.record(self.ms_per_token[count] * tokens / 1000, tokens)
            counts.append(count)
        return counts

    def extra_cost(self, counts: list[int]) -> float:
        """The time lost against always running at the fastest count, as a share of the best time."""
        best = min(self.ms_per_token.values())
        return sum(self.ms_per_token[count] - best for count in counts) / (best * len(counts))


def test_an_idle_machine_keeps_the_faster_count_and_times_the_other_at_a_bounded_cost():
    machine = Machine({1: 4.0, 2: 2.5})
    chooser = ThreadChooser([1, 2], machine.torch_threads.append)
    counts = machine.run(chooser, 400)
    assert counts[:3] == [1, 1, 2]  # an untimed first step at the safer count, then each count timed
    assert chooser.best() == 2 and counts[-1] == 2
    assert counts[3:].count(1) >= 10  # the slower count is timed again and again...
    assert machine.extra_cost(counts[3:]) <= RETIMING_COST * 1.1  # ...within the budget
    assert len(machine.torch_threads) == 1 + 2 * counts[2:].count(1) + 1  # set only when it changes


def test_a_busy_machine_moves_to_the_count_that_is_faster_under_load_and_back():
    machine = Machine({1: 4.0, 2: 2.5})
    chooser = ThreadChooser([1, 2], machine.torch_threads.append)
    machine.run(chooser, 20)
    machine.ms_per_token = {1: 4.5, 2: 45.0}  # another process takes a core: two threads wait on it
    counts = machine.run(chooser, 300)
    assert counts.index(1) <= 2  # noticed within the window of recent timings
    assert chooser.best() == 1 and counts[-5:] == [1] * 5
    # A 10x slower count is timed rarely: within the budget, or once in MAX_RETIMING steps.
    assert machine.extra_cost(counts[3:]) <= max(RETIMING_COST, (10 - 1) / MAX_RETIMING) * 1.1
    machine.ms_per_token = {1: 4.0, 2: 2.5}  # the other process is done
    counts = machine.run(chooser, MAX_RETIMING + 20)
    assert chooser.best() == 2 and counts[-5:] == [2] * 5


def test_one_count_is_never_changed_nor_timed_against_another():
    machine = Machine({3: 1.0})
    chooser = ThreadChooser([3, 3], machine.torch_threads.append)
    assert not chooser.adaptive
    assert machine.run(chooser, 50) == [3] * 50 and machine.torch_threads == [3]
    assert chooser.use_best() == 3 and machine.torch_threads == [3]


def test_the_summary_says_how_many_steps_ran_at_each_count_and_their_pace():
    machine = Machine({1: 4.0, 2: 2.5})
    chooser = ThreadChooser([1, 2], machine.torch_threads.append)
    machine.run(chooser, 10)
    assert chooser.summary() == "1 thread: 2 steps, 4.00 ms/token; 2 threads: 8 steps, 2.50 ms/token"


def test_counts_below_one_are_refused():
    with pytest.raises(ValueError, match="positive"):
        ThreadChooser([0, 1], lambda count: None)
