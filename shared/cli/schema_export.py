"""Write the published request schema: ``python -m shared.cli.schema_export`` (docs/schemas/)."""

from __future__ import annotations

import json
from pathlib import Path

from shared.intake.schema import json_schema


def main() -> None:
    out = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "request.v1.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
