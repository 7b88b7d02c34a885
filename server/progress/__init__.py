"""Live progress: the worker writes a snapshot and a capped event stream per job in Redis
after each committed batch; the API streams them to browsers over Server-Sent Events.

    events.py   what an event says, and how often one is sent (pure)
    writer.py   the worker's side: snapshot hash + stream entry, never before the commit
    reader.py   the API's side: snapshot, then stream entries from a Last-Event-ID on

Redis is not the source of truth: if it is down, imports still finish and the stream falls
back to reading the job row in PostgreSQL.
"""
