"""Synthetic card transactions with labelled frauds, for development, tests and benchmarks.

The generator follows the process described in chapter 3.2 of the "Reproducible Machine
Learning for Credit Card Fraud Detection -- Practical Handbook" (written here from that
description, not from its code):

* customers and terminals sit at uniform random positions on a 100 x 100 grid; a customer
  uses the terminals within radius 5 of their position (and makes no transaction if none);
* each day, a customer makes Poisson(mean_nb_tx_per_day) transactions, around noon, with
  normally distributed amounts, at terminals chosen uniformly among those available;
* frauds come from three scenarios: (1) amounts above 220, (2) two terminals compromised
  each day for the next 28 days, (3) three customers compromised each day for the next
  14 days, a third of whose transactions get five times the amount.

The `new-pattern` scenario adds, from `drift_day` on, a fourth kind of fraud none of those
teaches: card testing. Each day a share of the customers (NEW_PATTERN_CUSTOMER_SHARE) have their
card stolen; for the next 7 days the thief makes a few extra transactions a day (Poisson, mean 3)
with it, at night (00:00-05:00), of small amounts (1 to 5), at the customer's usual terminals. The
features can express it (night, amount, the customer's number and mean amount of transactions of
the day) but a model trained before the drift scores it low. Those rows are drawn from a random
stream of their own, so the transactions before `drift_day` are exactly the Handbook scenario's.

`simulate` returns the transactions as a DataFrame with the columns of the Handbook's CSV
files; `run_simulation` also returns the profiles and the compromise draws behind them.
Everything is vectorised with numpy; only the daily compromise draws loop over days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GRID_SIZE = 100.0
RADIUS = 5.0
SECONDS_PER_DAY = 86_400
TIME_MEAN = SECONDS_PER_DAY / 2
TIME_STD = 20_000.0
MIN_AMOUNT = 0.01

FRAUD_AMOUNT_THRESHOLD = 220.0
TERMINALS_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMERS_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
COMPROMISED_AMOUNT_FACTOR = 5.0

SCENARIOS = ("handbook", "new-pattern")
NEW_PATTERN_CUSTOMER_SHARE = 0.002  # of the customers, compromised each day from the drift day
NEW_PATTERN_DAYS = 7
NEW_PATTERN_TX_PER_DAY = 3.0
NEW_PATTERN_HOURS = (0, 5)
NEW_PATTERN_AMOUNTS = (1.0, 5.0)
NEW_PATTERN_CODE = 4

COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)

_NEIGHBOUR_CHUNK = 512  # customers per block of the customer x terminal distance matrix


@dataclass(frozen=True)
class Profiles:
    """Customer and terminal profiles, with each customer's available terminals (CSR form).

    The terminals available to customer `c` are
    `terminal_indices[terminal_indptr[c]:terminal_indptr[c + 1]]`.
    """

    customer_xy: np.ndarray  # (n_customers, 2)
    mean_amount: np.ndarray  # (n_customers,)
    std_amount: np.ndarray  # (n_customers,)
    mean_nb_tx_per_day: np.ndarray  # (n_customers,)
    terminal_xy: np.ndarray  # (n_terminals, 2)
    terminal_indptr: np.ndarray  # (n_customers + 1,)
    terminal_indices: np.ndarray  # (sum of available terminals,)

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return len(self.customer_xy)

    @property
    def n_terminals(self) -> int:
        """Number of terminals."""
        return len(self.terminal_xy)

    @property
    def n_available(self) -> np.ndarray:
        """Number of terminals available to each customer."""
        return np.diff(self.terminal_indptr)

    def available_terminals(self, customer_id: int) -> np.ndarray:
        """TERMINAL_IDs the customer may use (those within the radius), ascending."""
        start, stop = self.terminal_indptr[customer_id], self.terminal_indptr[customer_id + 1]
        return self.terminal_indices[start:stop]


@dataclass(frozen=True)
class Simulation:
    """A simulation's transactions with the profiles and compromise draws that produced them.

    Row `d` of `compromised_terminals` (`compromised_customers`) holds the terminals
    (customers) that became compromised on day `d`.
    """

    profiles: Profiles
    compromised_terminals: np.ndarray  # (n_days, 2)
    compromised_customers: np.ndarray  # (n_days, 3)
    transactions: pd.DataFrame


def simulate(
    n_customers: int = 500,
    n_terminals: int = 1000,
    start_date: str = "2018-04-01",
    n_days: int = 60,
    random_state: int = 0,
    scenario: str = "handbook",
    drift_day: int | None = None,
) -> pd.DataFrame:
    """Synthetic labelled transactions in the Handbook's CSV layout, sorted by time.

    Deterministic for a given `random_state`. See the module docstring for the process and the
    scenarios (`new-pattern` starts on day `drift_day`, default half-way).
    """
    return run_simulation(
        n_customers, n_terminals, start_date, n_days, random_state, scenario, drift_day
    ).transactions


def with_text_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """The same transactions with customers and terminals named as card tokens and merchant ids
    (`cus_000042`, `MID-00042`: one text per number), as a bank's systems would send them."""
    return frame.assign(
        CUSTOMER_ID=[f"cus_{c:06d}" for c in frame["CUSTOMER_ID"].tolist()],
        TERMINAL_ID=[f"MID-{t:05d}" for t in frame["TERMINAL_ID"].tolist()],
    )


