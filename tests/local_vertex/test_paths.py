"""No client-named path leaves the data roots: `..`, absolute paths, symlinks, other hosts."""

from __future__ import annotations

import pytest

from include.local_vertex.config import ServiceConfig
from include.local_vertex.datasets import DatasetUriError, check_dataset_uri
from include.local_vertex.paths import PathNotAllowed, confined, file_uri_path


@pytest.fixture
def root(tmp_path):
    inside = tmp_path / "root"
    (inside / "sub").mkdir(parents=True)
    (inside / "sub" / "ok.jsonl").write_text("{}\n")
    (tmp_path / "secret.jsonl").write_text("{}\n")
    return inside


def test_a_file_inside_the_root_is_allowed(root):
    assert confined(str(root / "sub" / "ok.jsonl"), (root,), what="x") == root / "sub" / "ok.jsonl"
    assert file_uri_path((root / "sub" / "ok.jsonl").as_uri(), (root,), what="x") == root / "sub" / "ok.jsonl"


@pytest.mark.parametrize("make_path", [
    lambda root: f"{root}/sub/../../secret.jsonl",
    lambda root: f"{root}/../secret.jsonl",
    lambda root: "/etc/passwd",
    lambda root: "sub/ok.jsonl",  # relative: not resolved against the working directory
    lambda root: f"{root}-evil/ok.jsonl",  # a sibling whose name starts like the root
])
def test_paths_outside_the_root_are_refused(root, make_path):
    with pytest.raises(PathNotAllowed):
        confined(make_path(root), (root,), what="trainingDatasetUri")


def test_a_symlink_out_of_the_root_is_refused(root):
    (root / "link.jsonl").symlink_to(root.parent / "secret.jsonl")
    (root / "linkdir").symlink_to(root.parent)
    with pytest.raises(PathNotAllowed, match="outside the allowed data roots"):
        confined(str(root / "link.jsonl"), (root,), what="x")
    with pytest.raises(PathNotAllowed):
        confined(str(root / "linkdir" / "secret.jsonl"), (root,), what="x")


def test_file_uris_with_a_host_or_encoded_dots_are_refused(root):
    with pytest.raises(PathNotAllowed, match="not a local file"):
        file_uri_path(f"file://evil.example{root}/sub/ok.jsonl", (root,), what="x")
    with pytest.raises(PathNotAllowed):
        file_uri_path(f"file://{root}/%2E%2E/secret.jsonl", (root,), what="x")


def test_no_data_root_means_no_file_uris(root, tmp_path):
    config = ServiceConfig(data_dir=tmp_path / "data")
    with pytest.raises(DatasetUriError, match="--data-root"):
        check_dataset_uri((root / "sub" / "ok.jsonl").as_uri(), config, field="supervisedTuningSpec.trainingDatasetUri")
