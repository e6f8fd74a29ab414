"""The Handbook protocol: the same split as the Handbook, and a model that learns."""

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraudapp.ml.data import History, read_history
from fraudapp.ml.training import Windows, choose, fit, predict, quicker, run_protocol, split
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


QUICK = {"num_boost_round": 40}  # few rounds: the choice's logic, not LightGBM's quality


def test_choose_keeps_the_window_and_variant_with_the_best_validation_ap(simulated_frame):
    history = _history(simulated_frame)
    windows = Windows(dt.date(2018, 4, 22), 7, 7, 7)
    variants = {"default": {}, "tiny": {"num_leaves": 2, "learning_rate": 0.01}}
    choice = choose(history, windows, (3, 7, 14), variants, QUICK, random_state=0)

    assert [(t.train_days, t.variant) for t in choice.trials] == [
        (d, v) for d in (3, 7, 14) for v in ("default", "tiny")
    ]
    best = max(choice.trials, key=lambda t: t.validation_ap)
    assert (choice.windows.train_days, choice.variant) == (best.train_days, best.variant)
    assert choice.params == {**QUICK, **variants[best.variant]}
    # the kept windows end where the given ones do: the same test window
    assert choice.windows.as_dict()["test_start"] == windows.as_dict()["test_start"]
    assert choice.windows.as_dict()["train_end"] == windows.as_dict()["train_end"]
    # each trial's AP is a model trained on its days before the validation fold, scored on that
    # fold's rows (those of the given windows' length); the threshold is the kept one's best F1
    x, y = history.features(), (history.label == 1).astype(int)
    fold = windows.shifted(7)
    _, valid = split(history, fold)
    train, _ = split(history, fold.with_train_days(best.train_days))
    scores = predict(fit(x[train], y[train], choice.params, 0), x[valid])
    assert best.validation_ap == pytest.approx(average_precision_score(y[valid], scores))
    again = choose(history, windows, (3, 7, 14), variants, QUICK, random_state=0)
    assert again.trials == choice.trials
    assert choice.as_dict()["trials"][0] == {
        "train_days": 3,
        "variant": "default",
        "validation_ap": choice.trials[0].validation_ap,
    }


def test_choose_needs_a_window_it_can_judge(simulated_frame):
    history = _history(simulated_frame)
    history.label = np.zeros_like(history.label)
    with pytest.raises(ValueError, match="no training window"):
        choose(history, Windows(dt.date(2018, 4, 22)), (7,), {"default": {}}, QUICK)


def test_quick_trials_learn_faster_in_fewer_rounds():
    assert quicker({"num_leaves": 3}, 1) == {"num_leaves": 3}
    fast = quicker({"num_leaves": 3}, 4)
    assert fast == {"num_leaves": 3, "learning_rate": pytest.approx(0.12), "num_boost_round": 100}
    assert quicker({"num_boost_round": 10, "learning_rate": 0.1}, 4)["num_boost_round"] == 2
