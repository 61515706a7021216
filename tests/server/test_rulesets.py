"""Rulesets by reference: built-in names, entry points, ``package.module:Attr``, and every way they fail."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from game.arena.ruleset import ArenaRuleset
from game.drift import DriftRuleset
from game.errors import GameError
from server.rulesets import ENTRY_POINT_GROUP, entry_point_names, load_ruleset, ruleset_for_replay, why_not_a_ruleset
from tests.fixtures.distributions import write_distribution

#: A minimal ruleset in a user's module: drift's rules under another name.
GAME = """
    import attrs
    from game.drift import SPEC, DriftRuleset

    class Game(DriftRuleset):
        spec = attrs.evolve(SPEC, name="{name}")

    instance = Game()

    class Holder:
        Inner = Game
"""

Write = Callable[[str, str], None]


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """Write modules (``"pkg/mod.py"``, source) into a directory on ``sys.path``; all are forgotten after."""
    root = tmp_path / "user"
    root.mkdir()

    def write(relpath: str, source: str) -> None:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")

    monkeypatch.syspath_prepend(str(root))
    yield write
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


def error_of(ref: str) -> str:
    with pytest.raises(GameError) as info:
        load_ruleset(ref)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- what loads ------------------------------------------------------------------------


def test_built_in_names_load_the_built_in_rulesets() -> None:
    assert isinstance(load_ruleset("arena"), ArenaRuleset)
    assert isinstance(load_ruleset("drift"), DriftRuleset)


def test_a_reference_to_a_class_instantiates_it(user_modules: Write) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    ruleset = load_ruleset("mygame:Game")
    assert type(ruleset).__name__ == "Game"
    assert ruleset.spec.name == "mine"


def test_a_reference_to_an_instance_returns_that_instance(user_modules: Write) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    assert load_ruleset("mygame:instance") is sys.modules["mygame"].instance


def test_a_reference_may_name_a_submodule_and_a_dotted_attribute(user_modules: Write) -> None:
    user_modules("studio/__init__.py", "")
    user_modules("studio/games/__init__.py", "")
    user_modules("studio/games/tag.py", GAME.format(name="tag"))
    assert load_ruleset("studio.games.tag:Holder.Inner").spec.name == "tag"


def test_built_in_classes_load_by_reference_too() -> None:
    assert isinstance(load_ruleset("game.drift:DriftRuleset"), DriftRuleset)


# -- entry points --------------------------------------------------------------------------


def test_a_name_registered_by_an_installed_distribution_loads_its_ruleset(
        user_modules: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    write_distribution(tmp_path / "site", "my-game", {"mine": "mygame:Game"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "mine" in entry_point_names()
    assert load_ruleset("mine").spec.name == "mine"


def test_built_in_names_win_over_entry_points_of_the_same_name(
        user_modules: Write, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_modules("mygame.py", GAME.format(name="drift"))
    write_distribution(tmp_path / "site", "my-game", {"drift": "mygame:Game"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert type(load_ruleset("drift")) is DriftRuleset


def test_an_entry_point_that_fails_says_which_entry_point_and_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "broken-game", {"broken": "nowhere_to_be_found:Game"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert error_of("broken") == (
        f"entry point 'broken' ({ENTRY_POINT_GROUP}): ruleset 'nowhere_to_be_found:Game': "
        "no module named 'nowhere_to_be_found'"
    )


def test_an_entry_point_naming_only_a_module_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "vague-game", {"vague": "game.drift"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert error_of("vague") == (
        f"entry point 'vague' ({ENTRY_POINT_GROUP}): 'game.drift' names a module; expected package.module:Attr"
    )


def test_a_name_two_distributions_claim_differently_is_ambiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path / "a", "game-a", {"twin": "a_game:Game"})
    write_distribution(tmp_path / "b", "game-b", {"twin": "b_game:Game"})
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    assert error_of("twin") == (
        f"ruleset 'twin': several entry points in '{ENTRY_POINT_GROUP}' claim it: a_game:Game, b_game:Game"
    )


# -- what fails, and how it says so ------------------------------------------------------


def test_an_unknown_name_lists_the_built_in_names_and_the_entry_points_found(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(tmp_path, "my-game", {"mine": "mygame:Game"})
    monkeypatch.syspath_prepend(str(tmp_path))
    message = error_of("chess")
    assert message.startswith("unknown ruleset 'chess'; built in: arena, drift; entry points (tickserver.rulesets): ")
    assert "mine" in message
    assert message.endswith("; or give package.module:Attr")


@pytest.mark.parametrize("ref", ["mygame:", ":Game", "my game:Game", "mygame:Game:Other", "mygame:1Game", "a..b:C"])
def test_a_malformed_reference_is_rejected_before_importing_anything(ref: str) -> None:
    assert error_of(ref) == f"ruleset {ref!r}: not a reference of the form package.module:Attr"


def test_a_missing_module_is_named(user_modules: Write) -> None:
    assert error_of("no_such_game_module:Game") == "ruleset 'no_such_game_module:Game': no module named 'no_such_game_module'"


def test_a_missing_submodule_of_an_existing_package_is_named(user_modules: Write) -> None:
    user_modules("studio/__init__.py", "")
    assert error_of("studio.nope:Game") == "ruleset 'studio.nope:Game': no module named 'studio.nope'"


def test_a_module_whose_own_import_fails_is_an_import_error_not_a_missing_module(user_modules: Write) -> None:
    user_modules("needy.py", "import some_missing_dependency\n")
    assert error_of("needy:Game") == (
        "ruleset 'needy:Game': importing 'needy' raised ModuleNotFoundError: No module named 'some_missing_dependency'"
    )


def test_a_module_that_raises_on_import_says_what_it_raised(user_modules: Write) -> None:
    user_modules("angry.py", "raise RuntimeError('no config file\\nsecond line')\n")
    assert error_of("angry:Game") == "ruleset 'angry:Game': importing 'angry' raised RuntimeError: no config file"


def test_a_missing_attribute_is_named_with_where_it_was_looked_for(user_modules: Write) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    assert error_of("mygame:Gmae") == "ruleset 'mygame:Gmae': 'mygame' has no attribute 'Gmae'"
    assert error_of("mygame:Holder.Nope") == "ruleset 'mygame:Holder.Nope': 'mygame:Holder' has no attribute 'Nope'"


def test_a_class_whose_constructor_raises_says_what_it_raised(user_modules: Write) -> None:
    user_modules("fussy.py", "class Game:\n    def __init__(self, level):\n        pass\n")
    assert error_of("fussy:Game").startswith("ruleset 'fussy:Game': Game() raised TypeError: ")


@pytest.mark.parametrize(("source", "problem"), [
    ("Game = 42\n", "an int has no attribute 'spec'"),
    ("class Game:\n    spec = {'name': 'x'}\n", "its spec is a dict, not a game.schema.RulesetSpec"),
    ("from game.drift import SPEC\nclass Game:\n    spec = SPEC\n    def create(self): pass\n",
     "a bad.Game has no method join, leave, step, scores (a ruleset has create, join, leave, step, scores)"),
    ("from game.drift import SPEC, DriftRuleset\nclass Game(DriftRuleset):\n    step = 3\n", "a bad.Game's step is not callable"),
])
def test_an_object_that_is_not_a_ruleset_is_rejected_saying_why(user_modules: Write, source: str, problem: str) -> None:
    user_modules("bad.py", source)
    assert error_of("bad:Game") == f"ruleset 'bad:Game': not a ruleset: {problem}"


def test_the_built_in_rulesets_are_rulesets() -> None:
    assert why_not_a_ruleset(ArenaRuleset()) is None
    assert why_not_a_ruleset(DriftRuleset()) is None


# -- replays ------------------------------------------------------------------------------


def test_a_replay_of_a_built_in_ruleset_resolves_by_its_name() -> None:
    assert isinstance(ruleset_for_replay("arena"), ArenaRuleset)


def test_a_replay_resolves_through_a_reference_that_is_the_ruleset_it_names(user_modules: Write) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    assert ruleset_for_replay("mine", "mygame:Game").spec.name == "mine"


def test_a_replay_refuses_a_reference_to_another_ruleset(user_modules: Write) -> None:
    user_modules("mygame.py", GAME.format(name="mine"))
    with pytest.raises(GameError, match="^the replay is of ruleset 'drift', but 'mygame:Game' is ruleset 'mine'$"):
        ruleset_for_replay("drift", "mygame:Game")


def test_a_replay_of_an_unknown_ruleset_says_how_it_could_be_found() -> None:
    with pytest.raises(GameError, match="^unknown ruleset 'chess';.*or give package.module:Attr$"):
        ruleset_for_replay("chess")
