"""Embedded PostgreSQL and Valkey for development and tests; both together in stack.py
(not imported here, so `python -m deploy.local.stack` runs cleanly)."""

from deploy.local.postgres import EmbeddedPostgres
from deploy.local.valkey import EmbeddedValkey

__all__ = ["EmbeddedPostgres", "EmbeddedValkey"]
