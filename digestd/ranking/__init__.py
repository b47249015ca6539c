"""Ranking: papers and profiles in, digests out. Pure: no database, no network, no clock.

    profiles   what a profile asks for, in matchable text form
    queries    profiles as sparse query matrices over the window's vocabulary
    scoring    the TF-IDF space, scores of a chunk of profiles, picks
    reasons    why each pick is there, in words
    phrases    the window's label phrases, what may name a section
    sections   sections of a digest's picks, named by what brought them
    digest     the public API: `prepare_window` once per run, `build_digests` per chunk

May import: records, identity, config, errors (and numpy, scipy, scikit-learn).
"""
