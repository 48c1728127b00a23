"""Fixtures: the built-in vendor simulators on loopback."""
