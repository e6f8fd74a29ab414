"""Behaviour of the synthetic transaction generator (fraudapp.ml.simulate)."""

import numpy as np
import pandas as pd
import pytest

from fraudapp.ml.simulate import (
    COLUMNS,
    SECONDS_PER_DAY,
    run_simulation,
    simulate,
    terminals_within,
)

N_DAYS = 60
RADIUS = 5.0  # the Handbook's value, not imported: the tests pin it


@pytest.fixture(scope="module")
def sim():
    return run_simulation(n_customers=500, n_terminals=1000, n_days=N_DAYS, random_state=7)


@pytest.fixture(scope="module")
def tx(sim):
    return sim.transactions


def test_columns_and_dtypes(tx):
    assert tuple(tx.columns) == COLUMNS
    assert len(tx) > 10_000
    assert pd.api.types.is_datetime64_dtype(tx["TX_DATETIME"])
    assert tx["TX_DATETIME"].dt.tz is None
    assert tx["TX_AMOUNT"].dtype == np.float64
    for name in set(COLUMNS) - {"TX_DATETIME", "TX_AMOUNT"}:
        assert pd.api.types.is_integer_dtype(tx[name]), name
    assert set(tx["TX_FRAUD"].unique()) == {0, 1}
    assert set(tx["TX_FRAUD_SCENARIO"].unique()) == {0, 1, 2, 3}
    assert ((tx["TX_FRAUD"] == 1) == (tx["TX_FRAUD_SCENARIO"] > 0)).all()


