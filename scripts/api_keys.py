"""Create, list and revoke API keys: see `--help`.

.venv/bin/python scripts/api_keys.py create --tenant acme --name "acme's nightly export"
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.keys.cli import main

if __name__ == "__main__":
    sys.exit(main())
