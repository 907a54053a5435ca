"""Where datasets, prompts, reports and archives live: a local path, a file:// URI or a gs:// object.

Every gs:// read and write goes through the Google provider's GCSHook with the configured
connection (``google_cloud_default`` unless told otherwise) and impersonation chain, never the
bare default credentials. Datasets are read as a local file: a gs:// object is downloaded once to
a temporary file (the pass then reads it at disk speed); local inputs are read in place. A missing
or unreadable input is a DatasetInputError naming it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse


GCS_CONN_ID = "google_cloud_default"


class DatasetInputError(FileNotFoundError):
    """The dataset named by the user cannot be read."""


def local_path(uri: str) -> Path | None:
    """The file a local path or file:// URI names; None for a gs:// URI."""
    if uri.startswith("gs://"):
        return None
    if uri.startswith("file://"):
        parsed = urlparse(uri)
        return Path(unquote(parsed.netloc + parsed.path))
    if "://" in uri:
        raise DatasetInputError(f"unsupported dataset URI {uri!r}: use a local path, file:// or gs://")
    return Path(uri)


def split_gcs_uri(uri: str) -> tuple[str, str]:
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not bucket or not name:
        raise DatasetInputError(f"{uri!r} is not a gs://bucket/object URI")
    return bucket, name


def _gcs_hook(gcp_conn_id: str, impersonation_chain: str | Sequence[str] | None):
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    return GCSHook(gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain)


@contextmanager
def readable_file(
    uri: str, *, gcp_conn_id: str = GCS_CONN_ID, impersonation_chain: str | Sequence[str] | None = None
) -> Iterator[Path]:
    """Yield a local file with the dataset's bytes."""
    path = local_path(str(uri))
    if path is not None:
        if not path.is_file():
            why = "a directory, not a file" if path.is_dir() else "no such file"
            raise DatasetInputError(f"dataset not found: {uri} ({why})")
        if not os.access(path, os.R_OK):
            raise DatasetInputError(f"dataset not readable: {uri} (permission denied)")
        yield path
        return
    from google.api_core.exceptions import Forbidden, NotFound

    bucket, name = split_gcs_uri(uri)
    with tempfile.TemporaryDirectory(prefix="dataset_") as folder:
        target = Path(folder) / Path(name).name
        try:
            _gcs_hook(gcp_conn_id, impersonation_chain).download(
                bucket_name=bucket, object_name=name, filename=str(target)
            )
        except NotFound as error:
            raise DatasetInputError(f"dataset not found: {uri} ({error.message})") from error
        except Forbidden as error:
            raise DatasetInputError(f"dataset not readable: {uri} ({error.message})") from error
        yield target


def read_text(
    uri: str, *, gcp_conn_id: str = GCS_CONN_ID, impersonation_chain: str | Sequence[str] | None = None
) -> str:
    """The UTF-8 text of a local path, file:// or gs:// URI (a DatasetInputError when it is missing)."""
    with readable_file(uri, gcp_conn_id=gcp_conn_id, impersonation_chain=impersonation_chain) as path:
        return path.read_text(encoding="utf-8")


def write_file(
    uri: str,
    data: str | bytes,
    *,
    content_type: str,
    gcp_conn_id: str = GCS_CONN_ID,
    impersonation_chain: str | Sequence[str] | None = None,
) -> str:
    """Write text or bytes to a local path, file:// or gs:// URI; return where it went (a path or the URI)."""
    raw = data.encode() if isinstance(data, str) else data
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        return str(path)
    bucket, name = split_gcs_uri(uri)
    _gcs_hook(gcp_conn_id, impersonation_chain).upload(
        bucket_name=bucket, object_name=name, data=raw, mime_type=content_type
    )
    return uri
