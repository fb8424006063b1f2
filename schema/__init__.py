"""The GraphQL schema, with the limits and caches every request goes through."""

from __future__ import annotations

from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from runtime.settings import Settings
from schema.compiled import CompiledExecutionContext
from schema.errors import ChirpSchema
from schema.root import Mutation, Query
from schema.subscription import Subscription


class RememberValidated(SchemaExtension):
    """Execution starts only for a parsed, validated document of an allowed operation:
    remember the query text as valid (ChirpSchema.validated)."""

    def on_execute(self):  # type: ignore[override]
        context = self.execution_context
        if context.query and context.graphql_document is not None:
            context.schema.remember_validated(context.query, context.graphql_document)
        yield


def build_schema(settings: Settings) -> ChirpSchema:
    # The validation cache is keyed by the rule classes, and each limiter instance builds
    # new ones: build the rules once so every request hits the cache (docs/api.md).
    limit_rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_query_aliases).validation_rules,
    ]
    tokens = settings.max_query_tokens
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
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            RememberValidated,
        ],
    )
