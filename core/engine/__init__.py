"""The model engine: the only code that loads a model or runs a pass (runner, loading, builds)."""
