"""Indexes of matches by ruleset and by (label, value): listing without a scan.

A query intersects the sets of the ruleset and of each wanted label,
walking the smallest and checking membership in the others, so its cost is
the size of the smallest set, not the number of matches. (Redis does the
same with ``SINTER`` over one set per key.)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

from server.rooms.directory import MatchId


class MatchIndex:
    """Match ids by ruleset and by (label key, label value)."""

    def __init__(self) -> None:
        self.by_ruleset: dict[str, set[MatchId]] = {}
        self.by_label: dict[tuple[str, str], set[MatchId]] = {}

    def add(self, match_id: MatchId, ruleset: str, labels: Mapping[str, str]) -> None:
        self.by_ruleset.setdefault(ruleset, set()).add(match_id)
        for kv in labels.items():
            self.by_label.setdefault(kv, set()).add(match_id)

    def remove(self, match_id: MatchId, ruleset: str, labels: Mapping[str, str]) -> None:
        _discard(self.by_ruleset, ruleset, match_id)
        for kv in labels.items():
            _discard(self.by_label, kv, match_id)

    def find(self, ruleset: str | None, labels: Mapping[str, str]) -> set[MatchId] | None:
        """The ids of ``ruleset`` with every label in ``labels``; None when nothing filters (all match)."""
        sets = [] if ruleset is None else [self.by_ruleset.get(ruleset, set())]
        sets += [self.by_label.get(kv, set()) for kv in labels.items()]
        if not sets:
            return None
        sets.sort(key=len)
        smallest, rest = sets[0], sets[1:]
        return {m for m in smallest if all(m in s for s in rest)}


K = TypeVar("K", bound=Hashable)


def _discard(index: dict[K, set[MatchId]], key: K, match_id: MatchId) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(match_id)
        if not ids:
            del index[key]  # no empty sets left behind by matches come and gone
