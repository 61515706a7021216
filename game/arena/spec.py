"""The arena's constants, columns, inputs and options (``SPEC``).

All lengths are fixed-point: ``SCALE`` (8) stored units per world unit, so the
3000 x 3000 arena is 0..24000 and fits the int16 wire. Speeds are per tick
(30 ticks per second). See ``game.arena.ruleset`` for the rules themselves.
"""

from __future__ import annotations

from game.schema import (
    AXIS,
    BUTTON,
    VALUE,
    VIEW_OPTIONS,
    Axis,
    Column,
    InputField,
    Option,
    PlayerMove,
    RulesetSpec,
    Shot,
)

SCALE = 8
#: Arena side, world units, and in fixed point (positions are 0..SIZE inclusive).
ARENA = 3000
SIZE = ARENA * SCALE
#: New entities appear at least this far from the walls (fixed point).
SPAWN_MARGIN = 50 * SCALE

# Kinds, by value (``SPEC.kinds`` names them in this order).
PLAYER, DRONE, BULLET, PELLET = 0, 1, 2, 3
KINDS = ("player", "drone", "bullet", "pellet")

# Body radii (fixed point). Two bodies touch when their centres are within the sum.
PLAYER_RADIUS = 20 * SCALE
DRONE_RADIUS = 14 * SCALE
BULLET_RADIUS = 4 * SCALE
PELLET_RADIUS = 8 * SCALE

# Players.
PLAYER_HP = 100
#: 6 units per tick straight; a diagonal step is 34/8 per axis (6 / sqrt 2 = 4.24 units).
PLAYER_SPEED = 6 * SCALE
DIAGONAL = 34
#: Ticks a dead player waits before respawning (3 s).
RESPAWN_TICKS = 90
#: Ticks of spawn protection after joining or respawning (1.5 s): not hit, not hunted.
SHIELD_TICKS = 45

# Bullets.
#: 14 units per tick along the aim (fits int8 velocities: at most 112).
BULLET_SPEED = 14 * SCALE
#: Ticks a bullet flies (40 ticks * 14 units = 560 units of range), unless it hits a wall first.
BULLET_LIFE = 40
BULLET_DAMAGE = 15
#: Ticks between two shots of one player (5 shots per second).
FIRE_COOLDOWN = 6
#: Bullets appear this far from the shooter's centre, along the aim.
MUZZLE = PLAYER_RADIUS + BULLET_RADIUS

# Drones.
DRONE_HP = 30
#: 2 units per tick when wandering, 3 when hunting: players (6) can outrun them.
WANDER_SPEED = 2 * SCALE
HUNT_SPEED = 3 * SCALE
#: Drones hunt the nearest living player within this distance (450 units).
HUNT_RADIUS = 450 * SCALE
#: A drone re-aims at its prey every HUNT_PERIOD ticks, staggered by id.
HUNT_PERIOD = 6
#: A wandering drone picks a new heading every WANDER_PERIOD ticks, staggered by id.
WANDER_PERIOD = 60
#: A drone that touches a living player explodes, dealing this much damage.
DRONE_DAMAGE = 25

# Scoring.
PELLET_SCORE = 1
#: Hit points a pellet restores (up to PLAYER_HP).
PELLET_HEAL = 5
DRONE_SCORE = 5
PLAYER_SCORE = 25
#: Scores saturate here so they always fit the uint16 wire.
SCORE_MAX = 0xFFFF

#: Cell side of the per-tick grids over drones and players: the longest reach
#: queried against them (a drone touching a player), so queries visit 3 x 3 cells.
CONTACT_CELL = PLAYER_RADIUS + DRONE_RADIUS

# Lag compensation (game.arena.rewind).
#: Ticks of the past kept for lag compensation: a bullet is tested against bodies up to this many
#: ticks ago (267 ms at 30 Hz; the server records lags up to a quarter second, 8 ticks at 30 Hz).
REWIND = 8
#: The private columns of the past positions, one pair per tick modulo REWIND.
HX = tuple(f"hx{k}" for k in range(REWIND))
HY = tuple(f"hy{k}" for k in range(REWIND))

