"""The one rich console for people: progress bars and tables go to stderr, so that --json output alone is stdout.

It lives at the bottom of the import graph so that eval/ and train/ can draw progress on it without importing
the CLI layer (commands/ re-exports it).
"""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)
