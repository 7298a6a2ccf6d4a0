"""Reading VNB_TEAMS_FILE once per file version, and the startup check (``check_settings``)."""

from __future__ import annotations

import threading
from pathlib import Path

from shared.config.settings import Settings, SettingsError
from shared.teams.model import Teams, TeamsInvalid, load

APP_ROOT = Path(__file__).resolve().parents[2]
_cache: dict[tuple[str, int, int], Teams] = {}
_lock = threading.Lock()


def teams_path(settings: Settings) -> Path | None:
    if not settings.teams_file:
        return None
    path = Path(settings.teams_file).expanduser()
    return path if path.is_absolute() else APP_ROOT / path


def teams_for(settings: Settings) -> Teams:
    """The teams of ``settings`` (no teams when VNB_TEAMS_FILE is empty), parsed once per
    file version (size + mtime). Raises TeamsInvalid when the file is missing or invalid."""
    path = teams_path(settings)
    if path is None:
        return Teams()
    try:
        stat = path.stat()
    except OSError as e:
        raise TeamsInvalid(f"VNB_TEAMS_FILE={settings.teams_file}: {e.strerror or e}") from None
    version = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        found = _cache.get(version)
    if found is None:
        found = load(path)
        with _lock:
            _cache.clear()
            _cache[version] = found
    return found


def check_teams(settings: Settings) -> Teams:
    """At startup: the teams file must be valid, or no function starts (like a bad setting)."""
    try:
        return teams_for(settings)
    except TeamsInvalid as e:
        raise SettingsError([("VNB_TEAMS_FILE", str(e))]) from None
