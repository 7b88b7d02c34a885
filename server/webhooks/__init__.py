"""Webhooks: a signed POST of a job's final view to its callback URL when the job ends.

    job ends ──(trigger, same transaction)──► webhook_deliveries row (pending)
        │                                          │ published by the process that ended
        ▼                                          ▼ the job, or by the API's sweeper
    imports ──webhook──► webhooks ──► worker: POST, signed (Standard Webhooks)
                            ▲              │ refused, timed out, unreachable
                            │              ▼
                            └── webhooks.retry.<N>s (TTL N s) ... after the last: webhooks.dead

A delivery's id is its `webhook-id`: every attempt sends the same id and the same body, so
a receiver that saw it already can tell. A delivery is made once per job end; an attempt
locks its row, so two messages for one delivery never post at once, and a delivered one is
never posted again.
"""
