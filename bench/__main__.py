"""`python -m bench` (or `nox -s bench`): run every benchmark and print the tables."""

from . import memory_handshake

memory_handshake.main()
