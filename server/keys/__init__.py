"""API keys and tenants: who is calling, and which jobs and targets are theirs.

tables.py  the api_keys table (a key is stored as its sha256, never as itself)
keys.py    create, find, list and revoke keys; the tenant a key belongs to
tokens.py  short-lived signed tokens that open one job's event stream (pure)
secret.py  the secret that signs them: from the settings, or made once for a local run
cli.py     the operator's command: create (prints the key once), list, revoke
"""
