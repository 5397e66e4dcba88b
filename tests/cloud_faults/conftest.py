"""The cloud fault matrix reuses the plugin tests' entries and the generic fault matrix's checks:
make their folders importable when this one is run on its own (a full run imports them anyway,
under the same names)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
for folder in ("plugins", "hostile"):
    if str(TESTS / folder) not in sys.path:
        sys.path.append(str(TESTS / folder))
