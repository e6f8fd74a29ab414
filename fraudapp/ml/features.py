"""The model inputs, each defined once.

A transaction is described by its time (Unix seconds, UTC), customer, terminal and amount. Its features
come from the history before it: the customer's spending windows and the terminal's fraud risk from the
labels known at scoring time, after a label delay. The same numpy code serves both paths: offline over a
whole history (training) and online over the few rows the database returns for one new transaction
(`features_for_one`), so the two cannot drift apart.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400
CUSTOMER_WINDOWS = (1, 7, 30)
TERMINAL_WINDOWS = (1, 7, 30)
TERMINAL_DELAY_DAYS = 7
CUSTOMER_LOOKBACK_DAYS = max(CUSTOMER_WINDOWS)
TERMINAL_LOOKBACK_DAYS = TERMINAL_DELAY_DAYS + max(TERMINAL_WINDOWS)

HANDBOOK_FEATURES = (
    "TX_AMOUNT",
    "TX_DURING_WEEKEND",
    "TX_DURING_NIGHT",
    *(
        name
        for w in CUSTOMER_WINDOWS
        for name in (f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW", f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW")
    ),
    *(
        name
        for w in TERMINAL_WINDOWS
        for name in (f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW", f"TERMINAL_ID_RISK_{w}DAY_WINDOW")
    ),
)
EXTRA_FEATURES = (
    "TX_HOUR",
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY_WINDOW",
    "CUSTOMER_ID_AMOUNT_RATIO_7DAY_WINDOW",
)
FEATURES = HANDBOOK_FEATURES + EXTRA_FEATURES

DESCRIPTIONS = {
    "TX_AMOUNT": "the amount",
    "TX_DURING_WEEKEND": "a weekend transaction",
    "TX_DURING_NIGHT": "a night transaction (00:00-06:59)",
    "TX_HOUR": "the hour of day",
    **{
        f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW": f"the customer's number of transactions in {w} day(s)"
        for w in CUSTOMER_WINDOWS
    },
    **{
        f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW": f"the customer's average amount over {w} day(s)"
        for w in CUSTOMER_WINDOWS
    },
    **{
        f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW": f"the terminal's number of transactions in {w} day(s), "
        f"{TERMINAL_DELAY_DAYS} days ago"
        for w in TERMINAL_WINDOWS
    },
    **{
        f"TERMINAL_ID_RISK_{w}DAY_WINDOW": f"the terminal's known fraud rate over {w} day(s), "
        f"{TERMINAL_DELAY_DAYS} days ago"
        for w in TERMINAL_WINDOWS
    },
    "CUSTOMER_ID_AMOUNT_RATIO_30DAY_WINDOW": "the amount against the customer's 30-day average",
    "CUSTOMER_ID_AMOUNT_RATIO_7DAY_WINDOW": "the amount against the customer's 7-day average",
}

_GROUP_SHIFT = np.int64(1) << np.int64(32)


def _grouped_keys(group: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order by (group, time), stable, and the sorted int64 keys group·2³² + time."""
    order = np.lexsort((time, group))
    keys = group[order].astype(np.int64) * _GROUP_SHIFT + time[order].astype(np.int64)
    return order, keys


