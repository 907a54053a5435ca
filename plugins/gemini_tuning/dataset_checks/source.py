"""Where datasets and reports live: a local path, a file:// URI or a gs:// object.

Inputs are always read as a local file: a gs:// object is downloaded once to a temporary file
through the Google provider's GCSHook (the pass then reads it at disk speed); local inputs are
read in place. A missing or unreadable input is a DatasetInputError naming it. Reports are
written the same three ways.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse


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


@contextmanager
def readable_file(uri: str, *, gcp_conn_id: str = "google_cloud_default") -> Iterator[Path]:
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
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.api_core.exceptions import Forbidden, NotFound

    bucket, name = split_gcs_uri(uri)
    with tempfile.TemporaryDirectory(prefix="dataset_") as folder:
        target = Path(folder) / Path(name).name
        try:
            GCSHook(gcp_conn_id=gcp_conn_id).download(bucket_name=bucket, object_name=name, filename=str(target))
        except NotFound as error:
            raise DatasetInputError(f"dataset not found: {uri} ({error.message})") from error
        except Forbidden as error:
            raise DatasetInputError(f"dataset not readable: {uri} ({error.message})") from error
        yield target


def write_file(uri: str, text: str, *, content_type: str, gcp_conn_id: str = "google_cloud_default") -> str:
    """Write text to a local path, file:// or gs:// URI; return where it went."""
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    bucket, name = split_gcs_uri(uri)
    GCSHook(gcp_conn_id=gcp_conn_id).upload(bucket_name=bucket, object_name=name, data=text, mime_type=content_type)
    return uri
