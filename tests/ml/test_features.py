"""Features: both paths reproduce the Handbook's transformed file, and agree with each other."""

import numpy as np
import pandas as pd
import pytest

from fraudapp.ml import features
from fraudapp.ml.data import to_unix_seconds
from tests.conftest import HANDBOOK_TRANSFORMED, handbook_file


def _same_second_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose customer has another transaction in the same second: the Handbook's unstable sort
    orders such pairs arbitrarily, so their customer windows are not comparable row by row."""
    return frame.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False).to_numpy()


@pytest.mark.slow
@pytest.mark.handbook
def test_offline_features_reproduce_the_handbook_file():
    frame = pd.read_csv(handbook_file(HANDBOOK_TRANSFORMED))
    x = features.compute_features(
        frame["CUSTOMER_ID"].to_numpy(),
        frame["TERMINAL_ID"].to_numpy(),
        to_unix_seconds(frame["TX_DATETIME"]),
        frame["TX_AMOUNT"].to_numpy(),
        frame["TX_FRAUD"].to_numpy(),
    )
    comparable = ~_same_second_rows(frame)
    assert comparable.sum() > 1_466_000
    for j, name in enumerate(features.HANDBOOK_FEATURES):
        np.testing.assert_allclose(
            x[comparable, j], frame.loc[comparable, name], rtol=1e-7, atol=1e-6, err_msg=name
        )


def test_online_equals_offline_on_simulated_history(simulated_frame):
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = frame["CUSTOMER_ID"].to_numpy(), frame["TERMINAL_ID"].to_numpy()
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    offline = features.compute_features(customer, terminal, time, amount, fraud)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(frame), size=300, replace=False):
        before = np.arange(len(frame)) < i
        c = before & (customer == customer[i])
        t = before & (terminal == terminal[i])
        online = _one(time[i], amount[i], (time[c], amount[c]), (time[t], fraud[t]))
        np.testing.assert_allclose(online, offline[i], rtol=1e-7, atol=1e-6)


def _one(time, amount, customer_rows, terminal_rows) -> np.ndarray:
    """The features of one new transaction of customer 0 at terminal 0 from their stored rows."""
    customers = features.History(np.zeros(len(customer_rows[0])), *customer_rows)
    terminals = features.History(np.zeros(len(terminal_rows[0])), *terminal_rows)
    return features.features_of_new([0], [0], [time], [amount], [False], customers, terminals)[0]


def test_a_batch_equals_its_rows_one_by_one(simulated_frame):
    """New rows scored at once, in time order: each sees the stored rows and the visible new rows
    before it (the consented ones), exactly as when sent one by one."""
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = frame["CUSTOMER_ID"].to_numpy(), frame["TERMINAL_ID"].to_numpy()
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    stored, n = len(frame) - 3_000, 3_000
    new = slice(stored, None)
    visible = np.random.default_rng(1).random(n) < 0.5
    batch = features.features_of_new(
        customer[new],
        terminal[new],
        time[new],
        amount[new],
        visible,
        features.History(customer[:stored], time[:stored], amount[:stored]),
        features.History(terminal[:stored], time[:stored], fraud[:stored]),
    )
    for k in range(0, n, 29):
        seen = np.concatenate((np.arange(stored), stored + np.flatnonzero(visible[:k])))
        c, t = (
            seen[customer[seen] == customer[stored + k]],
            seen[terminal[seen] == terminal[stored + k]],
        )
        t_fraud = np.where(t < stored, fraud[t], 0.0)  # new rows have no label yet
        alone = _one(time[stored + k], amount[stored + k], (time[c], amount[c]), (time[t], t_fraud))
        np.testing.assert_allclose(batch[k], alone, rtol=0, atol=1e-9)


def test_windows_follow_the_definitions():
    day = features.DAY
    t0 = 1_600_000_000 - 1_600_000_000 % day  # midnight
    time = np.array([t0, t0 + 3600, t0 + day, t0 + 8 * day + 3600, t0 + 9 * day])
    customer = np.zeros(5, dtype=np.int64)
    amount = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    counts, sums = features.window_sums(customer, time, amount, features.CUSTOMER_WINDOWS)
    # 1-day window (t-1d, t]: the row at t0+1d sees t0+3600 and itself, not t0 (exactly 1 day back)
    assert counts[2, 0] == 2 and sums[2, 0] == 50.0
    assert counts[4, 1] == 2  # 7 days back from t0+9d: rows at t0+8d+1h and itself
    fraud = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    t_counts, t_frauds = features.window_sums(
        customer, time, fraud, features.TERMINAL_WINDOWS, features.TERMINAL_DELAY_DAYS
    )
    # the row at t0+8d+1h looks at (t-8d, t-7d] = (t0+1h, t0+1d+1h]: only the row at t0+1d
    assert t_counts[3, 0] == 1 and t_frauds[3, 0] == 0
    # the row at t0+9d looks at (t0+1d, t0+2d] for 1 day: nothing; 30 days: every row up to t0+2d
    assert t_counts[4, 0] == 0 and t_counts[4, 2] == 3 and t_frauds[4, 2] == 1


def test_calendar_features():
    saturday_night = 1_700_000_000 - 1_700_000_000 % features.DAY + 4 * features.DAY + 3 * 3600
    x = _one(saturday_night, 12.5, ([], []), ([], []))
    names = dict(zip(features.FEATURES, x, strict=True))
    assert names["TX_DURING_WEEKEND"] == 1.0  # 2023-11-18 was a Saturday
    assert names["TX_DURING_NIGHT"] == 1.0
    assert names["CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 1.0
    assert names["CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW"] == 12.5
    assert names["TERMINAL_ID_RISK_30DAY_WINDOW"] == 0.0


def test_every_feature_is_described():
    assert set(features.DESCRIPTIONS) == set(features.FEATURES)
    assert len(set(features.FEATURES)) == len(features.FEATURES)
    assert features.FEATURES[:15] == features.HANDBOOK_FEATURES


def _labels_given_later(time, fraud, rng, share=0.5) -> features.LabelEvents:
    """Feedback on a share of the rows, known 0.5-3 days after each (frauds as frauds); a tenth of
    those corrected later (the opposite label), some by an analyst, some by a lower-ranked user."""
    rows = np.flatnonzero(rng.random(len(time)) < share)
    known = time[rows] + rng.integers(DAY // 2, 3 * DAY, len(rows))
    label, rank = (fraud[rows] > 0).astype(np.int64), np.ones(len(rows), np.int64)
    fixed = rows[: len(rows) // 10]
    fixed_known = known[: len(fixed)] + rng.integers(0, 2 * DAY, len(fixed))
    fixed_rank = rng.integers(0, 3, len(fixed))  # a lower-ranked correction changes nothing
    order = np.argsort(np.concatenate((known, fixed_known)), kind="stable")  # the order given
    rows = np.concatenate((rows, fixed))[order]
    return features.LabelEvents(
        rows,
        np.zeros(len(rows), np.int64),  # terminal and customer: filled in by `_of`
        np.zeros(len(rows), np.int64),
        time[rows],
        np.concatenate((known, fixed_known))[order],
        np.concatenate((label, 1 - label[: len(fixed)]))[order],
        np.concatenate((rank, fixed_rank))[order],
    )


def _of(events: features.LabelEvents, customer, terminal, keep=None) -> features.LabelEvents:
    """The events with their transactions' terminal and customer; only those `keep` selects."""
    events = events._replace(
        terminal=terminal[events.transaction], customer=customer[events.transaction]
    )
    if keep is None:
        return events
    return features.LabelEvents(*(column[keep] for column in events))


