"""Chaos Toolkit controls: background load, and the lab's verdict and summary."""

__all__: list[str] = []
