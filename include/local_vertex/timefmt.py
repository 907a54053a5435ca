"""Timestamps as Google's JSON writes them: RFC 3339, UTC, microseconds, trailing Z."""

from __future__ import annotations

from datetime import datetime, timezone


def now_rfc3339() -> str:
    return to_rfc3339(datetime.now(timezone.utc))


def to_rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> datetime:
    """Accepts what clients send in filters: with or without fraction, Z or an offset."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
