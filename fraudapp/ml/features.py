"""The model inputs, each defined once.

A transaction is described by its time (Unix seconds, UTC), customer, terminal and amount. Its
features come from the history before it: the customer's spending windows and the terminal's fraud
risk from the labels known at scoring time, after a label delay. The same numpy code serves both
paths: offline over a whole history (training) and online over the rows the database returns for new
transactions, one or a list or a file's chunk at a time (`features_of_new`), so the two cannot drift
apart.

The delay period itself — the last `TERMINAL_DELAY_DAYS` — is covered by point-in-time label
features (`KNOWN_FRAUD_FEATURES`): the terminal's and the customer's frauds known at the
transaction's time among their transactions of that period, each label counting from the moment it
became known (`LabelEvents`), as the label in effect then (a later correction never reaches back).
Imported labels are known at the delay, so on an imported history these are all 0.

Window sums are computed in fixed point (exact int64 arithmetic), so a row's sums depend only on the
rows inside its windows: the online path, which sees only those rows, gets the offline values bit
for bit — except where the database hands it a summary of older rows for the 90-day window (their
count and floating-point sum), which agrees to rounding.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import numpy as np
import pandas as pd

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
# Point-in-time label features: frauds known at the transaction's time among the transactions of
# the delay period (t − KNOWN_FRAUD_WINDOW_DAYS, t), where the Handbook's delayed windows see none.
KNOWN_FRAUD_WINDOW_DAYS = TERMINAL_DELAY_DAYS
KNOWN_FRAUD_FEATURES = (
    f"TERMINAL_ID_KNOWN_FRAUDS_{KNOWN_FRAUD_WINDOW_DAYS}DAY_WINDOW",
    f"CUSTOMER_ID_KNOWN_FRAUDS_{KNOWN_FRAUD_WINDOW_DAYS}DAY_WINDOW",
)
FEATURES = HANDBOOK_FEATURES + EXTRA_FEATURES + KNOWN_FRAUD_FEATURES


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
    KNOWN_FRAUD_FEATURES[0]: "the number of the terminal's transactions of the last "
    f"{KNOWN_FRAUD_WINDOW_DAYS} days already known as frauds",
    KNOWN_FRAUD_FEATURES[1]: "the number of the customer's transactions of the last "
    f"{KNOWN_FRAUD_WINDOW_DAYS} days already known as frauds",
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


_FACTORIZE_FROM = 1_000  # ids: below, a dict lookup per row costs less than the hash table's setup


class GroupCodes:
    """Integer codes of customer or terminal ids (opaque text) for the features, which group rows
    by integer: equal ids get equal codes, an id not seen before the next free code. A customer
    and a terminal may share a code: codes are only compared within one kind."""

    def __init__(self):
        self.codes: dict = {}

    def of(self, ids) -> np.ndarray:
        """The codes of a sequence of ids, as int64. A long one is first reduced to its distinct
        ids (a hash table in C), so the mapping runs once per id rather than once per row."""
        if len(ids) > _FACTORIZE_FROM:
            rows, distinct = pd.factorize(np.asarray(ids, dtype=object), sort=False)
            return self._of_each(distinct)[rows]
        return self._of_each(ids)

    def _of_each(self, ids) -> np.ndarray:
        codes = self.codes
        if codes:
            try:  # the usual case: every id has its code already
                return np.fromiter(map(codes.__getitem__, ids), np.int64, len(ids))
            except KeyError:  # a new one
                pass
        return np.fromiter((codes.setdefault(i, len(codes)) for i in ids), np.int64, len(ids))


class History(NamedTuple):
    """Stored rows of some customers or terminals: group (the customer or terminal), time and a
    value (the amount, or 1 for a known fraud), in any order; optionally a weight per row (n: a
    summary of n rows, value their sum — see `_Timeline`)."""

    group: np.ndarray
    time: np.ndarray
    value: np.ndarray
    weight: np.ndarray | None = None


class LabelEvents(NamedTuple):
    """Labels given to some transactions, one row per label: the labelled transaction (any id
    that groups its labels), its terminal, customer and time; when the label became known (Unix
    seconds, rounded up: known by t means known_at ≤ t); fraud (1) or genuine (0); its source's
    rank (`models.LABEL_PRIORITY`: an analyst's outranks a user's, which outranks an import). Given
    in the order the labels were given, which decides between labels of one transaction known in
    the same second (the later one wins)."""

    transaction: np.ndarray
    terminal: np.ndarray
    customer: np.ndarray
    time: np.ndarray
    known: np.ndarray
    fraud: np.ndarray
    rank: np.ndarray


class FraudSpans(NamedTuple):
    """Stretches of time [start, end) in which a transaction of a terminal and customer is a known
    fraud inside the delay period of a transaction at that time (see `fraud_spans`)."""

    terminal: np.ndarray
    customer: np.ndarray
    start: np.ndarray
    end: np.ndarray


_NEVER = np.iinfo(np.int64).max


def fraud_spans(labels: LabelEvents) -> FraudSpans:
    """When each labelled transaction counts as a known fraud for a transaction at time t: its
    label in effect at t is fraud, and it lies in t's delay period (t − KNOWN_FRAUD_WINDOW_DAYS, t).

    The label in effect at t is, among the transaction's labels known by t, the latest of the
    highest-ranked source: a label takes effect when known unless a higher-ranked one already has,
    and holds until the next one that takes effect — so a correction changes nothing before it is
    known.
    """
    order = np.lexsort(
        (np.arange(len(labels.known)), labels.known, labels.transaction)
    )  # by transaction, then known, then the order given
    transaction = np.asarray(labels.transaction, np.int64)[order]
    key = transaction * 4 + np.asarray(labels.rank, np.int64)[order]  # ranks are 0-3
    order = order[key == np.maximum.accumulate(key)]  # the labels taking effect
    transaction = np.asarray(labels.transaction, np.int64)[order]
    known = np.asarray(labels.known, np.int64)[order]
    replaced = np.append(transaction[1:] == transaction[:-1], False)
    end = np.where(replaced, np.append(known[1:], 0), _NEVER)
    time = np.asarray(labels.time, np.int64)[order]
    start = np.maximum(known, time + 1)
    end = np.minimum(end, time + KNOWN_FRAUD_WINDOW_DAYS * DAY)
    keep = (np.asarray(labels.fraud)[order] > 0) & (start < end)
    return FraudSpans(
        np.asarray(labels.terminal, np.int64)[order][keep],
        np.asarray(labels.customer, np.int64)[order][keep],
        start[keep],
        end[keep],
    )


def _spans_containing(span_group, start, end, group, time) -> np.ndarray:
    """Per (group, time): how many spans of that group contain the time (each span of a lower
    group is both started and ended before the key, so it counts 1 − 1 = 0)."""
    starts = np.sort(span_group * _GROUP_SHIFT + start)
    ends = np.sort(span_group * _GROUP_SHIFT + end)
    keys = np.asarray(group, np.int64) * _GROUP_SHIFT + np.asarray(time, np.int64)
    inside = np.searchsorted(starts, keys, side="right") - np.searchsorted(ends, keys, side="right")
    return inside.astype(np.float64)


def known_frauds(labels: LabelEvents | None, terminal, customer, time) -> np.ndarray:
    """The `KNOWN_FRAUD_FEATURES` of transactions (terminal, customer, time) from the labels known
    at their time: shape (n, 2). No labels (None): all 0, as on an imported history."""
    n = len(time)
    if labels is None or not len(labels.known):
        return np.zeros((n, len(KNOWN_FRAUD_FEATURES)))
    spans = fraud_spans(labels)
    return np.column_stack(
        (
            _spans_containing(spans.terminal, spans.start, spans.end, terminal, time),
            _spans_containing(spans.customer, spans.start, spans.end, customer, time),
        )
    )


_GROUP_SHIFT = np.int64(1) << np.int64(32)
_FIXED_POINT = 1e8  # window sums: exact int64 sums of value·1e8 (for |value| < 9e10)


class _Timeline:
    """Rows sorted stably by (group, time): the input row `order[k]` sits at position k.

    A row sees the rows before it in this order (earlier rows at the same second included), each
    counting as `weight` rows: 1 normally; 0 for a row no other row sees (a transaction scored but
    not stored), which still gets its own statistics; n for a summary of n older stored rows
    (its value their sum).
    Values passed to `sums` are in this sorted order.
    """

    def __init__(self, group, time, weight):
        time = np.asarray(time, dtype=np.int64)
        keys = np.asarray(group, dtype=np.int64) * _GROUP_SHIFT + time
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]
        self.time = time[self.order]
        n = len(keys)
        self.weight = (
            np.ones(n, np.int64) if weight is None else np.asarray(weight, np.int64)[self.order]
        )
        self.seen = np.concatenate(([0], np.cumsum(self.weight)))  # rows seen before each

    def wanted(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """The sorted positions of `rows` (default: all), and the index that puts values computed
        at those positions back in `rows` order."""
        if rows is None:
            back = np.empty(len(self.order), dtype=np.int64)
            back[self.order] = np.arange(len(self.order))
            return np.arange(len(self.order)), back
        inverse = np.empty(len(self.order), dtype=np.int64)
        inverse[self.order] = np.arange(len(self.order))
        positions = inverse[rows]
        ordered = np.sort(positions)
        return ordered, np.searchsorted(ordered, positions)

    def start(self, positions: np.ndarray, days: int) -> np.ndarray:
        """The first position of each row's group later than `days` before it."""
        return np.searchsorted(self.keys, self.keys[positions] - days * DAY, side="right")

    def sums(self, value, positions, windows_days, delay_days=0):
        """Count and sum of the seen rows' `value` (sorted order) in each row's windows
        (t − delay − w, t − delay]; with no delay the row itself counts, seen or not."""
        fixed = np.rint(value * _FIXED_POINT).astype(np.int64)
        # wraps harmlessly: differences are exact
        cumulative = np.concatenate(([0], np.cumsum(np.where(self.weight > 0, fixed, 0))))
        if delay_days:
            right, own_count, own = self.start(positions, delay_days), 0, 0
        else:
            right, own_count, own = positions, 1, fixed[positions]
        counts = np.empty((len(positions), len(windows_days)))
        sums = np.empty((len(positions), len(windows_days)))
        for j, w in enumerate(windows_days):
            left = self.start(positions, delay_days + w)
            counts[:, j] = self.seen[right] - self.seen[left] + own_count
            sums[:, j] = (cumulative[right] - cumulative[left] + own) / _FIXED_POINT
        return counts, sums


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
    timeline = _Timeline(group, time, None)
    positions, back = timeline.wanted(None)
    value = np.asarray(value, dtype=np.float64)[timeline.order]
    counts, sums = timeline.sums(value, positions, windows_days, delay_days)
    return counts[back], sums[back]


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


