"""Upload a CSV file and follow its import in the terminal: see `--help`.

.venv/bin/python scripts/import_csv.py server/demo/customers.csv --target customers
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.client import main

if __name__ == "__main__":
    sys.exit(main())
