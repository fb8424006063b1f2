"""Schema migrations shipped with the package: `NNNN_name.sql` for PostgreSQL, and
`cassandra/NNNN_name.cql` for the Cassandra tweet store."""

from pathlib import Path

POSTGRES = Path(__file__).resolve().parent
CASSANDRA = POSTGRES / "cassandra"