def customer_stats(customer, time, amount, weight=None, rows=None) -> CustomerStats:
    """The customer window stats of `rows` (default: every row; see `CustomerStats` and
    `_Timeline` for `weight`).

    A transaction is large when its amount exceeds `LARGE_AMOUNT_FACTOR` times the customer's mean
    amount over the `LARGE_AMOUNT_BASELINE_DAYS` before it.
    """
    timeline = _Timeline(customer, time, weight)
    amount = np.asarray(amount, dtype=np.float64)[timeline.order]
    positions, back = timeline.wanted(rows)
    count, amount_sum = timeline.sums(amount, positions, CUSTOMER_STAT_WINDOWS)
    # Large or not, for every row that can fall in the recent window of one of `rows`.
    earliest = timeline.time[positions].min(initial=np.iinfo(np.int64).max)
    candidates = np.flatnonzero(timeline.time > earliest - LARGE_TX_WINDOW_DAYS * DAY)
    base_count, base_sum = timeline.sums(amount, candidates, (LARGE_AMOUNT_BASELINE_DAYS,))
    large = np.zeros(len(amount))
    large[candidates] = amount_ratio(amount[candidates], base_count[:, 0], base_sum[:, 0])
    large = (large > LARGE_AMOUNT_FACTOR).astype(np.float64)
    _, large_sum = timeline.sums(large, positions, (LARGE_TX_WINDOW_DAYS,))
    return CustomerStats(count[back], amount_sum[back], (large_sum[:, 0] - large[positions])[back])


