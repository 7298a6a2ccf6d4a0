"""``python -m devtools.runner``: the old name of the local host CLI (``python -m devtools.host``).

The local host now runs the app on the real Python worker runtime; see devtools/host/ and
docs/local-host.md.
"""

from __future__ import annotations

import sys

from devtools.host import LocalHost, LocalRunner, exported_settings
from devtools.host.__main__ import main

__all__ = ["LocalHost", "LocalRunner", "exported_settings", "main"]

if __name__ == "__main__":
    sys.exit(main(prog="python -m devtools.runner"))
