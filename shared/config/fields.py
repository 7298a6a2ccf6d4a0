"""What every group of settings shares: the field helper and the model configuration.

``Settings`` (``shared.config.settings``) inherits one group per capability; pydantic merges their
fields and validators, so the one-pass error report still names every bad setting at once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def setting(alias: str, default: Any = ..., doc: str = "") -> Any:
    """A field read from the app setting ``alias``; ``doc`` is its line in the README's table."""
    return Field(default, alias=alias, description=doc)


class SettingsGroup(BaseModel):
    """Base of every settings group (and so of ``Settings``)."""

    # allow_inf_nan=False: "nan", "inf" (and "1e999", which float() reads as inf) are refused for
    # every float setting, named, instead of failing later as a bare ValueError (e.g. a socket timeout)
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore", allow_inf_nan=False)