def terminal_stats(terminal, time, fraud, weight=None, rows=None) -> TerminalStats:
    """The terminal stats of `rows` (default: every row; see `TerminalStats` and `_Timeline` for
    `weight`), from the labels known before the delay.

    The run of known frauds is the terminal's transactions after its latest known genuine one (or
    all of them when there is none) within the `TERMINAL_FRAUD_RUN_DAYS` before the delay; those at
    the same second as that genuine one do not count, so the run does not depend on row order.
    """
    timeline = _Timeline(terminal, time, weight)
    fraud = np.asarray(fraud, dtype=np.float64)[timeline.order]
    positions, back = timeline.wanted(rows)
    count, frauds = timeline.sums(fraud, positions, TERMINAL_WINDOWS, TERMINAL_DELAY_DAYS)
    run_length, run_age, first_age = (np.zeros(len(positions)) for _ in range(3))
    seen = timeline.weight > 0
    keys, seen_time = timeline.keys[seen], timeline.time[seen]
    if len(keys):
        is_fraud = fraud[seen] > 0
        own_keys, own_time = timeline.keys[positions], timeline.time[positions]
        right = np.searchsorted(keys, own_keys - TERMINAL_DELAY_DAYS * DAY, side="right")
        left = np.searchsorted(
            keys, own_keys - (TERMINAL_DELAY_DAYS + TERMINAL_FRAUD_RUN_DAYS) * DAY, side="right"
        )
        run_start = _fraud_run_starts(keys, is_fraud, left, right)
        first = _first_fraud(is_fraud, left, right)
        run_length[:] = right - run_start
        run_age[:] = _age_days(own_time, seen_time, run_start, right - run_start > 0)
        first_age[:] = _age_days(own_time, seen_time, first, first < right)
    stats = (count, frauds, run_length, run_age, first_age)
    return TerminalStats(*(a[back] for a in stats))


