"""Fixtures of the scale-out tests (real PostgreSQL): `pg` is in tests/delivery/conftest.py."""
