"""Delivery: what is due goes out, each subscriber mailed at most once per period.

    ledger        the `Delivery` rows: plan, lease, forget (the state machine is there)
    claims        claim a batch of rows, mark `sending`, record each outcome
    batches       rank and render a claimed batch (optionally in render processes)
    smtp          SMTP connections, TLS, rate limit, what a reply means for the ledger
    send          `digestd send` and the daemon's tick: plan, claim, render, send
    worker        `digestd worker`: the same on a shared PostgreSQL ledger
    coordination  workers' heartbeats and the scheduler lock on PostgreSQL

Takes settings, an engine and an `EmailBuilder`; gives a report of what was sent.
May import: api, mail, ranking, subscribers, store, and the base modules.
"""
