"""The GraphQL schema, with the limits and caches every request goes through."""

from __future__ import annotations

from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)

from runtime.settings import Settings
from schema.compiled import CompiledExecutionContext
from schema.documents import DocumentCache
from schema.errors import ChirpSchema
from schema.guard import Guard
from schema.persisted import trusted_texts
from schema.root import Mutation, Query
from schema.subscription import Subscription


def build_schema(settings: Settings) -> ChirpSchema:
    # The validation cache is keyed by the rule classes, and each limiter instance builds
    # new ones: build the rules once so every request hits the cache (docs/api.md).
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_query_aliases).validation_rules,
    ]
    tokens = settings.max_query_tokens
    documents = DocumentCache(settings.document_cache_bytes)
    trusted = trusted_texts(settings)
    max_cost, timeout_ms = settings.max_query_cost, settings.query_timeout_ms
    # Extension factories, not instances: Strawberry builds one per request.
    # Query results are completed by compiled plans (schema/compiled.py); subscriptions keep
    # the live executor's shared execution, which the compiled one extends.
    return ChirpSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        execution_context_class=CompiledExecutionContext,
        extensions=[
            lambda: AddValidationRules(limit_rules),
            lambda: MaxTokensLimiter(max_token_count=tokens),
            lambda: Guard(documents, max_cost, timeout_ms, trusted),
        ],
        documents=documents, max_cost=max_cost, timeout_ms=timeout_ms,
    )