def _fraud_run_starts(keys, is_fraud, left, right) -> np.ndarray:
    """Per row, where the run of frauds ending at `right` starts within [left, right) of the
    sorted `keys`."""
    positions = np.arange(len(keys))
    last_genuine = np.maximum.accumulate(np.where(is_fraud, -1, positions))
    before_end = last_genuine[np.maximum(right - 1, 0)]
    after_genuine = np.searchsorted(keys, keys[np.maximum(before_end, 0)], side="right")
    has_genuine = (right > left) & (before_end >= left)
    return np.where(has_genuine, after_genuine, left)


def _first_fraud(is_fraud, left, right) -> np.ndarray:
    """Per row, the first fraud position in [left, right), or `right` when there is none."""
    n = len(is_fraud)
    positions = np.where(is_fraud, np.arange(n), n)
    next_fraud = np.append(np.minimum.accumulate(positions[::-1])[::-1], n)
    return np.minimum(next_fraud[left], right)


def _age_days(time, sorted_time, position, valid) -> np.ndarray:
    """Days from the sorted row at `position` to each row's `time`, where valid, else 0."""
    then = sorted_time[np.minimum(position, len(sorted_time) - 1)]
    return np.where(valid, (time - then) / DAY, 0.0)


def assemble(
    time, amount, customer: CustomerStats, terminal: TerminalStats, known: np.ndarray
) -> np.ndarray:
    """The feature matrix, columns in `FEATURES` order, from the raw columns, window stats and
    known frauds (`known_frauds`)."""
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
    columns += [known[:, 0], known[:, 1]]
    return np.column_stack(columns)


