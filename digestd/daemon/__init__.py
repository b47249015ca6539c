"""The daemon, `digestd run`: one long-running process that ingests, plans and delivers.

    run        the main coroutine: lock, scheduler, web pages, and an orderly stop
    scheduler  the APScheduler jobs (ingest per source, the planning tick, the purge)
    process    what a long-running process needs: the single-daemon lock, logging,
               stop signals, garbage-collector tuning

May import: web, delivery, ingest, mail, store, and the base modules.
"""