def test_rows_in_time_order_with_consistent_times(tx):
    assert (tx["TRANSACTION_ID"].to_numpy() == np.arange(len(tx))).all()
    assert tx["TX_DATETIME"].is_monotonic_increasing
    seconds = tx["TX_TIME_SECONDS"]
    expected = pd.Timestamp("2018-04-01") + pd.to_timedelta(seconds, unit="s")
    assert (tx["TX_DATETIME"] == expected).all()
    assert (tx["TX_TIME_DAYS"] == seconds // SECONDS_PER_DAY).all()


def test_times_within_the_simulated_days_and_around_noon(tx):
    assert tx["TX_TIME_SECONDS"].min() >= 0
    assert tx["TX_TIME_SECONDS"].max() < N_DAYS * SECONDS_PER_DAY
    assert set(tx["TX_TIME_DAYS"].unique()) == set(range(N_DAYS))
    time_of_day = tx["TX_TIME_SECONDS"] % SECONDS_PER_DAY
    assert abs(time_of_day.mean() - SECONDS_PER_DAY / 2) < 500
    assert 17_000 < time_of_day.std() < 20_000  # normal(std 20000) truncated to the day


def test_start_date_shifts_datetimes_only():
    a = simulate(n_customers=50, n_terminals=100, n_days=5, random_state=1)
    b = simulate(n_customers=50, n_terminals=100, n_days=5, random_state=1, start_date="2020-01-01")
    assert (
        b["TX_DATETIME"] - a["TX_DATETIME"]
        == pd.Timestamp("2020-01-01") - pd.Timestamp("2018-04-01")
    ).all()
    pd.testing.assert_frame_equal(a.drop(columns="TX_DATETIME"), b.drop(columns="TX_DATETIME"))


def test_deterministic_for_a_seed():
    a = simulate(n_customers=200, n_terminals=400, n_days=20, random_state=3)
    b = simulate(n_customers=200, n_terminals=400, n_days=20, random_state=3)
    c = simulate(n_customers=200, n_terminals=400, n_days=20, random_state=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_amounts_positive_in_cents(tx):
    amount = tx["TX_AMOUNT"].to_numpy()
    assert (amount > 0).all()
    assert np.allclose(amount * 100, np.round(amount * 100))


def test_amounts_follow_customer_profiles(sim, tx):
    genuine = tx[tx["TX_FRAUD_SCENARIO"] != 3]
    per_customer = genuine.groupby("CUSTOMER_ID")["TX_AMOUNT"].mean()
    profile_mean = sim.profiles.mean_amount[per_customer.index]
    assert np.corrcoef(per_customer, profile_mean)[0, 1] > 0.95


def test_transaction_counts_follow_customer_profiles(sim, tx):
    profiles = sim.profiles
    counts = np.bincount(tx["CUSTOMER_ID"], minlength=profiles.n_customers)
    active = profiles.n_available > 0
    expected = profiles.mean_nb_tx_per_day[active] * N_DAYS
    assert np.corrcoef(counts[active], expected)[0, 1] > 0.95
    assert 0.9 < counts.sum() / expected.sum() < 1.0  # some times fall outside the day
    assert (counts[~active] == 0).all()


def test_customers_only_use_terminals_within_radius(sim, tx):
    profiles = sim.profiles
    customer_xy = profiles.customer_xy[tx["CUSTOMER_ID"]]
    terminal_xy = profiles.terminal_xy[tx["TERMINAL_ID"]]
    assert (np.linalg.norm(customer_xy - terminal_xy, axis=1) < RADIUS).all()
    # and they spread over their available terminals, not just one
    used = tx.groupby("CUSTOMER_ID")["TERMINAL_ID"].nunique()
    available = profiles.n_available[used.index]
    busy = tx["CUSTOMER_ID"].value_counts()[used.index] > 20 * available
    assert (used[busy] == available[busy]).all()


def test_available_terminals_match_brute_force(sim):
    profiles = sim.profiles
    assert profiles.n_available.sum() > 0
    for customer in range(0, profiles.n_customers, 37):
        distance = np.linalg.norm(profiles.terminal_xy - profiles.customer_xy[customer], axis=1)
        expected = np.flatnonzero(distance < RADIUS)
        assert (profiles.available_terminals(customer) == expected).all()


def test_terminals_within_small_case():
    customers = np.array([[0.0, 0.0], [10.0, 10.0], [50.0, 50.0]])
    terminals = np.array([[3.0, 4.0], [2.9, 4.0], [10.0, 14.0], [90.0, 90.0]])
    indptr, indices = terminals_within(customers, terminals, 5.0)
    assert indptr.tolist() == [0, 1, 2, 2]
    assert indices.tolist() == [1, 2]  # (3, 4) is at distance exactly 5: not within


def test_profile_ranges(sim):
    profiles = sim.profiles
    assert ((profiles.customer_xy >= 0) & (profiles.customer_xy <= 100)).all()
    assert ((profiles.terminal_xy >= 0) & (profiles.terminal_xy <= 100)).all()
    assert ((profiles.mean_amount >= 5) & (profiles.mean_amount <= 100)).all()
    assert np.allclose(profiles.std_amount, profiles.mean_amount / 2)
    assert ((profiles.mean_nb_tx_per_day >= 0) & (profiles.mean_nb_tx_per_day <= 4)).all()


def test_scenario_1_is_exactly_amounts_above_220(tx):
    scenario_1 = tx["TX_FRAUD_SCENARIO"] == 1
    assert scenario_1.sum() > 0
    assert (tx.loc[scenario_1, "TX_AMOUNT"] > 220).all()
    assert (tx.loc[tx["TX_AMOUNT"] > 220, "TX_FRAUD"] == 1).all()
    # a fraud above 220 not labelled 1 was overwritten by scenario 2 or multiplied by scenario 3
    others = tx.loc[(tx["TX_AMOUNT"] > 220) & ~scenario_1, "TX_FRAUD_SCENARIO"]
    assert others.isin([2, 3]).all()


def _covered(tx, draws, column, days):
    """Rows whose `column` value was drawn on a day d with d <= TX_TIME_DAYS < d + days."""
    covered = np.zeros(len(tx), dtype=bool)
    for day, drawn in enumerate(draws):
        in_window = (tx["TX_TIME_DAYS"] >= day) & (tx["TX_TIME_DAYS"] < day + days)
        covered |= (tx[column].isin(drawn) & in_window).to_numpy()
    return covered


def test_scenario_2_is_compromised_terminals_for_28_days(sim, tx):
    draws = sim.compromised_terminals
    assert draws.shape == (N_DAYS, 2)
    assert (draws[:, 0] != draws[:, 1]).all()
    covered = _covered(tx, draws, "TERMINAL_ID", 28)
    scenario = tx["TX_FRAUD_SCENARIO"].to_numpy()
    assert covered[scenario == 2].all()
    assert np.isin(scenario[covered], [2, 3]).all()  # scenario 3 may overwrite
    assert (scenario[~covered] != 2).all()
    terminals = tx.loc[scenario == 2, "TERMINAL_ID"].unique()
    assert 0 < len(terminals) <= 2 * N_DAYS
    assert len(terminals) < 0.15 * tx["TERMINAL_ID"].nunique()


def test_scenario_3_is_a_third_of_compromised_customers_for_14_days(sim, tx):
    draws = sim.compromised_customers
    assert draws.shape == (N_DAYS, 3)
    covered = _covered(tx, draws, "CUSTOMER_ID", 14)
    scenario_3 = (tx["TX_FRAUD_SCENARIO"] == 3).to_numpy()
    assert covered[scenario_3].all()
    last_day = covered & ~_covered(tx, draws, "CUSTOMER_ID", 13)
    assert scenario_3[last_day].any()  # the window lasts the full 14 days
    assert 0.28 < scenario_3.sum() / covered.sum() < 0.40
    ratio = tx["TX_AMOUNT"] / sim.profiles.mean_amount[tx["CUSTOMER_ID"]]
    assert 4 < ratio[scenario_3].median() < 6
    assert 0.8 < ratio[covered & ~scenario_3 & (tx["TX_FRAUD"] == 0)].median() < 1.2


def test_no_terminal_in_reach_gives_an_empty_frame():
    sim = run_simulation(n_customers=1, n_terminals=1, n_days=3, random_state=0)
    assert sim.profiles.n_available.tolist() == [0]
    tx = sim.transactions
    assert tx.empty
    assert tuple(tx.columns) == COLUMNS
    assert pd.api.types.is_datetime64_dtype(tx["TX_DATETIME"])


@pytest.mark.parametrize(
    "kwargs",
    [{"n_customers": 0}, {"n_terminals": 0}, {"n_days": 0}, {"start_date": "2018-04-01T00:00Z"}],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        simulate(**kwargs)


@pytest.mark.slow
def test_handbook_size_fraud_rate_near_0_8_percent():
    tx = simulate(n_customers=5000, n_terminals=10000, n_days=150, random_state=0)
    assert 1_200_000 < len(tx) < 1_700_000
    assert 0.006 < tx["TX_FRAUD"].mean() < 0.011
    shares = tx.loc[tx["TX_FRAUD"] == 1, "TX_FRAUD_SCENARIO"].value_counts(normalize=True)
    assert shares[2] > shares[3] > shares[1] > 0


@pytest.fixture(scope="module")
def drifted():
    return simulate(500, 1000, n_days=40, random_state=7, scenario="new-pattern", drift_day=20)


def test_the_new_pattern_starts_on_the_drift_day_and_leaves_the_days_before_unchanged(drifted):
    plain = simulate(500, 1000, n_days=40, random_state=7)
    new = drifted[drifted["TX_FRAUD_SCENARIO"] == 4]
    assert new["TX_TIME_DAYS"].min() == 20 and set(new["TX_TIME_DAYS"]) == set(range(20, 40))
    before = drifted[drifted["TX_TIME_DAYS"] < 20].reset_index(drop=True)
    assert before.equals(plain[plain["TX_TIME_DAYS"] < 20].reset_index(drop=True))
    after = drifted[drifted["TX_TIME_DAYS"] >= 20]
    plain_after = plain[plain["TX_TIME_DAYS"] >= 20]
    assert len(after) - len(plain_after) == len(new)
    # one customer a day, for 7 days, about 3 frauds a day each: about 20 a day once in full swing
    per_day = new.groupby("TX_TIME_DAYS").size()
    assert 12 < per_day.loc[27:].mean() < 30
    assert after["TX_FRAUD"].mean() > plain_after["TX_FRAUD"].mean() + 0.015


def test_new_pattern_frauds_are_small_night_amounts_at_the_customers_terminals(sim, drifted):
    new = drifted[drifted["TX_FRAUD_SCENARIO"] == 4]
    hour = (new["TX_TIME_SECONDS"] % SECONDS_PER_DAY) // 3600
    assert hour.between(0, 4).all() and new["TX_AMOUNT"].between(1, 5).all()
    assert (new["TX_FRAUD"] == 1).all()
    assert drifted["TRANSACTION_ID"].tolist() == list(range(len(drifted)))
    assert drifted["TX_DATETIME"].is_monotonic_increasing
    profiles = run_simulation(500, 1000, n_days=1, random_state=7).profiles  # same draw order
    for customer, terminal in new[["CUSTOMER_ID", "TERMINAL_ID"]].head(50).itertuples(index=False):
        assert terminal in profiles.available_terminals(customer)


def test_the_new_pattern_is_deterministic_and_checked():
    a = simulate(200, 400, n_days=20, random_state=1, scenario="new-pattern", drift_day=10)
    b = simulate(200, 400, n_days=20, random_state=1, scenario="new-pattern", drift_day=10)
    c = simulate(200, 400, n_days=20, random_state=2, scenario="new-pattern", drift_day=10)
    assert a.equals(b) and not a.equals(c)
    default = simulate(200, 400, n_days=20, random_state=1, scenario="new-pattern")
    assert default.loc[default["TX_FRAUD_SCENARIO"] == 4, "TX_TIME_DAYS"].min() == 10
    with pytest.raises(ValueError, match="scenario must be one of"):
        simulate(10, 10, n_days=2, scenario="surprise")
