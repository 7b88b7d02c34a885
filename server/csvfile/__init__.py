"""Pure CSV logic, no I/O beyond the file object it is handed.

detect.py    encoding, line ending and delimiter, from the first bytes of a file
encoding.py  which encoding: exact answers first, then two detectors and their confidence
reader.py    records with their line numbers and byte offsets, resumable at any record
head.py      the header and the first row, from a file's first bytes only
header.py    CSV header names matched to a target's columns
convert.py   per-column converters compiled once from the column types: accept what
             PostgreSQL reads as written, refuse what it refuses, ask about the rest
pattern.py   the fast path: one pattern that a run of plain records matches as a whole
"""
