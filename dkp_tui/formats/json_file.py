"""Reading one JSON document of a format (a manifest, run.json): every reader words a bad file the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dkp_tui.errors import DkpError


def read_json(path: Path, corrupt: str = "corrupt") -> Any:
    """The document at ``path``; unreadable or not JSON is a one-line DkpError (``corrupt`` names the second)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DkpError(f"{path}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{path}: {corrupt} ({err})") from None
