# Temporary: server/app.py still imports list_replays from here; this goes away with the feed work (issue 8).
from server.replay.listing import list_replays as list_replays
