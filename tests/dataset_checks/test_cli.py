"""The command line: prints the report, exits 0 valid / 1 invalid / 2 usage."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gemini_tuning.dataset_checks.__main__ import main

from .conftest import example


def test_valid_file_exits_0_and_writes_the_html_report(write, tmp_path, capsys):
    train = write("train.jsonl", example("a"), example("b"))
    assert main([str(train), "--report-dir", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Dataset VALID") and "2 examples" in out
    assert (tmp_path / "report" / "report.html").exists()
    assert (tmp_path / "report" / "expectation_results.json").exists()


def test_invalid_file_exits_1_and_names_rule_and_line(write, capsys):
    train = write("train.jsonl", example("a"), example("b", ""))
    validation = write("validation.jsonl", example("a"))
    assert main([str(train), "--validation", str(validation)]) == 1
    out = capsys.readouterr().out
    assert "Dataset INVALID" in out
    assert "[empty_text] training file train.jsonl" in out and "line 2" in out
    assert "[leakage] validation file validation.jsonl" in out


def test_missing_file_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "absent.jsonl"
    assert main([str(missing)]) == 2
    assert f"dataset not found: {missing}" in capsys.readouterr().err


def test_bad_arguments_exit_2(write):
    with pytest.raises(SystemExit) as exit_:
        main([str(write("t.jsonl", example())), "--task", "poetry"])
    assert exit_.value.code == 2


@pytest.mark.slow
def test_python_dash_m_entry_point(write):
    train = write("train.jsonl", example("a"), '{"contents": [{"role": "user", "parts": [{"text": "q"}]}]}')
    done = subprocess.run(
        [sys.executable, "-m", "gemini_tuning.dataset_checks", str(train), "--backend", "local"],
        capture_output=True, text=True, env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "[last_turn_model] training file train.jsonl" in done.stdout and "line 2" in done.stdout
