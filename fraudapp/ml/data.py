"""Transaction histories as numpy columns, days since the epoch, and the Handbook's CSV format."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import features

EPOCH = dt.date(1970, 1, 1)
COLUMNS = ("TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD")


def epoch_day(day: dt.date) -> int:
    """The number of a date: days since 1970-01-01 (a transaction's is `tx_time // DAY`)."""
    return (day - EPOCH).days


def day_date(number: int) -> dt.date:
    """The date of a day number (see `epoch_day`)."""
    return EPOCH + dt.timedelta(days=int(number))


@dataclass
class History:
    """A transaction history as numpy columns; `label` is 1 fraud, 0 genuine, -1 not labelled (the
    label known now); `label_events` the labels given with the moment each became known, for the
    point-in-time features (None: every label known at the Handbook's delay, as imported ones
    are — they never reach the delay period)."""

    time: np.ndarray
    customer: np.ndarray
    terminal: np.ndarray
    amount: np.ndarray
    label: np.ndarray
    label_events: features.LabelEvents | None = None

    def __len__(self) -> int:
        return len(self.time)

    @property
    def day(self) -> np.ndarray:
        """Day number since the Unix epoch."""
        return self.time // features.DAY

    def features(self) -> np.ndarray:
        """The feature matrix of every row: the Handbook's terminal risk from the labels known
        now, the delay period's known frauds from the labels known at each row's time."""
        return features.compute_features(
            self.customer,
            self.terminal,
            self.time,
            self.amount,
            (self.label == 1).astype(float),
            labels=self.label_events,
        )


_WHOLE_NUMBER = re.compile("0|[1-9][0-9]{0,17}")


def ordered_codes(*columns) -> features.GroupCodes:
    """Codes for every customer or terminal id in `columns` (text, or whole numbers), following
    the ids' order: whole numbers written plainly, by value, then other text in code point order
    — so what is broken by id order (card precision's ties) falls as it did with numeric ids."""
    ids = pd.unique(np.concatenate([np.asarray(column, object) for column in columns]))
    codes = features.GroupCodes()
    codes.codes = {value: k for k, value in enumerate(sorted(ids.tolist(), key=_id_order))}
    return codes


def _id_order(value) -> tuple:
    if isinstance(value, int | np.integer):
        return (0, int(value), "")
    return (0, int(value), "") if _WHOLE_NUMBER.fullmatch(value) else (1, 0, value)


def group_codes(column) -> np.ndarray:
    """The codes of one column of ids (see `ordered_codes`)."""
    return ordered_codes(column).of(column)


def to_unix_seconds(values) -> np.ndarray:
    """Unix seconds (int64) of naive UTC datetimes."""
    return pd.to_datetime(values).to_numpy().astype("datetime64[s]").astype(np.int64)


def read_history(path, nrows: int | None = None) -> tuple[pd.DataFrame, History]:
    """A Handbook-format file as a DataFrame and as a History labelled by TX_FRAUD."""
    frame = pd.read_csv(path, nrows=nrows)
    codes = ordered_codes(frame["CUSTOMER_ID"], frame["TERMINAL_ID"])
    history = History(
        time=to_unix_seconds(frame["TX_DATETIME"]),
        customer=codes.of(frame["CUSTOMER_ID"].to_numpy(object)),
        terminal=codes.of(frame["TERMINAL_ID"].to_numpy(object)),
        amount=frame["TX_AMOUNT"].to_numpy(np.float64),
        label=frame["TX_FRAUD"].to_numpy(np.int64),
    )
    return frame, history
