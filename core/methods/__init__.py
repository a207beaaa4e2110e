"""Word-level explanation methods, one module per family, and the registry that owns them."""

from core.methods.base import Attribution, ExplainError, Family, Method, Option, Speed
from core.methods.registry import METHODS, get_method, method_names

__all__ = ["METHODS", "Attribution", "ExplainError", "Family", "Method", "Option", "Speed", "get_method",
           "method_names"]
