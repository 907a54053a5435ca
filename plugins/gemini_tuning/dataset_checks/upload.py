"""Content-addressed upload of a dataset file to the run's dataset bucket.

The object name carries the SHA-256 of the bytes: ``<prefix>/<sha256[:16]>/<file name>``. The
same file uploaded twice (a retried task, a re-run) lands on the same name and is stored once;
an existing object is never rewritten. gs:// goes through the Google provider's GCSHook (on Vertex
and on the local storage emulator alike, via STORAGE_EMULATOR_HOST); file:// through Airflow's
ObjectStoragePath.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from gemini_tuning.dataset_checks.source import local_path, readable_file, split_gcs_uri

log = logging.getLogger(__name__)
HASH_CHARS = 16
_READ_BYTES = 4 << 20


@dataclass(frozen=True)
class UploadedDataset:
    source: str
    uri: str  # where the dataset is now: hand this to the tuning job
    sha256: str
    size_bytes: int
    uploaded: bool  # False: the object was already there

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest()


def content_addressed_name(prefix: str, sha256: str, filename: str) -> str:
    return "/".join(part for part in (prefix.strip("/"), sha256[:HASH_CHARS], filename) if part)


class DatasetChangedError(ValueError):
    """The file to upload is not the one that was validated."""


def upload_dataset(
    source: str,
    destination: str,
    *,
    gcp_conn_id: str = "google_cloud_default",
    validated_sha256: str | None = None,
) -> UploadedDataset:
    """Store the source file under destination (gs://bucket/prefix or file:///root/prefix) once.

    :param source: the dataset: a local path, file:// or gs:// URI.
    :param destination: the dataset bucket and prefix of the run.
    :param gcp_conn_id: the Airflow connection for gs:// (source and destination).
    :param validated_sha256: the hash of the bytes validated; other bytes are refused, not uploaded.
    """
    with readable_file(source, gcp_conn_id=gcp_conn_id) as path:
        sha256 = file_sha256(path)
        if validated_sha256 and sha256 != validated_sha256:
            raise DatasetChangedError(
                f"{source} changed after validation (sha256 {sha256[:12]}..., validated {validated_sha256[:12]}...): "
                "nothing was uploaded; validate it again"
            )
        size = path.stat().st_size
        name = Path(local_path(source) or split_gcs_uri(source)[1]).name
        if destination.startswith("gs://"):
            uri, uploaded = _to_gcs(path, destination, sha256, name, gcp_conn_id)
        elif destination.startswith("file://"):
            uri, uploaded = _to_object_storage(path, destination, sha256, name)
        else:
            raise ValueError(f"unsupported dataset destination {destination!r}: use gs:// or file://")
    log.info("%s %s as %s", "Uploaded" if uploaded else "Already stored:", source, uri)
    return UploadedDataset(source=source, uri=uri, sha256=sha256, size_bytes=size, uploaded=uploaded)


def _to_gcs(path: Path, destination: str, sha256: str, name: str, gcp_conn_id: str) -> tuple[str, bool]:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    bucket, _, prefix = destination.removeprefix("gs://").partition("/")
    object_name = content_addressed_name(prefix, sha256, name)
    hook = GCSHook(gcp_conn_id=gcp_conn_id)
    uri = f"gs://{bucket}/{object_name}"
    if hook.exists(bucket_name=bucket, object_name=object_name):
        return uri, False
    hook.upload(
        bucket_name=bucket,
        object_name=object_name,
        filename=str(path),
        mime_type="application/jsonl",
        metadata={"sha256": sha256},
        num_max_attempts=3,
    )
    return uri, True


def _to_object_storage(path: Path, destination: str, sha256: str, name: str) -> tuple[str, bool]:
    from airflow.sdk import ObjectStoragePath

    root = ObjectStoragePath(destination.rstrip("/"))
    target = root / sha256[:HASH_CHARS] / name
    if target.exists():
        return str(target), False
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write aside, then rename: a reader never sees half a dataset under the final name.
    partial = target.parent / f".{name}.partial"
    with path.open("rb") as source, partial.open("wb") as out:
        shutil.copyfileobj(source, out, _READ_BYTES)
    partial.rename(target)
    return str(target), True
