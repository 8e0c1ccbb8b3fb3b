"""The training tests' shared fixtures live in tests/train/fixtures.py (tests/cli uses them too)."""

from tests.train.fixtures import signal, tiny_config  # noqa: F401