def window_sums(
    group: np.ndarray,
    time: np.ndarray,
    value: np.ndarray,
    windows_days: tuple[int, ...],
    delay_days: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of `value` per row over the same group's rows in (t − delay − w, t − delay].

    With no delay the window ends at the row itself, which is included, and so are earlier rows at the
    same second (rows later in input order at the same second are not), as pandas' rolling windows do.
    Returns two arrays of shape (n_rows, len(windows_days)) in input order.
    """
    n = len(time)
    order, keys = _grouped_keys(np.asarray(group), np.asarray(time))
    cumulative = np.concatenate(([0.0], np.cumsum(np.asarray(value, dtype=np.float64)[order])))
    if delay_days:
        right = np.searchsorted(keys, keys - delay_days * DAY, side="right")
    else:
        right = np.arange(1, n + 1)
    counts = np.empty((n, len(windows_days)))
    sums = np.empty((n, len(windows_days)))
    for j, w in enumerate(windows_days):
        left = np.searchsorted(keys, keys - (delay_days + w) * DAY, side="right")
        counts[order, j] = right - left
        sums[order, j] = cumulative[right] - cumulative[left]
    return counts, sums


def customer_windows(customer, time, amount) -> tuple[np.ndarray, np.ndarray]:
    """The customer's transaction count and amount sum per window, the transaction included."""
    return window_sums(customer, time, amount, CUSTOMER_WINDOWS)


def terminal_windows(terminal, time, fraud) -> tuple[np.ndarray, np.ndarray]:
    """The terminal's transaction count and known-fraud count per window, before the label delay."""
    return window_sums(terminal, time, fraud, TERMINAL_WINDOWS, TERMINAL_DELAY_DAYS)


def assemble(time, amount, customer_stats, terminal_stats) -> np.ndarray:
    """The feature matrix, columns in `FEATURES` order, from the raw columns and the window stats."""
    time = np.asarray(time, dtype=np.int64)
    amount = np.asarray(amount, dtype=np.float64)
    c_count, c_sum = customer_stats
    t_count, t_fraud = terminal_stats
    weekday = (time // DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hour = (time % DAY) // 3600
    c_avg = c_sum / c_count
    t_risk = np.divide(t_fraud, t_count, out=np.zeros_like(t_fraud), where=t_count > 0)
    columns = [amount, (weekday >= 5).astype(float), (hour <= 6).astype(float)]
    for j in range(len(CUSTOMER_WINDOWS)):
        columns += [c_count[:, j], c_avg[:, j]]
    for j in range(len(TERMINAL_WINDOWS)):
        columns += [t_count[:, j], t_risk[:, j]]
    columns += [hour.astype(float), *_amount_ratios(amount, c_count, c_sum, (30, 7))]
    return np.column_stack(columns)


def _amount_ratios(amount, c_count, c_sum, windows) -> list[np.ndarray]:
    """The amount divided by the customer's mean amount before it in each window (1 with no history)."""
    ratios = []
    for w in windows:
        j = CUSTOMER_WINDOWS.index(w)
        before_count = c_count[:, j] - 1
        before_sum = c_sum[:, j] - amount
        mean_before = np.divide(before_sum, before_count, out=np.zeros_like(before_sum),
                                where=before_count > 0)
        ratio = np.divide(amount, mean_before, out=np.ones_like(amount), where=mean_before > 0)
        ratios.append(ratio)
    return ratios


def compute_features(customer, terminal, time, amount, fraud) -> np.ndarray:
    """Offline: the feature matrix of every row of a history (fraud is 1 for known frauds, else 0)."""
    return assemble(
        time,
        amount,
        customer_windows(customer, time, amount),
        terminal_windows(terminal, time, fraud),
    )


def features_for_one(
    time: int,
    amount: float,
    customer_history: tuple[np.ndarray, np.ndarray],
    terminal_history: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Online: the feature vector of one new transaction.

    `customer_history` is (times, amounts) of the customer's earlier transactions within the last
    `CUSTOMER_LOOKBACK_DAYS`; `terminal_history` is (times, known frauds) of the terminal's earlier
    transactions within the last `TERMINAL_LOOKBACK_DAYS`. Extra older rows do no harm.
    """
    c_time = np.append(np.asarray(customer_history[0], dtype=np.int64), time)
    c_amount = np.append(np.asarray(customer_history[1], dtype=np.float64), amount)
    t_time = np.append(np.asarray(terminal_history[0], dtype=np.int64), time)
    t_fraud = np.append(np.asarray(terminal_history[1], dtype=np.float64), 0.0)
    c_stats = [a[-1:] for a in customer_windows(np.zeros(len(c_time), np.int64), c_time, c_amount)]
    t_stats = [a[-1:] for a in terminal_windows(np.zeros(len(t_time), np.int64), t_time, t_fraud)]
    return assemble(c_time[-1:], c_amount[-1:], c_stats, t_stats)[0]
