"""Typed, validated per-environment configuration: files -> frozen objects. No provider imports."""