def run_simulation(
    n_customers: int = 500,
    n_terminals: int = 1000,
    start_date: str = "2018-04-01",
    n_days: int = 60,
    random_state: int = 0,
    scenario: str = "handbook",
    drift_day: int | None = None,
) -> Simulation:
    """Like `simulate`, but also returns the profiles and compromise draws (for inspection)."""
    _check_arguments(n_customers, n_terminals, n_days)
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}, got {scenario!r}")
    start = _start_timestamp(start_date)
    rng = np.random.default_rng(random_state)
    profiles = make_profiles(n_customers, n_terminals, rng)
    tx = _sort_by_time(_draw_transactions(profiles, n_days, rng))
    terminals = draw_compromised(n_terminals, TERMINALS_PER_DAY, n_days, rng)
    customers = draw_compromised(n_customers, CUSTOMERS_PER_DAY, n_days, rng)
    fraud, code = _label_frauds(tx, terminals, customers, n_terminals, n_customers, n_days, rng)
    tx["fraud"], tx["scenario"] = fraud, code
    if scenario == "new-pattern":
        first = n_days // 2 if drift_day is None else drift_day
        extra = new_pattern_transactions(profiles, first, n_days, random_state)
        tx = _sort_by_time({name: np.concatenate([tx[name], extra[name]]) for name in tx})
    frame = _to_frame(tx, tx["fraud"], tx["scenario"], start)
    return Simulation(profiles, terminals, customers, frame)


