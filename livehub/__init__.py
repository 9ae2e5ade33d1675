"""livehub: a self-hosted live-streaming interaction server."""

__version__ = "0.1.0"