def compute_features(
    customer, terminal, time, amount, fraud, weight=None, rows=None, labels=None
) -> np.ndarray:
    """The feature matrix of `rows` (default: every row) of a history (fraud: 1 known fraud, else
    0), each row seeing the rows before it, weighted (default: all 1) — see `_Timeline` — and
    the labels known at its time (`labels`: LabelEvents; None: labels known at the delay)."""
    time, amount = np.asarray(time, dtype=np.int64), np.asarray(amount, dtype=np.float64)
    own = slice(None) if rows is None else rows
    return assemble(
        time[own],
        amount[own],
        customer_stats(customer, time, amount, weight, rows),
        terminal_stats(terminal, time, fraud, weight, rows),
        known_frauds(labels, np.asarray(terminal)[own], np.asarray(customer)[own], time[own]),
    )


def features_of_new(
    customer,
    terminal,
    time,
    amount,
    visible,
    customers: History,
    terminals: History,
    labels: LabelEvents | None = None,
) -> np.ndarray:
    """Online: the feature matrix of new transactions, in sequence order.

    Each sees the stored rows — `customers`: (customer, time, amount) of its customer's rows within
    `CUSTOMER_LOOKBACK_DAYS`, or summaries of some of them (weights); `terminals`: (terminal, time,
    known fraud) of its terminal's rows within `TERMINAL_LOOKBACK_DAYS` — and the visible new rows
    before it (`visible`: the stored ones, with consent); and `labels`: the labels of its
    terminal's and customer's transactions of the delay period known by its time (later ones and
    unrelated ones do no harm; new rows carry none). New rows must be in time order for that to
    mean "before it in time". Extra older or unrelated stored rows do no harm.
    """
    time, amount = np.asarray(time, dtype=np.int64), np.asarray(amount, dtype=np.float64)
    visible = np.asarray(visible, dtype=np.int64)
    own_c = np.arange(len(customers.time), len(customers.time) + len(time))
    own_t = np.arange(len(terminals.time), len(terminals.time) + len(time))
    return assemble(
        time,
        amount,
        customer_stats(
            np.concatenate((customers.group, customer)).astype(np.int64),
            np.concatenate((customers.time, time)),
            np.concatenate((customers.value, amount)),
            np.concatenate((_weights(customers), visible)),
            own_c,
        ),
        terminal_stats(
            np.concatenate((terminals.group, terminal)).astype(np.int64),
            np.concatenate((terminals.time, time)),
            np.concatenate((terminals.value, np.zeros(len(time)))),
            np.concatenate((_weights(terminals), visible)),
            own_t,
        ),
        known_frauds(labels, np.asarray(terminal), np.asarray(customer), time),
    )


def features_of_one(
    customer: int,
    terminal: int,
    time: int,
    amount: float,
    customers: History,
    terminals: History,
    labels: LabelEvents | None = None,
) -> np.ndarray:
    """Online, one new transaction: `features_of_new` of a single row, shape (1, n) (stored or
    not, its own statistics are the same: only later rows would see it).

    The window statistics are worked out in plain Python over its customer's and terminal's few
    stored rows, in the same fixed-point arithmetic and row order as `_Timeline`, so the values are
    the same bit for bit (the tests hold the two paths equal); at this size numpy's cost per call
    outweighs the work. The features themselves are `assemble`'s, as everywhere.
    """
    return assemble(
        np.array([time], np.int64),
        np.array([amount], np.float64),
        _customer_stats_of_one(time, amount, _rows_of(customers, customer)),
        _terminal_stats_of_one(time, _rows_of(terminals, terminal)),
        known_frauds(labels, np.array([terminal]), np.array([customer]), np.array([time])),
    )


class _Rows(NamedTuple):
    """One group's stored rows seen by others (weight > 0), sorted by time, ties in the given
    order (as `_Timeline`'s stable sort): times and values, and the running totals of weights
    and fixed-point values (entry k: of the rows before the k-th)."""

    time: list[int]
    value: list[float]
    seen: list[int]
    total: list[int]


