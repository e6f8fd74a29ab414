"""What a transaction may hold: the limits every input path (form, API, import) checks."""

from __future__ import annotations

import datetime as dt

MAX_ID = 2**31 - 1
MAX_AMOUNT = 1_000_000.0
EARLIEST, LATEST = dt.datetime(1990, 1, 1), dt.datetime(2100, 1, 1)  # accepted transaction times
