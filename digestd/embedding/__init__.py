"""Embedding: the optional sentence encoder (`[encoder] model`) and the vectors it makes.

This stage owns everything that turns text into vectors for ranking: loading the model
(`encoder`), and storing, reusing and backfilling the vectors of papers and of keyword
queries in the `text_vector` table (`vectors`). Ranking itself stays pure: delivery and
preview load the vectors here and hand them to `ranking.prepare_window(vectors=...)` and
`ranking.build_digests(query_vectors=...)`; ingest embeds the papers it stores, so a send
does not pay for them. Every vector is stored with the encoder's identity (model and token
limit), so changing the model never mixes vectors of two spaces.
"""
