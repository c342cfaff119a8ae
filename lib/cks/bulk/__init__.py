"""Bulk loading and dumping (`cks_admin.py load` / `dump`).

split.py cuts input files into keys as it reads them; derive.py is what the
worker processes do with a key (parse, merge with the stored copy, derive
the served view); load.py runs batches through them and writes each batch in
one transaction with its progress (progress.py), so an interrupted load goes
on where it stopped; dump.py writes SKS-style dump files.
"""
