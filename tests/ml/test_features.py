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
