"""A local stand-in for OmniSQL staging: real processes in three AZs, Redis, PostgreSQL.

See docs/sandbox.md for the contract other tools code against.
"""

__all__: list[str] = []