def _rows_of(history: History, group: int) -> _Rows:
    mine = np.flatnonzero((np.asarray(history.group) == group) & (_weights(history) > 0))
    time = np.asarray(history.time)[mine]
    order = np.argsort(time, kind="stable")
    value = np.asarray(history.value, np.float64)[mine][order]
    seen = np.cumsum(_weights(history)[mine][order])
    total = np.cumsum(np.rint(value * _FIXED_POINT).astype(np.int64))
    return _Rows(time[order].tolist(), value.tolist(), [0, *seen.tolist()], [0, *total.tolist()])


def _customer_stats_of_one(time: int, amount: float, rows: _Rows) -> CustomerStats:
    """`customer_stats` of a new row at `time` after the customer's stored `rows`."""
    times, seen, total = rows.time, rows.seen, rows.total
    end = bisect.bisect_right(times, time)  # a stored row at the same second comes first
    own = round(amount * _FIXED_POINT)  # as np.rint: the nearest, half to even
    count, amount_sum = (np.empty((1, len(CUSTOMER_STAT_WINDOWS))) for _ in range(2))
    for j, days in enumerate(CUSTOMER_STAT_WINDOWS):
        start = bisect.bisect_right(times, time - days * DAY)
        count[0, j] = seen[end] - seen[start] + 1
        amount_sum[0, j] = (total[end] - total[start] + own) / _FIXED_POINT
    # The recent rows, each against the mean of the rows up to it in its baseline window.
    recent = range(bisect.bisect_right(times, time - LARGE_TX_WINDOW_DAYS * DAY), end)
    starts = [
        bisect.bisect_right(times, times[k] - LARGE_AMOUNT_BASELINE_DAYS * DAY) for k in recent
    ]
    ratio = amount_ratio(
        np.array(rows.value[recent.start : recent.stop]),
        np.array([seen[k] - seen[i] + 1 for k, i in zip(recent, starts, strict=True)], float),
        np.array([total[k + 1] - total[i] for k, i in zip(recent, starts, strict=True)])
        / _FIXED_POINT,
    )
    large = float(np.count_nonzero(ratio > LARGE_AMOUNT_FACTOR))
    return CustomerStats(count, amount_sum, np.array([large]))


def _terminal_stats_of_one(time: int, rows: _Rows) -> TerminalStats:
    """`terminal_stats` of a new row at `time` after the terminal's stored `rows`."""
    times, seen, total = rows.time, rows.seen, rows.total
    delayed = time - TERMINAL_DELAY_DAYS * DAY
    right = bisect.bisect_right(times, delayed)
    count, frauds = (np.empty((1, len(TERMINAL_WINDOWS))) for _ in range(2))
    for j, days in enumerate(TERMINAL_WINDOWS):
        start = bisect.bisect_right(times, delayed - days * DAY)
        count[0, j] = seen[right] - seen[start]
        frauds[0, j] = (total[right] - total[start]) / _FIXED_POINT
    left = bisect.bisect_right(times, delayed - TERMINAL_FRAUD_RUN_DAYS * DAY)
    genuine = next((k for k in range(right - 1, -1, -1) if rows.value[k] <= 0), -1)
    run_start = left  # after the latest genuine one (and those at its second), within the window
    if right > left and genuine >= left:
        run_start = bisect.bisect_right(times, times[genuine])
    first = next((k for k in range(left, right) if rows.value[k] > 0), right)
    run_length = right - run_start
    return TerminalStats(
        count,
        frauds,
        np.array([float(run_length)]),
        np.array([(time - times[run_start]) / DAY if run_length > 0 else 0.0]),
        np.array([(time - times[first]) / DAY if first < right else 0.0]),
    )


def _weights(history: History) -> np.ndarray:
    if history.weight is None:
        return np.ones(len(history.time), np.int64)
    return np.asarray(history.weight, np.int64)
