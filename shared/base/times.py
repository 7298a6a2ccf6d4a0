"""Times as the platforms write them: RFC 3339 text and Table storage datetimes, always aware (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z``, as Kubernetes and CloudEvents consumers expect."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """A metav1.Time (RFC 3339) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def aware(value: object) -> datetime:
    """A Table storage datetime (or its ISO text) as an aware datetime; naive means UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
