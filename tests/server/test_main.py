"""``python -m server``'s own steps, apart from its command line (``test_cli``)."""

from __future__ import annotations

import gc

from server.__main__ import freeze_startup_heap


def test_the_startup_heap_is_frozen_so_a_full_collection_visits_only_what_came_since() -> None:
    before = [[1], [2]]
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 1000  # the modules, the tests' objects and more
        tracked = gc.get_objects()
        assert all(o is not before for o in tracked)  # frozen: in no generation a collection visits
        after = [[3]]
        assert any(o is after for o in gc.get_objects())
    finally:
        gc.unfreeze()
