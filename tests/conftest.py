"""Shared fixtures live in tests/support/; each module is loaded as a pytest plugin."""

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.s3server",
    "tests.support.simulators",
]
