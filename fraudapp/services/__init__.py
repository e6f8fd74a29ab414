"""The service layer: one package or module per domain, each importing only the ones below it.

demo → training → monitoring | transactions → distribution → serving → accounts | tokens → audit
(`make lint` checks this order with the contracts in pyproject.toml).
"""
