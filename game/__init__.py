"""Pure, deterministic game layer: worlds as numpy columns, rulesets, no I/O.

Nothing in this package touches sockets, asyncio, the wall clock or global
random state; the same seed and inputs give the same bits on any machine.
"""
