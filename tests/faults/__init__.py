"""The fault suite: workers killed, the broker, Redis and the API stopped, connections cut,
a job given twice. Every import must still land exactly once (`pytest -m faults`)."""
