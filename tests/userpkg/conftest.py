"""Puts ``tests/fixtures/userpkg`` on ``sys.path``: ``tagarena`` imports as a user's own package would."""

from __future__ import annotations

import sys
from pathlib import Path

USERPKG = Path(__file__).resolve().parent.parent / "fixtures" / "userpkg"

if str(USERPKG) not in sys.path:
    sys.path.insert(0, str(USERPKG))