def _check_arguments(n_customers: int, n_terminals: int, n_days: int) -> None:
    for name, value in (("n_customers", n_customers), ("n_terminals", n_terminals)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if n_days < 1:
        raise ValueError(f"n_days must be at least 1, got {n_days}")


def _start_timestamp(start_date: str) -> np.datetime64:
    start = pd.Timestamp(start_date)
    if start.tzinfo is not None:
        raise ValueError(f"start_date must be naive, got {start_date!r}")
    return start.to_datetime64().astype("datetime64[ns]")


# --- profiles ------------------------------------------------------------------------------


def make_profiles(n_customers: int, n_terminals: int, rng: np.random.Generator) -> Profiles:
    """Draw customer and terminal profiles and link each customer to nearby terminals."""
    customer_xy = rng.uniform(0, GRID_SIZE, size=(n_customers, 2))
    mean_amount = rng.uniform(5, 100, size=n_customers)
    mean_nb_tx_per_day = rng.uniform(0, 4, size=n_customers)
    terminal_xy = rng.uniform(0, GRID_SIZE, size=(n_terminals, 2))
    indptr, indices = terminals_within(customer_xy, terminal_xy, RADIUS)
    return Profiles(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=mean_amount / 2,
        mean_nb_tx_per_day=mean_nb_tx_per_day,
        terminal_xy=terminal_xy,
        terminal_indptr=indptr,
        terminal_indices=indices,
    )


def terminals_within(
    customer_xy: np.ndarray, terminal_xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each customer, the terminals strictly closer than `radius`, as CSR (indptr, indices)."""
    rows, cols = [], []
    for start in range(0, len(customer_xy), _NEIGHBOUR_CHUNK):
        block = customer_xy[start : start + _NEIGHBOUR_CHUNK]
        dx = block[:, 0, None] - terminal_xy[None, :, 0]
        dy = block[:, 1, None] - terminal_xy[None, :, 1]
        squared = dx * dx + dy * dy
        row, col = np.nonzero(squared < radius**2)
        rows.append(row + start)
        cols.append(col)
    row = np.concatenate(rows).astype(np.int64)
    indptr = np.zeros(len(customer_xy) + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=len(customer_xy)), out=indptr[1:])
    return indptr, np.concatenate(cols).astype(np.int64)


# --- transactions --------------------------------------------------------------------------


def _draw_transactions(
    profiles: Profiles, n_days: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Unlabelled transactions (customer, terminal, day, seconds, amount), in draw order."""
    customer, day = _draw_counts(profiles, n_days, rng)
    time_of_day = np.floor(rng.normal(TIME_MEAN, TIME_STD, size=len(customer))).astype(np.int64)
    keep = (time_of_day >= 0) & (time_of_day < SECONDS_PER_DAY)
    customer, day, time_of_day = customer[keep], day[keep], time_of_day[keep]
    return {
        "customer": customer,
        "terminal": _draw_terminals(profiles, customer, rng),
        "day": day,
        "seconds": day * SECONDS_PER_DAY + time_of_day,
        "amount": _draw_amounts(profiles, customer, rng),
    }


def _draw_counts(
    profiles: Profiles, n_days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One (customer, day) pair per transaction drawn, Poisson per customer and day."""
    counts = rng.poisson(profiles.mean_nb_tx_per_day, size=(n_days, profiles.n_customers))
    counts[:, profiles.n_available == 0] = 0
    cell = np.repeat(np.arange(counts.size, dtype=np.int64), counts.ravel())
    return cell % profiles.n_customers, cell // profiles.n_customers


def _draw_amounts(profiles: Profiles, customer: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normal amounts; negative draws replaced by uniform(0, 2 * mean); cents, at least 0.01."""
    mean = profiles.mean_amount[customer]
    amount = rng.normal(mean, profiles.std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, 2 * mean[negative])
    return np.maximum(np.round(amount, 2), MIN_AMOUNT)


def _draw_terminals(
    profiles: Profiles, customer: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A terminal drawn uniformly among each transaction's customer's available terminals."""
    offset = rng.integers(0, profiles.n_available[customer])
    return profiles.terminal_indices[profiles.terminal_indptr[customer] + offset]


def _sort_by_time(tx: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The transactions ordered by time, ties by customer (then draw order)."""
    order = np.lexsort((tx["customer"], tx["seconds"]))
    return {name: values[order] for name, values in tx.items()}


# --- frauds --------------------------------------------------------------------------------


def draw_compromised(
    n_items: int, per_day: int, n_days: int, rng: np.random.Generator
) -> np.ndarray:
    """For each day, `per_day` distinct items (terminals or customers) drawn at random."""
    size = min(per_day, n_items)
    draws = [rng.choice(n_items, size=size, replace=False) for _ in range(n_days)]
    return np.asarray(draws, dtype=np.int64).reshape(n_days, size)


def _label_frauds(
    tx: dict[str, np.ndarray],
    terminals: np.ndarray,
    customers: np.ndarray,
    n_terminals: int,
    n_customers: int,
    n_days: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """TX_FRAUD and TX_FRAUD_SCENARIO; scenario 3 also multiplies its amounts in `tx`."""
    masks = (
        tx["amount"] > FRAUD_AMOUNT_THRESHOLD,
        _compromised_terminal_mask(tx, terminals, n_terminals, n_days),
        _compromised_customer_mask(tx, customers, n_customers, rng),
    )
    fraud = np.zeros(len(tx["amount"]), dtype=np.int64)
    scenario = np.zeros_like(fraud)
    for code, mask in enumerate(masks, start=1):
        fraud[mask] = 1
        scenario[mask] = code
    tx["amount"][masks[2]] = np.round(tx["amount"][masks[2]] * COMPROMISED_AMOUNT_FACTOR, 2)
    return fraud, scenario


def _compromised_terminal_mask(
    tx: dict[str, np.ndarray], terminals: np.ndarray, n_terminals: int, n_days: int
) -> np.ndarray:
    """Scenario 2: transactions at a terminal within 28 days of its compromise."""
    compromised = np.zeros((n_terminals, n_days), dtype=bool)
    for day, drawn in enumerate(terminals):
        compromised[drawn, day : day + TERMINAL_COMPROMISE_DAYS] = True
    return compromised[tx["terminal"], tx["day"]]


def _compromised_customer_mask(
    tx: dict[str, np.ndarray], customers: np.ndarray, n_customers: int, rng: np.random.Generator
) -> np.ndarray:
    """Scenario 3: for each day's draw, a random third of those customers' next-14-day rows."""
    order, bounds = _group_rows(tx["customer"], n_customers)
    mask = np.zeros(len(tx["customer"]), dtype=bool)
    for day, drawn in enumerate(customers):
        windows = [_rows_in_window(order[bounds[c] : bounds[c + 1]], tx["day"], day) for c in drawn]
        rows = np.concatenate(windows)
        if len(rows) >= 3:
            mask[rng.choice(rows, size=len(rows) // 3, replace=False)] = True
    return mask


def _group_rows(group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices sorted by group (stable) and each group's bounds in them.

    The rows of group `g` are `order[bounds[g] : bounds[g + 1]]`, in their original order.
    """
    order = np.argsort(group, kind="stable")
    return order, np.searchsorted(group[order], np.arange(n_groups + 1))


def _rows_in_window(rows: np.ndarray, day: np.ndarray, first_day: int) -> np.ndarray:
    """The rows (in time order) whose day falls in [first_day, first_day + 14)."""
    lo, hi = np.searchsorted(day[rows], [first_day, first_day + CUSTOMER_COMPROMISE_DAYS])
    return rows[lo:hi]


def new_pattern_transactions(
    profiles: Profiles, first_day: int, n_days: int, random_state: int
) -> dict[str, np.ndarray]:
    """The card-testing frauds of the new-pattern scenario, from `first_day` (see the module
    docstring), from a random stream seeded by `random_state` and separate from the others."""
    rng = np.random.default_rng([random_state, NEW_PATTERN_CODE])
    per_day = max(1, round(NEW_PATTERN_CUSTOMER_SHARE * profiles.n_customers))
    able = np.flatnonzero(profiles.n_available > 0)
    customer, day = [], []
    for stolen_on in range(max(first_day, 0), n_days):
        for c in rng.choice(able, size=min(per_day, len(able)), replace=False):
            days = np.arange(stolen_on, min(stolen_on + NEW_PATTERN_DAYS, n_days))
            counts = rng.poisson(NEW_PATTERN_TX_PER_DAY, size=len(days))
            customer.append(np.full(counts.sum(), c))
            day.append(np.repeat(days, counts))
    customer = np.concatenate(customer or [[]]).astype(np.int64)
    day = np.concatenate(day or [[]]).astype(np.int64)
    lo, hi = (hours * 3600 for hours in NEW_PATTERN_HOURS)
    amount = np.round(rng.uniform(*NEW_PATTERN_AMOUNTS, size=len(customer)), 2)
    return {
        "customer": customer,
        "terminal": _draw_terminals(profiles, customer, rng),
        "day": day,
        "seconds": day * SECONDS_PER_DAY + rng.integers(lo, hi, size=len(customer)),
        "amount": amount,
        "fraud": np.ones(len(customer), dtype=np.int64),
        "scenario": np.full(len(customer), NEW_PATTERN_CODE, dtype=np.int64),
    }


# --- output --------------------------------------------------------------------------------


def _to_frame(
    tx: dict[str, np.ndarray], fraud: np.ndarray, scenario: np.ndarray, start: np.datetime64
) -> pd.DataFrame:
    """The Handbook CSV columns, with TRANSACTION_ID numbering rows in time order."""
    seconds = tx["seconds"]
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(len(seconds), dtype=np.int64),
            "TX_DATETIME": start + seconds.astype("timedelta64[s]"),
            "CUSTOMER_ID": tx["customer"],
            "TERMINAL_ID": tx["terminal"],
            "TX_AMOUNT": tx["amount"].astype(np.float64),
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": tx["day"],
            "TX_FRAUD": fraud,
            "TX_FRAUD_SCENARIO": scenario,
        },
        columns=list(COLUMNS),
    )
