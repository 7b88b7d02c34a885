"""CSV import pipeline: upload, messaging, work, loading, progress, dead letters.

The flow, and where each step lives:

    api/         FastAPI: POST /imports streams the upload to storage, checks the header,
                 commits the job row, then publishes the job id (messaging/).
    storage.py   where uploaded files live (a directory shared by API and workers).
    csvfile/     pure CSV logic: encoding and dialect detection, a resumable record reader,
                 header matching, per-column validation.
    targets.py   what a target table looks like, read from PostgreSQL itself.
    jobs/        the job records and refused rows (SQLAlchemy), the only state that matters.
    messaging/   the RabbitMQ topology (one module) and confirmed publishing.
    work/        the Celery app and its one task: load one bounded segment of a job.
    loading/     COPY of validated batches into a staging table, checkpoints, and the final
                 publish of staged rows into the target.
"""
