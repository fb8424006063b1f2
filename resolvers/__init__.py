"""Thin resolvers: GraphQL arguments in, calls on services and loaders, domain objects out.
The schema package turns what they return into GraphQL types."""
