"""``MatchIndex``: the matches of a ruleset with given labels, from set intersections."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.rooms import MatchId
from server.rooms.index import MatchIndex

labels = st.dictionaries(st.sampled_from(["mode", "region", "map"]), st.sampled_from(["a", "b"]), max_size=3)
matches = st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.tuples(st.sampled_from(["drift", "arena"]), labels),
                          max_size=30)


@settings(max_examples=200, deadline=None)
@given(matches=matches, removed=st.sets(st.text("abcdef", min_size=1, max_size=3)),
       ruleset=st.none() | st.sampled_from(["drift", "arena", "chess"]), wanted=labels)
def test_the_index_finds_exactly_what_filtering_every_match_would(matches, removed, ruleset, wanted) -> None:
    index = MatchIndex()
    for m, (r, lab) in matches.items():
        index.add(MatchId(m), r, lab)
    for m in removed & set(matches):
        index.remove(MatchId(m), *matches[m])
    live = {m: v for m, v in matches.items() if m not in removed}
    expected = {m for m, (r, lab) in live.items() if (ruleset is None or r == ruleset)
                and all(lab.get(k) == v for k, v in wanted.items())}
    found = index.find(ruleset, wanted)
    assert (set(live) if found is None else found) == expected
    assert (found is None) == (ruleset is None and not wanted)


def test_removing_the_last_match_of_a_key_leaves_no_empty_set_behind() -> None:
    index = MatchIndex()
    index.add(MatchId("m1"), "drift", {"mode": "duel"})
    index.remove(MatchId("m1"), "drift", {"mode": "duel"})
    assert index.by_ruleset == {} and index.by_label == {}
