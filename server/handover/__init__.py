"""Moving a live match to another node: the state handed over, its restore, and the drain that moves them.

Modules, from the bottom up:

- ``format``: sans I/O. The messages two nodes exchange through the match
  directory's mailboxes (``Offer``, ``Accepted``, ``Refused``), the match's
  state at a tick boundary (``MatchState``: its world as a replay keyframe,
  its players with their tokens) and the versioned, checksummed byte format
  of all three; ``BadHandover`` for anything that does not decode or fit.
- ``transfer``: a ``Match`` captured into a ``MatchState`` (at a tick
  boundary, frozen) and a new ``Match`` restored from one, bit for bit
  (``state_hash`` checked).
- ``drain``: the asyncio shell: ``Drainer`` moves this node's matches
  (SIGTERM, ``POST /api/admin/drain``), answers other nodes' offers from its
  mailbox, and tells the moved clients where to go (``moved``, close 1012).

Glossary:

- **hand-over**: one match moved from a *sender* node to a *receiver*
  node, identified by a random id; it succeeds (the receiver hosts the
  match, the directory lists it there, the sender's clients are told to
  move) or fails (the sender unfreezes its copy and keeps it).
- **freeze**: the sender stops ticking the match at a tick boundary; the
  state handed over is the one after its last tick (the *hand-over tick*).
- **drain**: a node stops accepting matches and moves (or lets finish) the
  ones it has.
"""