DAY = features.DAY
KNOWN = [features.FEATURES.index(name) for name in features.KNOWN_FRAUD_FEATURES]


def test_known_frauds_count_labels_from_the_moment_they_are_known():
    t0 = 1_600_000_000
    # one transaction of terminal 5 / customer 9 at t0: a user says fraud 1 day later, an analyst
    # corrects it to genuine 3 days later; a user's later "fraud" cannot outrank the analyst
    events = features.LabelEvents(
        np.array([0, 0, 0]),
        np.array([5, 5, 5]),
        np.array([9, 9, 9]),
        np.array([t0, t0, t0]),
        np.array([t0 + DAY, t0 + 3 * DAY, t0 + 4 * DAY]),
        np.array([1, 0, 1]),
        np.array([1, 2, 1]),
    )
    at = t0 + np.array([0, DAY - 1, DAY, 2 * DAY, 3 * DAY, 5 * DAY])
    counts = features.known_frauds(events, np.full(6, 5), np.full(6, 9), at)
    assert counts[:, 0].tolist() == [0, 0, 1, 1, 0, 0]  # known at t0+1d, corrected at t0+3d
    assert counts[:, 1].tolist() == counts[:, 0].tolist()
    assert features.known_frauds(events, np.full(6, 6), np.full(6, 8), at).sum() == 0
    # a fraud known at once counts only inside (t0, t0 + 7 days): not for itself, not after
    quick = events._replace(known=np.array([t0, t0, t0]), fraud=np.array([1, 1, 1]))
    at = t0 + np.array([0, 1, 7 * DAY - 1, 7 * DAY])
    assert features.known_frauds(quick, np.full(4, 5), np.full(4, 9), at)[:, 0].tolist() == [
        0,
        1,
        1,
        0,
    ]
    # labels of one transaction known in the same second: the one given later wins
    tie = events._replace(known=np.array([t0 + DAY] * 3), rank=np.array([1, 1, 1]))
    assert features.known_frauds(tie, [5], [9], [t0 + DAY])[0, 0] == 1
    assert features.known_frauds(tie, [5], [9], [t0 + 2 * DAY])[0, 0] == 1
    # imported labels are known at the delay: no known fraud in the delay period
    imported = events._replace(known=np.array([t0 + 7 * DAY] * 3), rank=np.array([0, 0, 0]))
    assert features.known_frauds(imported, [5], [9], [t0 + 7 * DAY])[0, 0] == 0


