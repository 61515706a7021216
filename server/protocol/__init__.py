"""Sans-I/O wire protocol: messages, codec, column deltas, history, sessions.

Bytes and objects in, bytes and objects out; no sockets, clocks or loops.
The server, the Python client, the replay tools and the tests share it.

Two tables carry the protocol's rules: ``codec.MESSAGES``, every message
type once (tag, class, sender, fields in wire order), which drives encoding
and decoding in both directions; and ``session.ALLOWED``, which messages each
state of a connection accepts, for live players and replay viewers alike.
"""

#: The protocol version this code speaks (PROTOCOL.md): ``hello.v`` must be it.
PROTOCOL_VERSION = 1
#: Its minor version (PROTOCOL.md, *Versions*): announced in the upgrade's response header
#: ``PROTOCOL_HEADER`` and in ``welcome.minor``; clients send what a minor added only to servers
#: that announce it. A server that announces none is 1.0.
PROTOCOL_MINOR = 2
#: The upgrade response's header that announces ``version.minor`` (``Tickserver-Protocol: 1.1``).
PROTOCOL_HEADER = "Tickserver-Protocol"
