"""The moto server fixtures, for every state test module."""

from tests.state.support import backend, moto_server

__all__ = ["backend", "moto_server"]
