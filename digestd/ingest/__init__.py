"""Ingest: new abstracts from the outside world into the store.

Owns the sources (`sources/`: fetch and parse arXiv RSS and API, Hugging Face daily
papers, RSS/Atom, OAI-PMH, paper files into `PaperRecord`s, no database) and `run`
(run a source, merge duplicates, save papers and the source's state in one
transaction). Takes settings and an engine; gives counts per source.
May import: store, models, records, identity, config, errors.
"""
