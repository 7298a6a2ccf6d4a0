"""A local Azure Functions host around the real Python worker runtime (see docs/local-host.md).

Public API: :class:`LocalHost` (alias ``LocalRunner``), :class:`FunctionStats`,
:class:`HostError`, :func:`exported_settings`, :func:`load_local_settings`.
CLI: ``python -m devtools.host`` (like ``func start``).
"""

from devtools.host.contract import FunctionStats, Invocation, Outcome
from devtools.host.host import LocalHost, LocalRunner
from devtools.host.settings import HostError, exported_settings, load_local_settings

__all__ = ["FunctionStats", "HostError", "Invocation", "LocalHost", "LocalRunner", "Outcome",
           "exported_settings", "load_local_settings"]
