"""Training: training on the stored history, training runs and the trainer process."""