# Random streams, one per use site (game.rng).
STREAM_DRONE_SPAWN = 101
STREAM_DRONE_HEADING = 102
STREAM_PELLET_SPAWN = 103
STREAM_PLAYER_SPAWN = 104
STREAM_DRONE_SPAWN_HEADING = 105

SPEC = RulesetSpec(
    name="arena",
    version=2,
    columns=(
        Column("kind", "uint8", "uint8", doc="0 player, 1 drone, 2 bullet, 3 pellet"),
        Column("x", "int32", "int16", SCALE, "position, 1/8 world unit, 0..24000"),
        Column("y", "int32", "int16", SCALE, "position, 1/8 world unit, 0..24000 (+y is down)"),
        Column("vx", "int16", "int8", SCALE, "velocity, 1/8 unit per tick (players: the step taken this tick)"),
        Column("vy", "int16", "int8", SCALE, "velocity, 1/8 unit per tick (players: the step taken this tick)"),
        Column("aim", "uint8", "uint8", doc="players: aim, uint8 angle (256 steps, 0 = +x, 64 = +y); else 0"),
        Column("hp", "uint8", "uint8", doc="hit points (players 0..100, 0 = dead; drones 0..30); 0 for others"),
        Column("score", "int32", "uint16", doc="players' score, saturating at 65535; 0 for others"),
        Column("player", "int32", None, doc="owning player id; -1 for non-players"),
        Column("owner", "int32", None, doc="bullets: entity id of the shooter; -1 for others"),
        Column("life", "int16", None, doc="bullets: ticks left to fly"),
        Column("cooldown", "int16", None, doc="players: ticks until the next shot is allowed"),
        Column("respawn", "int16", None, doc="dead players: ticks until respawn"),
        Column("shield", "int16", None, doc="players: ticks of spawn protection left"),
        Column("target", "int32", None, doc="drones: entity id of the hunted player; -1 when wandering"),
        Column("born", "int32", None, doc="tick from which the body's past positions are its own (spawn, respawn)"),
        Column("lag", "int16", None, doc="bullets: the shooter's lag when it fired, ticks (lag compensation)"),
        *(Column(name, "int16", None, doc=f"x at the last tick = {k} mod {REWIND} (lag compensation)")
          for k, name in enumerate(HX)),
        *(Column(name, "int16", None, doc=f"y at the last tick = {k} mod {REWIND} (lag compensation)")
          for k, name in enumerate(HY)),
    ),
    inputs=(
        InputField("dx", -1, 1, "move left (-1) / right (+1)", AXIS),
        InputField("dy", -1, 1, "move up (-1) / down (+1)", AXIS),
        InputField("aim", 0, 255, "aim angle: 256 steps a turn, 0 = +x, 64 = +y (down)", VALUE),
        InputField("fire", 0, 1, "a button: 1 shoots (at most once per 6 ticks); latched by clients between sends",
                   BUTTON),
    ),
    motion=(Axis("x", "vx", 0, SIZE), Axis("y", "vy", 0, SIZE)),
    width=ARENA,
    height=ARENA,
    options=(
        Option("npcs", 40, 0, 1_000_000, "number of drones (constant: a destroyed drone is replaced)"),
        Option("pellets", 150, 0, 100_000, "number of pellets (constant: an eaten pellet reappears elsewhere)"),
        *VIEW_OPTIONS,
    ),
    kinds=KINDS,
    player=PlayerMove(PLAYER_SPEED, DIAGONAL, 0, SIZE, dead_still=True),
    rewind=REWIND,
    shot=Shot("fire", "aim", "bullet", BULLET_SPEED, MUZZLE, FIRE_COOLDOWN, BULLET_LIFE),
    # With filtered views, everyone still sees every player (the minimap, the scoreboard).
    always_relevant=("player",),
    # About players, whom every client sees anyway: the kill feed. Pickups and drone kills are placed.
    always_relevant_events=("kill", "respawn"),
)

#: Input field indices, in ``SPEC.inputs`` order.
IN_DX, IN_DY, IN_AIM, IN_FIRE = 0, 1, 2, 3
