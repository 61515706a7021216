"""The game server: a thin asyncio shell over the sans-I/O protocol, the game and the replay package.

Packages and modules, bottom up: ``protocol/`` (messages, codec, column
deltas, snapshot history, the session state machine; sans-I/O), ``replay/``
(recorded matches: format, input track, re-simulation, recorder, listing,
playback), ``rooms/`` (room types, the match directory, matchmaking; sans-I/O),
then the shell: ``frames.py`` and ``inputs.py`` (sans-I/O), ``ticker.py``
(deadlines on an injected clock) and ``loop.py`` (its asyncio driver),
``feed.py``, ``match.py``, ``host.py``, ``app.py``, ``__main__.py``.

Glossary: one name for each thing, one meaning for each name.

- **connection**: one TCP (or TLS) connection to the port, with its HTTP
  request and, on a game path, its WebSocket: ``server.app.Connection``,
  the only connection class. To a feed it is a ``Client`` (``send``,
  ``close``), the interface ``server.feed.Client`` names.
- **session**: a connection's protocol state after the WebSocket opens:
  which messages it may send next, its acknowledged tick, its rate limit
  (``server.protocol.session.ServerSession``; one table, ``ALLOWED``, for
  players and replay viewers).
- **feed**: what a connection joins and is sent updates from, ticked at its
  own rate (``server.feed.Feed``): a live ``Match`` or a replay's
  ``Playback``.
- **member**: a feed's handle for one connected client: a ``Member`` of a
  match (a player or a spectator, kept for a while after a drop so the
  player can resume with its **token**), a ``Viewer`` of a playback.
- **match**: one world, its ruleset and its members (``server.match.Match``);
  **room type**: what a match is created from on demand (ruleset, options,
  labels); **seat**: a place in a match reserved by matchmaking, presented
  in ``hello`` (``server.rooms``).
- **player**: a member with an entity in the world; its id is a
  ``PlayerId``. A **spectator** has none.
- **frame**: in ``app.py`` and ``frames.py``, one WebSocket frame (RFC 6455);
  in ``replay/format.py``, one length- and CRC-framed record of a replay
  file. Nothing else is called a frame (the arena's per-tick partition of
  slots is a ``Census``).
- **update**: the message a feed sends every tick: a delta against the tick
  the client acknowledged, or a keyframe (PROTOCOL.md).
"""
