"""List, replay or purge the dead-letter queue: see `--help`.

.venv/bin/python scripts/reprocess_dlq.py list
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.deadletters.cli import main

if __name__ == "__main__":
    sys.exit(main())
