"""The online path, from the database, reproduces the Handbook's transformed file."""

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from fraudapp.extensions import db
from fraudapp.ml import features
from fraudapp.models import Transaction
from fraudapp.services.transactions import history, scoring
from tests.conftest import HANDBOOK_TRANSFORMED, handbook_file


@pytest.mark.slow
@pytest.mark.handbook
def test_online_features_from_the_database_match_the_handbook(app):
    frame = pd.read_csv(handbook_file(HANDBOOK_TRANSFORMED), nrows=200_000)
    history.import_frame(history.read_transactions_frame(frame))
    sample = frame[frame["TX_DATETIME"] >= "2018-04-10"].sample(10_000, random_state=0)
    tied = frame.duplicated(["CUSTOMER_ID", "TX_DATETIME"], keep=False)
    sample = sample[~tied.loc[sample.index]]
    stored = {
        t.external_id: t
        for t in db.session.scalars(
            select(Transaction).where(
                Transaction.external_id.in_(sample["TRANSACTION_ID"].astype(str).tolist())
            )
        )
    }
    online = np.array([_features_when_stored(stored[str(i)]) for i in sample["TRANSACTION_ID"]])
    assert len(online) >= 9_990
    expected = sample[list(features.HANDBOOK_FEATURES)].to_numpy()
    np.testing.assert_allclose(online[:, :15], expected, rtol=1e-7, atol=1e-6)


def _features_when_stored(t: Transaction) -> np.ndarray:
    """The features the transaction had when it arrived: only the rows stored before it count."""
    tx = scoring.TransactionIn(t.tx_datetime, t.customer_id, t.terminal_id, t.amount)
    return scoring.online_features(tx, before_id=t.id)
