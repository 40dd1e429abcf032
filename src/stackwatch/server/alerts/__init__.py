"""Alerting: rules evaluated in the digest, a durable outbox, a dispatcher, and one module per channel."""
