"""Python clients of the game server: the client library and the command-line tools on it."""
