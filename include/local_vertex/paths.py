"""Confinement of every client-named path to the configured data roots.

A path is checked after resolving `..` and symlinks, so neither `file:///root/../etc/passwd`
nor a symlink inside a root that points outside it gets through.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse


class PathNotAllowed(ValueError):
    pass


def confined(path: str | os.PathLike, roots: tuple[Path, ...], *, what: str) -> Path:
    """The resolved `path` if it lies inside one of `roots`; else PathNotAllowed."""
    raw = os.fspath(path)
    if "\x00" in raw:
        raise PathNotAllowed(f"{what}: path contains a NUL byte")
    if not os.path.isabs(raw):
        raise PathNotAllowed(f"{what}: {raw!r} is not an absolute path")
    resolved = Path(raw).resolve()
    for root in roots:
        real_root = root.resolve()
        if resolved == real_root or resolved.is_relative_to(real_root):
            return resolved
    allowed = ", ".join(str(r) for r in roots) or "none configured (start the service with --data-root DIR)"
    raise PathNotAllowed(f"{what}: {raw} is outside the allowed data roots ({allowed})")


def file_uri_path(uri: str, roots: tuple[Path, ...], *, what: str) -> Path:
    """The confined local path named by a file:// URI (file:///abs/path or file://localhost/abs/path)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise PathNotAllowed(f"{what}: {uri!r} is not a local file:// URI")
    return confined(unquote(parsed.path), roots, what=what)
