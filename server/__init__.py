"""The game server: a thin asyncio shell (websockets) over the sans-I/O protocol."""
