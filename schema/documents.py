"""Parsed documents by query text, bounded in bytes.

One entry per query text holds its document, its validation errors and its cost formulas
per operation (schema/cost.py); `runnable` is set once an operation of it passed every
check that depends on the text alone (parse, token limit, validation, trusted documents),
so the HTTP shortcut (app.py) may run repeats directly. A parsed document takes ~220
bytes per character of query text (measured on the homeTimeline query and a 30-alias
query: 222 and 162); an entry is charged `BYTES_PER_CHAR` per character, and the least
recently used entries go when the total is over the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from graphql import DocumentNode, GraphQLError

BYTES_PER_CHAR = 256
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
