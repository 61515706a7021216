"""Recorded matches: everything about replays, one concept per module. REPLAY.md is the format's spec.

Modules, from the bottom up:

- ``inputs``: the input track (the players' input table a replay carries
  from tick to tick) and its per-tick codec, a row set shared with the
  wire's deltas (``server/protocol/rowset.py``). Pure, on the tick path.
- ``format``: the file format, sans I/O: framing, records, ``ReplayEncoder``,
  ``parse_replay`` / ``Replay``, and the error tree (``ReplayUsageError``:
  our misuse; ``BadReplay``: a file that cannot be replayed).
- ``resim``: re-simulation (``Replayer``, ``check_ruleset``) and the
  ``verify`` engine, in worker processes, returning values.
- ``recorder``: the ``Recorder``, a match observer, and its writer thread.
- ``audit``: ``ViewAudit``, the recording re-simulated to rebuild every
  update its players were sent, byte for byte (what a player of a match
  with filtered views could know, proven from the recording alone).
- ``listing``: replays on disk: headers, the cached listing, and the
  ``ReplayLibrary`` that resolves a replay's name inside a directory safely
  and loads it.
- ``playback``: the sans-I/O playback core (a replay played to spectators
  through the live protocol, with pause, speed and seek).

Glossary (one name, one meaning, in this package):

- **replay**: a recorded match; a ``.replay`` file, or its parsed ``Replay``.
- **frame**: one length+CRC-framed record of a replay file (``frame()``,
  ``FrameDecoder``), never a WebSocket frame or a tick.
- **record**: the msgpack value in a frame: header, tick, checkpoint,
  keyframe or end.
- **keyframe**: a record holding the whole world after a tick (to seek and to
  split ``verify``). Not the wire's keyframe update, a delta from nothing.
- **checkpoint**: a record of a tick's ``state_hash`` and replicated checksum.
- **input track**: the input table (players x input fields) in force.
- **segment**: the ticks ``(start, end]`` between two keyframes, re-simulated
  by one ``verify`` worker.
- **playback**: one replay being played to its viewers; a **viewer** is one
  spectator connection of it.
"""
