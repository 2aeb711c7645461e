"""Outbound webhooks: subscriptions, the durable delivery outbox fed by the ``events`` table, delivery at
least once with back-off, Standard Webhooks signatures, and the guard against private-network targets."""
