"""Model distribution: catalog, releases, webhook outbox, receiver and node agent."""
