"""Transactions: the history (import, load), scoring, labels and the review queue."""
