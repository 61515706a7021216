"""Sans-I/O wire protocol: messages, codec, column deltas, history, sessions.

Bytes and objects in, bytes and objects out; no sockets, clocks or loops.
The server, the Python client, the replay tools and the tests share it.

Two tables carry the protocol's rules: ``codec.MESSAGES``, every message
type once (tag, class, sender, fields in wire order), which drives encoding
and decoding in both directions; and ``session.ALLOWED``, which messages each
state of a connection accepts, for live players and replay viewers alike.
"""

#: The protocol version this code speaks (PROTOCOL.md).
PROTOCOL_VERSION = 1
