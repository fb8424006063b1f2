"""Thin resolvers: arguments in, calls on services and loaders, domain objects out."""