def test_online_equals_offline_with_labels_given_at_various_times(simulated_frame):
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = frame["CUSTOMER_ID"].to_numpy(), frame["TERMINAL_ID"].to_numpy()
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    rng = np.random.default_rng(3)
    events = _of(_labels_given_later(time, fraud, rng), customer, terminal)
    offline = features.compute_features(customer, terminal, time, amount, fraud, labels=events)
    assert (offline[:, KNOWN] > 0).mean(axis=0).min() > 0.01  # the features do see labels
    for i in rng.choice(len(frame), size=200, replace=False):
        before = np.arange(len(frame)) < i
        c = before & (customer == customer[i])
        t = before & (terminal == terminal[i])
        customers = features.History(customer[c], time[c], amount[c])
        terminals = features.History(terminal[t], time[t], fraud[t])
        # what the database gives: labels of stored rows, known by the transaction's time
        stored = before[events.transaction] & (events.known <= time[i])
        online = features.features_of_new(
            [customer[i]],
            [terminal[i]],
            [time[i]],
            [amount[i]],
            [False],
            customers,
            terminals,
            features.LabelEvents(*(column[stored] for column in events)),
        )[0]
        np.testing.assert_allclose(online, offline[i], rtol=1e-7, atol=1e-6)


def test_a_batch_sees_each_label_from_its_own_time(simulated_frame):
    """New rows scored at once while labels of stored rows become known between them: each row
    counts those known by its own time, as when sent one by one."""
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = frame["CUSTOMER_ID"].to_numpy(), frame["TERMINAL_ID"].to_numpy()
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    stored, n = len(frame) - 3_000, 3_000
    new = slice(stored, None)
    events = _of(_labels_given_later(time, fraud, np.random.default_rng(4)), customer, terminal)
    events = features.LabelEvents(*(column[events.transaction < stored] for column in events))
    assert (events.known > time[stored]).sum() > 100  # many become known during the batch
    batch = features.features_of_new(
        customer[new],
        terminal[new],
        time[new],
        amount[new],
        np.zeros(n, bool),
        features.History(customer[:stored], time[:stored], amount[:stored]),
        features.History(terminal[:stored], time[:stored], fraud[:stored]),
        events,
    )
    assert (batch[:, KNOWN] > 0).any(axis=0).all()
    for k in range(0, n, 37):
        i = stored + k
        c, t = (
            np.flatnonzero(customer[:stored] == customer[i]),
            np.flatnonzero(terminal[:stored] == terminal[i]),
        )
        known = features.LabelEvents(*(column[events.known <= time[i]] for column in events))
        alone = features.features_of_new(
            [customer[i]],
            [terminal[i]],
            [time[i]],
            [amount[i]],
            [False],
            features.History(customer[c], time[c], amount[c]),
            features.History(terminal[t], time[t], fraud[t]),
            known,
        )[0]
        np.testing.assert_allclose(batch[k], alone, rtol=0, atol=1e-9)


