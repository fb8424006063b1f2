"""The GraphQL schema, with the limits and caches every request goes through."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)

from runtime.settings import Settings
from schema.errors import ChirpSchema
from schema.root import Mutation, Query


def build_schema(settings: Settings) -> strawberry.Schema:
    # Extension classes/factories, not instances: Strawberry builds one per request.
    depth, tokens, aliases = (
        settings.max_query_depth, settings.max_query_tokens, settings.max_query_aliases
    )
    return ChirpSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            lambda: QueryDepthLimiter(max_depth=depth),
            lambda: MaxTokensLimiter(max_token_count=tokens),
            lambda: MaxAliasesLimiter(max_alias_count=aliases),
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
        ],
    )
