"""The README's walk through Google's guide runs as printed: its bash block, then its Python
block, against a private local service with the sample data as its data root (the snippets read
the shipped sample data through file:// URIs)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.fixtures.local_vertex import PROJECT_ROOT, LocalVertexService

pytestmark = pytest.mark.slow

SECTION = "### Google's guide against the local service"


def readme_snippets() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the README's guide section, in order."""
    text = (PROJECT_ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start)
    section = text[start:end if end >= 0 else None]
    return re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.S | re.M)


@pytest.fixture(scope="module")
def service(tmp_path_factory, local_vertex_tiny_model):
    service = LocalVertexService(tmp_path_factory.mktemp("readme") / "data", local_vertex_tiny_model)
    service.data_root = PROJECT_ROOT / "include" / "sample_data"  # as the README's serve command
    service.start()
    yield service
    service.stop()


def run(command: list[str], service: LocalVertexService, code: str) -> str:
    env = dict(os.environ, LOCAL_VERTEX_PORT=str(service.port), LOCAL_VERTEX_TOKEN=service.token)
    done = subprocess.run(command, input=code, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{service.log_tail()}"
    return done.stdout


def test_the_section_has_the_guides_operations_in_both_forms():
    snippets = readme_snippets()
    assert [language for language, _ in snippets] == ["bash", "python"]
    bash, python = (code for _, code in snippets)
    for call in ("/tuningJobs\"", "X GET", ":cancel", ":generateContent", "timeSeries"):
        assert call in bash
    for call in ("tunings.tune", "tunings.list", "tunings.get", "tunings.cancel", "generate_content", "experiment"):
        assert call in python


def test_the_readme_snippets_run_as_printed(service):
    (_, bash), (_, python) = readme_snippets()
    out = run(["bash", "-euo", "pipefail"], service, bash)
    lines = out.splitlines()
    assert lines[0].startswith("projects/local-project/locations/us-central1/tuningJobs/")
    assert lines[1] in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    assert lines[2] == "{}"  # the cancel's answer
    assert '"step"' in lines[-1] or "'step'" in lines[-1]  # the last training-loss point
    out = run([sys.executable, "-"], service, python)
    assert "JobState.JOB_STATE_SUCCEEDED" in out and "/endpoints/" in out
    assert "train_total_loss" in out
