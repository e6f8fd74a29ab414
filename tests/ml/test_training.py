"""The Handbook protocol: the same split as the Handbook, and a model that learns."""

import datetime as dt

import numpy as np
import pytest

from fraudapp.ml.data import History, read_history
from fraudapp.ml.training import Windows, run_protocol, split
from tests.conftest import HANDBOOK_RAW, handbook_file


def _history(frame) -> History:
    from fraudapp.ml.data import to_unix_seconds

    return History(
        time=to_unix_seconds(frame["TX_DATETIME"]),
        customer=frame["CUSTOMER_ID"].to_numpy(),
        terminal=frame["TERMINAL_ID"].to_numpy(),
        amount=frame["TX_AMOUNT"].to_numpy(),
        label=frame["TX_FRAUD"].to_numpy(),
    )


@pytest.mark.handbook
def test_split_matches_the_handbook_counts():
    _, history = read_history(handbook_file(HANDBOOK_RAW))
    train, test = split(history, Windows(dt.date(2018, 7, 25)))
    assert (len(train), int(history.label[train].sum())) == (67_240, 598)
    assert (len(test), int(history.label[test].sum())) == (58_264, 385)


@pytest.mark.slow  # DEFAULT_PARAMS: the one test of the production parameters without ../shared
def test_protocol_learns_on_simulated_history(simulated_frame):
    history = _history(simulated_frame)
    result = run_protocol(history, Windows(dt.date(2018, 4, 20), 7, 7, 7))
    assert result.train_rows > 1000 and result.test_rows > 1000
    fraud_rate = history.label[history.day >= history.day.max() - 6].mean()
    assert result.metrics["auc"] > 0.75
    assert result.metrics["ap"] > 4 * fraud_rate  # a random ranking scores the fraud rate
    assert 0 < result.threshold < 1
    assert set(result.reference) >= {"TX_AMOUNT", "score"}


def test_unlabelled_rows_stay_out_of_training(simulated_frame):
    history = _history(simulated_frame)
    history.label = history.label.copy()
    history.label[::2] = -1
    train, test = split(history, Windows(dt.date(2018, 4, 20)))
    assert np.all(history.label[train] >= 0) and np.all(history.label[test] >= 0)


def test_training_without_frauds_is_refused(simulated_frame):
    history = _history(simulated_frame)
    history.label = np.zeros_like(history.label)
    with pytest.raises(ValueError, match="both classes"):
        run_protocol(history, Windows(dt.date(2018, 4, 20)))
