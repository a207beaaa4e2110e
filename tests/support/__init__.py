"""Test-only helpers and tiny-model builders: never shipped in the `core` package."""
