"""Dead letters: what is in `imports.dead`, and putting it back to work.

letters.py   a dead message as an operator sees it (job, reason, deaths, age)
replay.py    list, replay and purge, acking a dead message only after its replay is
             confirmed by the broker
cli.py       the command line (`scripts/reprocess_dlq.py`, `csv-import-dlq`)
"""
