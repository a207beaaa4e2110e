"""Serve the dashboard: `streamlit run app.py`, with Streamlit's old pages-folder mode switched off.

Streamlit treats a `pages/` folder next to the entry script as the old multipage mode until the
entry script first calls `st.navigation`. A deep link as the very first request of a fresh server
(a shared Compare link, say) is then resolved against the folder's file names and answered with a
"Page not found" dialog before `app.py` sets the real pages up (streamlit/streamlit#9624). Rashomon
only uses `st.navigation`, so the folder mode is switched off before the server starts.

    python scripts/serve.py [streamlit run options...]
"""

import os
import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

ROOT = Path(__file__).resolve().parent.parent

def start_workers() -> None:
    """The server's worker processes start with it, not at the first page view: a task interrupted by a
    restart is taken up again even if nobody opens a page. A missing default model is queued as a build task
    here, so the server answers at once and the model builds meanwhile."""
    sys.path.insert(0, str(ROOT))
    from core.storage.db import DatabaseUnavailable, get_engine
    from core.storage.settings import load_settings
    from core.work import builds
    from core.work.tasks import server_workers

    settings = load_settings()
    if settings.resolved_model == str(settings.default_model_dir) and not (settings.default_model_dir / "config.json").exists():
        try:
            builds.submit_build(get_engine())
        except DatabaseUnavailable as exc:  # the pages say so too; the server still starts
            print(f"rashomon: {exc}", file=sys.stderr)
    if settings.task_workers:
        server_workers(settings.task_workers, settings.home).ensure()


if __name__ == "__main__":
    # Rashomon believes a proxy's user header only from the TCP peer's address (RASHOMON_TRUSTED_PROXIES). uvicorn
    # would otherwise replace that address with a client-sent X-Forwarded-For from 127.0.0.1, so a request that
    # bypassed the proxy on this machine could pose as it. An operator who needs uvicorn's rewriting sets it.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    start_workers()
    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    sys.exit(cli.main())
