"""Monitoring: daily aggregates, the figures over time, drift and alerts."""
