"""Schema migrations shipped with the package, PostgreSQL and CQL (docs/modules.md)."""

from pathlib import Path

POSTGRES = Path(__file__).resolve().parent
CASSANDRA = POSTGRES / "cassandra"


def files(directory: Path, suffix: str) -> list[tuple[str, str]]:
    """(name, text) of every `NNNN_name<suffix>` file in `directory`, in order."""
    paths = sorted(directory.glob(f"[0-9][0-9][0-9][0-9]_*{suffix}"))
    return [(p.name, p.read_text()) for p in paths]


def pending(directory: Path, suffix: str, done: set[str]) -> list[tuple[str, str]]:
    """The files not yet applied, in order."""
    return [(name, text) for name, text in files(directory, suffix) if name not in done]
