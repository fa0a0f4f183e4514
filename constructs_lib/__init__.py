"""Reusable constructs, one concern per module. Only modules that need a provider import it."""
