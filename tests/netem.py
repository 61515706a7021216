"""The tests' network: ``tools.netem.DelayProxy`` (delay, jitter, cut), shared with ``tools.netbench``."""

from tools.netem import DelayProxy

__all__ = ["DelayProxy"]
