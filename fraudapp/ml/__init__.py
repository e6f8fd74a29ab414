"""The ML core: features, training, metrics, drift, explanations and the model registry — plain
numpy, pandas and LightGBM, no Flask and no database, so the trainer, the CLI and the tests call
the same functions."""
