"""Serve the dashboard: `streamlit run app.py`, with Streamlit's old pages-folder mode switched off.

Streamlit treats a `pages/` folder next to the entry script as the old multipage mode until the
entry script first calls `st.navigation`. A deep link as the very first request of a fresh server
(a shared Compare link, say) is then resolved against the folder's file names and answered with a
"Page not found" dialog before `app.py` sets the real pages up (streamlit/streamlit#9624). Rashomon
only uses `st.navigation`, so the folder mode is switched off before the server starts.

    python scripts/serve.py [streamlit run options...]
"""

import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    sys.exit(cli.main())
