"""The model inputs, each defined once.

A transaction is described by its time (Unix seconds, UTC), customer, terminal and amount. Its
features come from the history before it: the customer's spending windows and the terminal's fraud
risk from the labels known at scoring time, after a label delay. The same numpy code serves both
paths: offline over a whole history (training) and online over the few rows the database returns for
one new transaction (`features_for_one`), so the two cannot drift apart.

Window sums are computed in fixed point (exact int64 arithmetic), so a row's sums depend only on the
rows inside its windows: the online path, which sees only those rows, gets the offline values bit
for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DAY = 86_400
CUSTOMER_WINDOWS = (1, 7, 30)
TERMINAL_WINDOWS = (1, 7, 30)
TERMINAL_DELAY_DAYS = 7

# Extra features: the amount against the customer's mean over longer windows, the customer's recent
# unusually large transactions, and the terminal's latest run of known frauds.
AMOUNT_RATIO_WINDOWS = (7, 30, 90)
LARGE_AMOUNT_FACTOR = 3.0
LARGE_AMOUNT_BASELINE_DAYS = 30
LARGE_TX_WINDOW_DAYS = 7
TERMINAL_FRAUD_RUN_DAYS = 30

CUSTOMER_STAT_WINDOWS = tuple(
    sorted({*CUSTOMER_WINDOWS, *AMOUNT_RATIO_WINDOWS, LARGE_AMOUNT_BASELINE_DAYS})
)
CUSTOMER_LOOKBACK_DAYS = max(
    *CUSTOMER_STAT_WINDOWS, LARGE_TX_WINDOW_DAYS + LARGE_AMOUNT_BASELINE_DAYS
)
TERMINAL_LOOKBACK_DAYS = TERMINAL_DELAY_DAYS + max(*TERMINAL_WINDOWS, TERMINAL_FRAUD_RUN_DAYS)

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
    *(f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY_WINDOW" for w in AMOUNT_RATIO_WINDOWS),
    f"CUSTOMER_ID_NB_LARGE_TX_{LARGE_TX_WINDOW_DAYS}DAY_WINDOW",
    "TERMINAL_ID_FRAUD_RUN_LENGTH",
    "TERMINAL_ID_FRAUD_RUN_AGE_DAYS",
    "TERMINAL_ID_FIRST_FRAUD_AGE_DAYS",
)
FEATURES = HANDBOOK_FEATURES + EXTRA_FEATURES


def _days(n: int) -> str:
    return "day" if n == 1 else f"{n} days"


DESCRIPTIONS = {
    "TX_AMOUNT": "the amount",
    "TX_DURING_WEEKEND": "a weekend transaction",
    "TX_DURING_NIGHT": "a night transaction (00:00-06:59)",
    "TX_HOUR": "the hour of day",
    **{
        f"CUSTOMER_ID_NB_TX_{w}DAY_WINDOW": "the customer's number of transactions in the last "
        + _days(w)
        for w in CUSTOMER_WINDOWS
    },
    **{
        f"CUSTOMER_ID_AVG_AMOUNT_{w}DAY_WINDOW": "the customer's average amount over the last "
        + _days(w)
        for w in CUSTOMER_WINDOWS
    },
    **{
        f"TERMINAL_ID_NB_TX_{w}DAY_WINDOW": "the terminal's number of transactions over the "
        f"{_days(w)} ending {TERMINAL_DELAY_DAYS} days ago"
        for w in TERMINAL_WINDOWS
    },
    **{
        f"TERMINAL_ID_RISK_{w}DAY_WINDOW": f"the terminal's known fraud rate over the {_days(w)}"
        f" ending {TERMINAL_DELAY_DAYS} days ago"
        for w in TERMINAL_WINDOWS
    },
    **{
        f"CUSTOMER_ID_AMOUNT_RATIO_{w}DAY_WINDOW": "the amount against the customer's average "
        f"over the previous {w} days"
        for w in AMOUNT_RATIO_WINDOWS
    },
    f"CUSTOMER_ID_NB_LARGE_TX_{LARGE_TX_WINDOW_DAYS}DAY_WINDOW": "the customer's number of "
    f"transactions in the previous {LARGE_TX_WINDOW_DAYS} days above {LARGE_AMOUNT_FACTOR:g} times "
    f"their average of the {LARGE_AMOUNT_BASELINE_DAYS} days before",
    "TERMINAL_ID_FRAUD_RUN_LENGTH": "the number of known frauds in a row among the terminal's "
    f"latest transactions before the last {TERMINAL_DELAY_DAYS} days",
    "TERMINAL_ID_FRAUD_RUN_AGE_DAYS": "the days since that run of the terminal's known frauds "
    "began (0: no such run)",
    "TERMINAL_ID_FIRST_FRAUD_AGE_DAYS": "the days since the terminal's first known fraud in the "
    f"{TERMINAL_FRAUD_RUN_DAYS} days before the last {TERMINAL_DELAY_DAYS} (0: none)",
}


class CustomerStats(NamedTuple):
    """Per row: the customer's transaction count and amount sum per `CUSTOMER_STAT_WINDOWS` window
    (the row included), and the number of their earlier large transactions in the recent window."""

    count: np.ndarray
    amount_sum: np.ndarray
    large_count: np.ndarray


class TerminalStats(NamedTuple):
    """Per row: the terminal's count and known frauds per `TERMINAL_WINDOWS` window before the
    delay, its latest run of known frauds (length, age in days) and its first known fraud's age."""

    count: np.ndarray
    frauds: np.ndarray
    run_length: np.ndarray
    run_age: np.ndarray
    first_fraud_age: np.ndarray


