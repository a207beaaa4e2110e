"""A virtual environment of its own for a library raced against Rashomon that pins other versions (ferret, inseq)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def side_python(venv: Path, packages: list[str]) -> Path:
    """The environment's python, made once: torch (the CPU wheel, pinned) first, then the rest."""
    python = venv / "bin" / "python"
    ready = venv / ".ready"
    if not ready.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", packages[0]], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages[1:]], check=True)
        ready.touch()
    return python
