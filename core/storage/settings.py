"""Settings read from environment variables, once per call so tests can change them.

| variable | meaning | default |
| --- | --- | --- |
| RASHOMON_HOME | data directory | ~/.rashomon |
| RASHOMON_DATABASE_URL | SQLAlchemy URL | sqlite file rashomon.db in RASHOMON_HOME |
| RASHOMON_MODEL | model id or local path | the offline default model in RASHOMON_HOME |
| RASHOMON_ALLOWED_INTERNAL_HOSTS | host names, IPs or CIDRs the fetcher may reach although internal | none |
| RASHOMON_JOB_WORKERS | worker processes each corpus run or evaluation of a server uses (0: a thread of the server) | 1 |
| RASHOMON_RAY_ADDRESS | a Ray cluster for corpus runs ("local": a private instance) | none |
| RASHOMON_TASK_WORKERS | worker processes a server starts for page tasks (0: in the page's own run) | 2 |
| RASHOMON_SAMPLES | after the default model's build: held-out tweets in the sample corpus run (0: no samples) | 50 |
| RASHOMON_SAMPLE_HELDOUT | held-out rows the sample evaluation covers (0: the whole split) | 0 |
| RASHOMON_AUTH_HEADER | the header an authenticating reverse proxy sets to the user's name | none (everyone is "local") |
| RASHOMON_TRUSTED_PROXIES | addresses or networks the header is believed from (the proxy's own) | none |
| RASHOMON_BACKEND | what runs plain passes: auto (the fastest backend that passed its fidelity gate, else float32) or float32, int8, onnx-float32, onnx-int8 (used only once it passed) | auto |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_ALIAS = "default"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    model: str
    allowed_internal_hosts: tuple[str, ...]
    job_workers: int = 1
    ray_address: str = ""
    task_workers: int = 2
    extraction_seconds: int = 30  # RASHOMON_EXTRACTION_SECONDS: wall clock for one page's extraction
    extraction_mb: int = 1024  # RASHOMON_EXTRACTION_MB: memory one page's extraction may add
    models: str = ""  # RASHOMON_MODELS: the models the pages offer by name (core/engine/catalogue.py)
    samples: int = 50  # RASHOMON_SAMPLES: the sample workspace's corpus run size (core/work/samples.py); 0: none
    sample_heldout: int = 0  # RASHOMON_SAMPLE_HELDOUT: rows of the held-out split the sample evaluation covers
    backend: str = "auto"  # RASHOMON_BACKEND: auto, or a backend's name (core/engine/backends.py)
    # RASHOMON_AUTH_HEADER: the header an authenticating reverse proxy puts the user's name in ("" = none), believed
    # only from RASHOMON_TRUSTED_PROXIES (IP addresses or networks of the proxy). core/storage/people.py.
    auth_header: str = ""
    trusted_proxies: tuple[str, ...] = ()

    @property
    def default_model_dir(self) -> Path:
        return self.home / "models" / "default-sentiment"

    @property
    def chinese_model_dir(self) -> Path:
        """Where `rashomon model build-default --language zh` builds; offered by name as `default-zh`."""
        return self.home / "models" / "default-sentiment-zh"

    @property
    def resolved_model(self) -> str:
        """The model spec with the `default` alias turned into the default model's directory."""
        if self.model in ("", DEFAULT_MODEL_ALIAS):
            return str(self.default_model_dir)
        return self.model


def load_settings() -> Settings:
    home = Path(os.environ.get("RASHOMON_HOME") or Path.home() / ".rashomon").expanduser()
    database_url = os.environ.get("RASHOMON_DATABASE_URL") or f"sqlite:///{home / 'rashomon.db'}"
    model = os.environ.get("RASHOMON_MODEL") or DEFAULT_MODEL_ALIAS
    hosts = tuple(
        h.strip() for h in os.environ.get("RASHOMON_ALLOWED_INTERNAL_HOSTS", "").split(",") if h.strip()
    )
    return Settings(home=home, database_url=database_url, model=model, allowed_internal_hosts=hosts,
                    job_workers=_count("RASHOMON_JOB_WORKERS", 1),
                    ray_address=os.environ.get("RASHOMON_RAY_ADDRESS", "").strip(),
                    task_workers=_count("RASHOMON_TASK_WORKERS", 2),
                    models=os.environ.get("RASHOMON_MODELS", ""),
                    extraction_seconds=max(1, _count("RASHOMON_EXTRACTION_SECONDS", 30)),
                    extraction_mb=max(1, _count("RASHOMON_EXTRACTION_MB", 1024)),
                    samples=_count("RASHOMON_SAMPLES", 50), sample_heldout=_count("RASHOMON_SAMPLE_HELDOUT", 0),
                    backend=os.environ.get("RASHOMON_BACKEND", "").strip() or "auto",
                    auth_header=os.environ.get("RASHOMON_AUTH_HEADER", "").strip(),
                    trusted_proxies=tuple(p.strip() for p in os.environ.get("RASHOMON_TRUSTED_PROXIES", "").split(",")
                                          if p.strip()))


def _count(variable: str, default: int) -> int:
    """A worker count; a bad value falls back to the default rather than failing every page."""
    try:
        return max(0, int(os.environ.get(variable) or default))
    except ValueError:
        return default
