"""Dataset URIs (gs:// through the storage emulator, file:// inside the data roots).

The API checks a URI when the job is created (so a typo is a 400, not a FAILED job an hour
later); the worker turns it into a local file for the engine.
"""

from __future__ import annotations

from pathlib import Path

from include.local_vertex.config import ServiceConfig
from include.local_vertex.paths import PathNotAllowed, file_uri_path
from include.local_vertex.storage import GcsObjects, StorageError


class DatasetUriError(ValueError):
    pass


def check_dataset_uri(uri: str, config: ServiceConfig, *, field: str) -> None:
    """Raises DatasetUriError saying what is wrong with `uri` (named by its request `field`)."""
    if not isinstance(uri, str) or not uri:
        raise DatasetUriError(f"{field} is required and must be a gs:// or file:// URI")
    if uri.startswith("gs://"):
        try:
            GcsObjects(config.storage_url).stat(uri)
        except StorageError as exc:
            raise DatasetUriError(f"{field}: {exc}") from exc
    elif uri.startswith("file://"):
        path = _file_path(uri, config, field)
        if not path.is_file():
            raise DatasetUriError(f"{field}: {uri} is not a readable file")
    else:
        raise DatasetUriError(f"{field}: {uri!r} must start with gs:// or file://")


def local_dataset_file(uri: str, config: ServiceConfig, dest: Path, *, field: str) -> Path:
    """A local file with the dataset's content: downloaded to `dest` for gs://, in place for file://."""
    if uri.startswith("gs://"):
        try:
            return GcsObjects(config.storage_url).download(uri, dest)
        except StorageError as exc:
            raise DatasetUriError(f"{field}: {exc}") from exc
    path = _file_path(uri, config, field)
    if not path.is_file():
        raise DatasetUriError(f"{field}: {uri} is not a readable file")
    return path


def _file_path(uri: str, config: ServiceConfig, field: str) -> Path:
    try:
        return file_uri_path(uri, config.data_roots, what=field)
    except PathNotAllowed as exc:
        raise DatasetUriError(str(exc)) from exc
