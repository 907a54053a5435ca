from collections import Counter

import pytest

from include.sample_data.small_tasks import SPLITS, TASKS, task_splits, write_task


def _user_text(row: dict) -> str:
    return row["contents"][0]["parts"][0]["text"]


def _answer(row: dict) -> str:
    return row["contents"][-1]["parts"][0]["text"]


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_splits_have_their_sizes_and_never_share_a_prompt(task):
    splits = task_splits(task)
    assert [len(splits[split]) for split in SPLITS] == list(task.sizes)
    texts = [_user_text(row) for split in SPLITS for row in splits[split]]
    assert len(texts) == len(set(texts))


@pytest.mark.parametrize("task", [task for task in TASKS if task.classes], ids=lambda task: task.name)
def test_classification_tasks_are_balanced_over_their_classes(task):
    counts = Counter(_answer(row) for row in task_splits(task)["train"])
    assert len(counts) == task.classes
    assert max(counts.values()) - min(counts.values()) <= 1


def test_small_sets_as_the_issue_describes_them():
    assert all(100 <= task.sizes[0] <= 200 for task in TASKS)
    assert {task.classes for task in TASKS} >= {5, 10, 20, None}
    extraction = next(task for task in TASKS if task.classes is None)
    answers = {_answer(row) for row in task_splits(extraction)["heldout"]}
    assert len(answers) > 50  # extraction answers vary: not a disguised classification


def test_output_is_deterministic_and_written_per_task(tmp_path):
    task = TASKS[0]
    assert task_splits(task) == task_splits(task)
    assert task_splits(task, seed=1) != task_splits(task, seed=2)
    paths = write_task(task, tmp_path)
    assert sorted(paths) == sorted(SPLITS)
    assert paths["heldout"] == tmp_path / task.name / "heldout.jsonl"
    assert len(paths["train"].read_text().splitlines()) == task.sizes[0]
