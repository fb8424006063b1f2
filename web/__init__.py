"""The live page's files, shipped with the package (`make web` adds graphql-ws from npm)."""

from pathlib import Path

DIR = Path(__file__).resolve().parent
