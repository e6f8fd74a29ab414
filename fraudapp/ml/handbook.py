"""Reading transaction files in the Handbook's CSV format into a `History`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .training import History

COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD")


def to_unix_seconds(values) -> np.ndarray:
    """Unix seconds (int64) of naive UTC datetimes."""
    return pd.to_datetime(values).to_numpy().astype("datetime64[s]").astype(np.int64)


def read_history(path, nrows: int | None = None) -> tuple[pd.DataFrame, History]:
    """The file as a DataFrame and as a History labelled by TX_FRAUD."""
    frame = pd.read_csv(path, nrows=nrows)
    history = History(
        time=to_unix_seconds(frame["TX_DATETIME"]),
        customer=frame["CUSTOMER_ID"].to_numpy(np.int64),
        terminal=frame["TERMINAL_ID"].to_numpy(np.int64),
        amount=frame["TX_AMOUNT"].to_numpy(np.float64),
        label=frame["TX_FRAUD"].to_numpy(np.int64),
    )
    return frame, history
