"""Dataset URIs (gs:// through the storage emulator, file:// inside the data roots).

The API checks a URI when the job is created (so a typo is a 400, not a FAILED job an hour
later) and pins what it saw: the object's generation and MD5 (gs://) or the file's SHA-256
(file://). The worker copies the data into the job's folder and trains on that copy only if it
is exactly what was pinned; data replaced in between fails the job instead of training on
something nobody checked.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from include.local_vertex.config import ServiceConfig
from include.local_vertex.paths import PathNotAllowed, file_uri_path
from include.local_vertex.storage import GcsObjects, StorageError

_BLOCK = 1 << 20


class DatasetUriError(ValueError):
    pass


class DatasetChanged(DatasetUriError):
    """The data under a URI is no longer what the job was created with."""


def check_dataset_uri(uri: str, config: ServiceConfig, *, field: str) -> dict:
    """The pin of `uri`'s current content; DatasetUriError saying what is wrong with `uri`
    (named by its request `field`)."""
    if not isinstance(uri, str) or not uri:
        raise DatasetUriError(f"{field} is required and must be a gs:// or file:// URI")
    if uri.startswith("gs://"):
        try:
            stat = GcsObjects(config.storage_url).stat(uri)
        except StorageError as exc:
            raise DatasetUriError(f"{field}: {exc}") from exc
        return {"generation": str(stat.get("generation", "")), "md5Hash": stat.get("md5Hash", "")}
    if uri.startswith("file://"):
        path = _file_path(uri, config, field)
        if not path.is_file():
            raise DatasetUriError(f"{field}: {uri} is not a readable file")
        digest = hashlib.sha256()
        with open(path, "rb") as data:
            for block in iter(lambda: data.read(_BLOCK), b""):
                digest.update(block)
        return {"sha256": digest.hexdigest()}
    raise DatasetUriError(f"{field}: {uri!r} must start with gs:// or file://")


def local_dataset_file(uri: str, config: ServiceConfig, dest: Path, *, field: str, pin: dict | None) -> Path:
    """`dest`, holding the dataset's content as pinned at create (DatasetChanged if it is not).

    A job created before pins existed has none and takes the data as it is now.
    """
    if uri.startswith("gs://"):
        try:
            GcsObjects(config.storage_url).download(uri, dest)
        except StorageError as exc:
            raise DatasetUriError(f"{field}: {exc}") from exc
        md5 = hashlib.md5()
        with open(dest, "rb") as data:
            for block in iter(lambda: data.read(_BLOCK), b""):
                md5.update(block)
        seen = base64.b64encode(md5.digest()).decode()
        if pin and pin.get("md5Hash") and seen != pin["md5Hash"]:
            dest.unlink()
            raise DatasetChanged(f"{field}: {uri} changed after the job was created (it was generation "
                                 f"{pin.get('generation')}, MD5 {pin['md5Hash']}; now MD5 {seen}): the job trains "
                                 "only on the data checked at create; create a new job for the new data")
        return dest
    path = _file_path(uri, config, field)
    if not path.is_file():
        raise DatasetUriError(f"{field}: {uri} is not a readable file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    digest = hashlib.sha256()
    with open(path, "rb") as source, open(partial, "wb") as copy:
        for block in iter(lambda: source.read(_BLOCK), b""):
            digest.update(block)
            copy.write(block)
    if pin and pin.get("sha256") and digest.hexdigest() != pin["sha256"]:
        partial.unlink(missing_ok=True)
        raise DatasetChanged(f"{field}: {uri} changed after the job was created (SHA-256 {pin['sha256']}, now "
                             f"{digest.hexdigest()}): the job trains only on the data checked at create; "
                             "create a new job for the new data")
    os.replace(partial, dest)
    return dest


def _file_path(uri: str, config: ServiceConfig, field: str) -> Path:
    try:
        return file_uri_path(uri, config.data_roots, what=field)
    except PathNotAllowed as exc:
        raise DatasetUriError(str(exc)) from exc
