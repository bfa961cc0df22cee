"""Launch the vsrapp web UI: ``python app.py [--host 0.0.0.0] [--port 7860] ...`` (``--help`` lists the limits).

A thin launcher: the page is built by :func:`vsrapp.web.ui.build_app` over vsrapp's public API.
"""

import sys

from vsrapp.web.cli import main

if __name__ == "__main__":
    sys.exit(main())
