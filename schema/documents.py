"""Parsed documents by query text, bounded in bytes (docs/security.md, "Parsed documents").

An entry holds a query text's document, validation errors and cost formulas; `runnable`
marks one that passed every check depending on the text alone, so app.py's shortcut may
run repeats directly. Least recently used entries go when the total is over the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import DocumentNode, GraphQLError

BYTES_PER_CHAR = 256  # charged per query character (docs/security.md)
ENTRY_OVERHEAD = 1024


class Entry:
    __slots__ = ("document", "errors", "formulas", "runnable", "size")

    def __init__(self, document: DocumentNode, size: int) -> None:
        self.document = document
        self.errors: list[GraphQLError] | None = None
        self.formulas: dict[str | None, Any] = {}
        self.runnable = False
        self.size = size


class DocumentCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> Entry | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def put(self, query: str, document: DocumentNode) -> Entry:
        entry = Entry(document, ENTRY_OVERHEAD + BYTES_PER_CHAR * len(query))
        old = self._entries.pop(query, None)
        if old is not None:
            self.bytes -= old.size
        self._entries[query] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size
        return entry

    def forget(self, query: str) -> None:
        old = self._entries.pop(query, None)
        if old is not None:
            self.bytes -= old.size

    def runnable(self, query: str) -> Entry | None:
        """The entry of a text known to pass every text-only check; None otherwise."""
        entry = self._entries.get(query)
        return entry if entry is not None and entry.runnable else None
