"""CSV import pipeline: upload, messaging, work, loading, progress, webhooks, dead letters.

The flow, and where each step lives:

    api/          FastAPI: POST /imports streams the upload to storage (or downloads its
                  source_url, fetch.py), checks the header, commits the job, then publishes
                  its id (messaging/); the preview, dry runs and commits, jobs, refused rows,
                  targets, health and metrics; tenants' shares (limits.py); the response
                  models (schemas.py); the sweeper.
    storage.py    where uploaded files live: a directory shared by the API and the workers,
                  or an S3-compatible object store (objectstore.py) for workers elsewhere.
    csvfile/      pure CSV logic: encoding and dialect detection, a resumable record reader,
                  header matching, per-column converters and the fast path's row pattern.
    targets.py    what a target table looks like, read from PostgreSQL itself.
    jobs/         the job records: statuses, typed Job records, and the repository that holds
                  every statement on the job tables; the only state that matters.
    messaging/    the RabbitMQ topology (one module) and confirmed publishing.
    work/         the Celery app and its one task: load one bounded segment of a job.
    loading/      batches COPYed into a staging table (or straight into the target),
                  checkpoints, and the final publish of staged rows into the target.
    progress/     live progress: written to Redis by workers, streamed by the API over SSE.
    webhooks/     a job's end posted to its callback URL: recorded with the end, published,
                  signed (Standard Webhooks) and retried through broker wait queues;
                  outbound.py says which addresses such requests may reach.
    deadletters/  listing, replaying and purging imports.dead.
    keys/         API keys and tenants, event-stream tokens, the signing secret.
    housekeeping.py  what is removed after the retention periods.

Around the flow: settings.py (one settings object), db.py (engines, the table metadata),
logs.py (text or JSON lines, with job id, tenant and request id), measures.py (the
Prometheus metrics, counted where things happen), dashboard.py (a Grafana dashboard of them),
run.py (every process's command line), setup.py (database, migrations, broker, first key),
services/ (the PostgreSQL, Redis and RabbitMQ that `make run` starts when they do not answer),
client.py (the terminal client), demo/ (the demo table and file), web/ (the page),
migrations/ (Alembic), crash.py (a test seam that lets the fault tests crash a process).
"""
