"""Alembic migrations of the state store (a package so that setuptools ships them)."""
