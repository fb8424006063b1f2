"""The Lua scripts in storage/lua/, read once at import and called by SHA.

A script's first line may include others (`--! include lib plain`): their text goes before
its own, in that order. `${NAME}` placeholders are filled from storage.keys (key and channel
templates) and from the layout (`LISTS`, `PUBLISH`: one server, one slot of a cluster or
one node of a cluster), so no key name is written in Lua (`$$` is a literal `$`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from string import Template

from storage import keys

LUA_DIR = Path(__file__).with_name("lua")
INCLUDE = "--! include "

# Placeholders that differ between one server and a cluster (docs/production.md). LISTS
# names the fragments a script changing lists includes: how it gets them and tells their
# live owners; READS, how a read gets its lists.
SINGLE = {"LISTS": "live_hubs apply_keys", "READS": "reads_keys", "PUBLISH": "PUBLISH"}
CLUSTER = {"LISTS": "live_shards apply_keys", "READS": "reads_keys", "PUBLISH": "SPUBLISH"}
# One call per node: lists of many slots, undeclared (storage/lua/apply_node.lua); the
# header is a script's first line.
NODE = {"LISTS": "apply_node", "READS": "reads_node", "PUBLISH": "SPUBLISH",
        "HEADER": "#!lua flags=allow-cross-slot-keys\n"}


class Script:
    """A Lua script called by SHA. redis-py's own Script objects send SCRIPT EXISTS before
    every pipeline that uses them (one more round trip per read): these are loaded once
    and reloaded only when Redis answers NOSCRIPT (after a restart or failover)."""

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


def _fill(text: str, layout: dict[str, str]) -> str:
    return Template(text).substitute(keys.LUA_TEMPLATES | layout)


def source(name: str, layout: dict[str, str] = SINGLE, lua_dir: Path = LUA_DIR) -> str:
    """The full text of `name`.lua: the layout's header, its includes, then its own text,
    placeholders filled."""
    return layout.get("HEADER", "") + _body(name, layout, lua_dir)


def _body(name: str, layout: dict[str, str], lua_dir: Path) -> str:
    text = _fill((lua_dir / f"{name}.lua").read_text(), layout)
    first, _, rest = text.partition("\n")
    if not first.startswith(INCLUDE):
        return text
    parts = [_body(n, layout, lua_dir) for n in first[len(INCLUDE):].split()]
    return "".join(parts) + rest


def load(names: list[str], layout: dict[str, str] = SINGLE,
         lua_dir: Path = LUA_DIR) -> dict[str, Script]:
    return {n: Script(n, source(n, layout, lua_dir)) for n in names}
