"""The root of the game layer's errors."""


class GameError(Exception):
    """A misuse of the game layer (bad configuration, unknown ruleset...)."""
