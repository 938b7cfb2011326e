"""Target ``sandbox``: the local stand-in, faulted through its fault API (loopback only)."""

__all__: list[str] = []
