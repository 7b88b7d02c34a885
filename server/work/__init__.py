"""Celery: the app, its consumer, and the one task that loads a segment of a job."""
