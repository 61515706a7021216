"""The catalog: the room types this server offers, by the name clients ask for.

A client asks for a match of ruleset ``tagarena``; the catalog knows which
room type that is and the ruleset's ``RulesetSpec``, so a request's options
are checked (names and ranges) before any match is made. The name is the
ruleset's ``spec.name``, which is also what the directory lists matches by
and what replays record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from attrs import frozen

from game.errors import GameError
from game.rules import Ruleset
from game.schema import RulesetSpec
from server.rooms.errors import InvalidRoomType, MatchmakeError
from server.rooms.roomtype import RoomType


@frozen
class Offer:
    """One room type and the spec of its ruleset."""

    room_type: RoomType
    spec: RulesetSpec

    def check_options(self, options: Mapping[str, int], field: str = "options") -> dict[str, int]:
        """Every option resolved (defaults overlaid with ``options``); MatchmakeError 400 naming a bad one."""
        known = {o.name: o for o in self.spec.options}
        for name, value in options.items():
            opt = known.get(name)
            if opt is None:
                raise MatchmakeError(400, f"unknown option {name!r} of ruleset {self.spec.name!r}; "
                                     f"known: {', '.join(sorted(known)) or 'none'}", f"{field}.{name}")
            if not opt.lo <= value <= opt.hi:
                raise MatchmakeError(400, f"option {name}={value} is outside [{opt.lo}, {opt.hi}]", f"{field}.{name}")
        return self.spec.resolve_options(dict(options))


class Catalog:
    """Room types by ruleset name (``spec.name``)."""

    def __init__(self, offers: Iterable[Offer]) -> None:
        self.offers: dict[str, Offer] = {}
        for offer in offers:
            name = offer.spec.name
            if name in self.offers:
                raise InvalidRoomType("ruleset", f"two room types for ruleset {name!r}")
            try:
                offer.check_options(offer.room_type.options)
            except MatchmakeError as exc:
                raise InvalidRoomType("options", exc.reason) from None
            self.offers[name] = offer

    @classmethod
    def load(cls, room_types: Iterable[RoomType], load: Callable[[str], Ruleset]) -> Catalog:
        """Load each room type's ruleset with ``load`` (``server.rulesets.load_ruleset``).

        Raises:
            InvalidRoomType: a ruleset that does not load, or bad options.
        """
        offers = []
        for rt in room_types:
            try:
                spec = load(rt.ruleset).spec
            except GameError as exc:
                raise InvalidRoomType("ruleset", str(exc)) from exc
            offers.append(Offer(rt, spec))
        return cls(offers)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.offers))

    def offer(self, name: str, field: str = "ruleset") -> Offer:
        """The offer for ruleset ``name``; MatchmakeError 400 listing the known ones otherwise."""
        offer = self.offers.get(name)
        if offer is None:
            raise MatchmakeError(400, f"unknown ruleset {name!r}; this server offers {', '.join(self.names) or 'none'}", field)
        return offer