def test_a_label_given_after_a_transaction_never_changes_its_training_features(simulated_frame):
    """No leakage: labels (and corrections) that become known after a transaction leave its whole
    feature row as it was; they count for the transactions after them."""
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = frame["CUSTOMER_ID"].to_numpy(), frame["TERMINAL_ID"].to_numpy()
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    rng = np.random.default_rng(5)
    events = _of(_labels_given_later(time, fraud, rng), customer, terminal)
    before = features.compute_features(customer, terminal, time, amount, fraud, labels=events)
    # every transaction of the delay period before a cut gets a late label, then a correction:
    # frauds said genuine and genuine ones said fraud, by an analyst, both known after the cut
    cut = int(np.median(time))
    recent = np.flatnonzero((time < cut) & (time > cut - 7 * DAY))
    late = features.LabelEvents(
        np.concatenate((recent, recent)),
        np.concatenate((terminal[recent], terminal[recent])),
        np.concatenate((customer[recent], customer[recent])),
        np.concatenate((time[recent], time[recent])),
        np.concatenate((np.full(len(recent), cut + 1), np.full(len(recent), cut + DAY))),
        np.concatenate(((fraud[recent] == 0), (fraud[recent] > 0))).astype(np.int64),
        np.full(2 * len(recent), 2),
    )
    both = features.LabelEvents(*(np.concatenate(pair) for pair in zip(events, late, strict=True)))
    after = features.compute_features(customer, terminal, time, amount, fraud, labels=both)
    untouched = time <= cut
    np.testing.assert_array_equal(after[untouched], before[untouched])
    # ... while transactions after the cut see them (the first, then the correction)
    changed = ~np.all(after == before, axis=1)
    assert changed[~untouched].sum() > 100
    assert not changed[untouched].any()


def test_the_one_row_path_equals_the_vectorized_one(simulated_frame):
    """`features_of_one` (a single request) gives `features_of_new`'s values bit for bit: over
    stored rows of many customers and terminals, rows at the same second, summary rows (weights),
    rows no one sees (weight 0) and labels known at various times."""
    frame = simulated_frame
    time = to_unix_seconds(frame["TX_DATETIME"])
    customer, terminal = (frame[c].to_numpy().copy() for c in ("CUSTOMER_ID", "TERMINAL_ID"))
    amount, fraud = frame["TX_AMOUNT"].to_numpy(), frame["TX_FRAUD"].to_numpy().astype(float)
    for column in (time, customer, terminal):  # ties: every 5th row at the second of the one
        column[1::5] = column[:-1:5]  # before it, same customer and terminal
    rng = np.random.default_rng(5)
    events = _of(_labels_given_later(time, fraud, rng), customer, terminal)
    weight = np.where(rng.random(len(time)) < 0.05, 0, 1)
    weight[::50] = rng.integers(2, 9, len(weight[::50]))  # summaries of older rows
    rows = []
    for i in rng.choice(np.arange(len(time) // 2, len(time)), size=400, replace=False):
        before = np.arange(len(time)) < i
        customers = features.History(customer[before], time[before], amount[before], weight[before])
        terminals = features.History(terminal[before], time[before], fraud[before])
        known = features.LabelEvents(
            *(column[before[events.transaction] & (events.known <= time[i])] for column in events)
        )
        one = features.features_of_one(
            customer[i], terminal[i], time[i], amount[i], customers, terminals, known
        )
        vectorized = features.features_of_new(
            [customer[i]],
            [terminal[i]],
            [time[i]],
            [amount[i]],
            [False],
            customers,
            terminals,
            known,
        )
        np.testing.assert_array_equal(one, vectorized)
        rows.append(one[0])
    exercised = ["CUSTOMER_ID_NB_LARGE_TX_7DAY_WINDOW", "TERMINAL_ID_FRAUD_RUN_LENGTH"]
    exercised += ["TERMINAL_ID_FIRST_FRAUD_AGE_DAYS", *features.KNOWN_FRAUD_FEATURES]
    columns = [features.FEATURES.index(name) for name in exercised]
    assert (np.array(rows)[:, columns] > 0).any(axis=0).all()
