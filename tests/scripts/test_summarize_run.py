"""The main job names the tasks that failed when a run archived nothing."""

from __future__ import annotations

import importlib.util

from tests.conftest import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("summarize_run", PROJECT_ROOT / "scripts" / "summarize_run.py")
summarize_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summarize_run)


def test_failed_tasks_are_read_from_the_dags_test_log(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        "... Task instance state updated new_state=success rows_affected=1\n"
        "... [DAG TEST] end task task_id=validate_dataset map_index=-1\n"
        "... Task failed with exception\n"
        "... Task instance state updated new_state=failed rows_affected=1\n"
        "... [DAG TEST] end task task_id=upload_dataset map_index=-1\n"
        "... [DAG TEST] end task task_id=upload_dataset map_index=-1\n"
    )
    assert summarize_run.failed_tasks(log) == ["upload_dataset"]
    assert summarize_run.failed_tasks(tmp_path / "missing.log") == []
