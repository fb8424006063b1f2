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
from schema.live import Subscription
from schema.persisted import trusted_texts
from schema.root import Mutation, Query


def build_schema(settings: Settings) -> ChirpSchema:
    # The depth and alias limiters build a new validation-rule class per instance, and the
    # validation cache is keyed by the rule classes: one limiter per request (the factory
    # pattern) means a cache miss on every request (measured: validation was ~35 % of a
    # homeTimeline request). Build the rules once and add the same classes each time.
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
