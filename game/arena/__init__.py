"""``arena``: the real game (players, bullets, pellets, drones)."""
