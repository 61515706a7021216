"""Sans-I/O wire protocol: messages, codec, column deltas, history, sessions.

Bytes and objects in, bytes and objects out; no sockets, clocks or loops.
The server, the Python client, the replay tools and the tests share it.
"""

#: The protocol version this code speaks (PROTOCOL.md).
PROTOCOL_VERSION = 1
