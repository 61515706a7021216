"""``arena``: the real game (players, bullets, pellets, drones).

``ruleset`` holds ``ArenaRuleset`` and the rules in brief; ``spec`` the
constants and columns; one module per system: ``movement``, ``combat``,
``pickups``, ``drones``, ``respawn``; ``census`` what they share in a tick.
"""