_GROUP_SHIFT = np.int64(1) << np.int64(32)
_FIXED_POINT = 1e8  # window sums: exact int64 sums of value·1e8 (for |value| < 9e10)


def _grouped_keys(group: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order by (group, time), stable, and the sorted int64 keys group·2³² + time."""
    order = np.lexsort((time, group))
    keys = group[order].astype(np.int64) * _GROUP_SHIFT + time[order].astype(np.int64)
    return order, keys


def _window_starts(keys: np.ndarray, days: int) -> np.ndarray:
    """For each sorted key, the first position of its group's rows later than `days` before it."""
    return np.searchsorted(keys, keys - days * DAY, side="right")


def _window_ends(keys: np.ndarray, delay_days: int) -> np.ndarray:
    """For each sorted key, the end (exclusive) of its window: itself, or `delay_days` before it."""
    if delay_days:
        return np.searchsorted(keys, keys - delay_days * DAY, side="right")
    return np.arange(1, len(keys) + 1)


def window_sums(
    group: np.ndarray,
    time: np.ndarray,
    value: np.ndarray,
    windows_days: tuple[int, ...],
    delay_days: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of `value` per row over the same group's rows in (t − delay − w, t − delay].

    With no delay the window ends at the row itself, which is included, and so are earlier rows at
    the same second (rows later in input order at the same second are not), as pandas' rolling
    windows do.
    Returns two arrays of shape (n_rows, len(windows_days)) in input order.
    """
    n = len(time)
    order, keys = _grouped_keys(np.asarray(group), np.asarray(time))
    fixed = np.rint(np.asarray(value, dtype=np.float64)[order] * _FIXED_POINT).astype(np.int64)
    cumulative = np.concatenate(([0], np.cumsum(fixed)))  # wraps harmlessly: differences are exact
    right = _window_ends(keys, delay_days)
    counts = np.empty((n, len(windows_days)))
    sums = np.empty((n, len(windows_days)))
    for j, w in enumerate(windows_days):
        left = _window_starts(keys, delay_days + w)
        counts[order, j] = right - left
        sums[order, j] = (cumulative[right] - cumulative[left]) / _FIXED_POINT
    return counts, sums


def mean_before(amount, count, amount_sum) -> np.ndarray:
    """The mean amount of a window's rows before the transaction itself (0 with none)."""
    before_count = count - 1
    return np.divide(
        amount_sum - amount, before_count, out=np.zeros_like(amount_sum), where=before_count > 0
    )


def amount_ratio(amount, count, amount_sum) -> np.ndarray:
    """The amount over the customer's mean amount before it in the window (1 with no history)."""
    mean = mean_before(amount, count, amount_sum)
    return np.divide(amount, mean, out=np.ones_like(mean), where=mean > 0)


def customer_stats(customer, time, amount) -> CustomerStats:
    """The customer window stats of every row (see `CustomerStats`).

    A transaction is large when its amount exceeds `LARGE_AMOUNT_FACTOR` times the customer's mean
    amount over the `LARGE_AMOUNT_BASELINE_DAYS` before it.
    """
    amount = np.asarray(amount, dtype=np.float64)
    count, amount_sum = window_sums(customer, time, amount, CUSTOMER_STAT_WINDOWS)
    j = CUSTOMER_STAT_WINDOWS.index(LARGE_AMOUNT_BASELINE_DAYS)
    ratio = amount_ratio(amount, count[:, j], amount_sum[:, j])
    large = (ratio > LARGE_AMOUNT_FACTOR).astype(np.float64)
    _, large_sum = window_sums(customer, time, large, (LARGE_TX_WINDOW_DAYS,))
    return CustomerStats(count, amount_sum, large_sum[:, 0] - large)


def terminal_stats(terminal, time, fraud) -> TerminalStats:
    """The terminal stats of every row (see `TerminalStats`), from the labels known before the
    delay.

    The run of known frauds is the terminal's transactions after its latest known genuine one (or
    all of them when there is none) within the `TERMINAL_FRAUD_RUN_DAYS` before the delay; those at
    the same second as that genuine one do not count, so the run does not depend on row order.
    """
    fraud = np.asarray(fraud, dtype=np.float64)
    count, frauds = window_sums(terminal, time, fraud, TERMINAL_WINDOWS, TERMINAL_DELAY_DAYS)
    order, keys = _grouped_keys(np.asarray(terminal), np.asarray(time))
    right = _window_ends(keys, TERMINAL_DELAY_DAYS)
    left = _window_starts(keys, TERMINAL_DELAY_DAYS + TERMINAL_FRAUD_RUN_DAYS)
    sorted_time, is_fraud = np.asarray(time, dtype=np.int64)[order], fraud[order] > 0
    run_start = _fraud_run_starts(keys, is_fraud, left, right)
    first = _first_fraud(is_fraud, left, right)
    run_length, run_age, first_age = (np.empty(len(keys)) for _ in range(3))
    run_length[order] = right - run_start
    run_age[order] = _age_days(sorted_time, run_start, right - run_start > 0)
    first_age[order] = _age_days(sorted_time, first, first < right)
    return TerminalStats(count, frauds, run_length, run_age, first_age)


def _fraud_run_starts(keys, is_fraud, left, right) -> np.ndarray:
    """Per sorted row, where the run of frauds ending at `right` starts within [left, right)."""
    positions = np.arange(len(keys))
    last_genuine = np.maximum.accumulate(np.where(is_fraud, -1, positions))
    before_end = last_genuine[np.maximum(right - 1, 0)]
    after_genuine = np.searchsorted(keys, keys[np.maximum(before_end, 0)], side="right")
    has_genuine = (right > left) & (before_end >= left)
    return np.where(has_genuine, after_genuine, left)


def _first_fraud(is_fraud, left, right) -> np.ndarray:
    """Per sorted row, the first fraud position in [left, right), or `right` when there is none."""
    n = len(is_fraud)
    positions = np.where(is_fraud, np.arange(n), n)
    next_fraud = np.append(np.minimum.accumulate(positions[::-1])[::-1], n)
    return np.minimum(next_fraud[left], right)


def _age_days(sorted_time, position, valid) -> np.ndarray:
    """Days from the row at `position` to each row, where valid, else 0."""
    then = sorted_time[np.minimum(position, len(sorted_time) - 1)]
    return np.where(valid, (sorted_time - then) / DAY, 0.0)


def assemble(time, amount, customer: CustomerStats, terminal: TerminalStats) -> np.ndarray:
    """The feature matrix, columns in `FEATURES` order, from the raw columns and window stats."""
    time = np.asarray(time, dtype=np.int64)
    amount = np.asarray(amount, dtype=np.float64)
    weekday = (time // DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hour = (time % DAY) // 3600
    t_count, t_frauds = terminal.count, terminal.frauds
    t_risk = np.divide(t_frauds, t_count, out=np.zeros_like(t_frauds), where=t_count > 0)
    columns = [amount, (weekday >= 5).astype(float), (hour <= 6).astype(float)]
    for w in CUSTOMER_WINDOWS:
        j = CUSTOMER_STAT_WINDOWS.index(w)
        columns += [customer.count[:, j], customer.amount_sum[:, j] / customer.count[:, j]]
    for j in range(len(TERMINAL_WINDOWS)):
        columns += [t_count[:, j], t_risk[:, j]]
    columns.append(hour.astype(float))
    for w in AMOUNT_RATIO_WINDOWS:
        j = CUSTOMER_STAT_WINDOWS.index(w)
        columns.append(amount_ratio(amount, customer.count[:, j], customer.amount_sum[:, j]))
    columns += [customer.large_count, terminal.run_length, terminal.run_age]
    columns.append(terminal.first_fraud_age)
    return np.column_stack(columns)


def compute_features(customer, terminal, time, amount, fraud) -> np.ndarray:
    """Offline: the feature matrix of every row of a history (fraud: 1 known fraud, else 0)."""
    return assemble(
        time,
        amount,
        customer_stats(customer, time, amount),
        terminal_stats(terminal, time, fraud),
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
    c_stats = customer_stats(np.zeros(len(c_time), np.int64), c_time, c_amount)
    t_stats = terminal_stats(np.zeros(len(t_time), np.int64), t_time, t_fraud)
    return assemble(
        c_time[-1:],
        c_amount[-1:],
        CustomerStats(*(a[-1:] for a in c_stats)),
        TerminalStats(*(a[-1:] for a in t_stats)),
    )[0]
