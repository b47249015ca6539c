"""digestd: personalised digests of new research papers by email.

The packages follow the flow, each importing only from the ones below it (checked by
`lint-imports`, contracts in pyproject.toml):

    cli/        the `digestd` command: a thin click shell over the packages below
    daemon/     `digestd run`: the scheduler, its jobs, the process lock and signals
    status, demo, subscriber_files   reports and operations that read across the stages
    web/        the pages: public sign-up (double opt-in), manage, links in a digest
    delivery/   the ledger and sending: plan, claim, rank and render batches, SMTP, workers
    api         the core operations: digests for a subscriber or a period, from the store
    ingest/     sources (arXiv, Hugging Face, RSS/Atom, OAI-PMH, files) into the store
    ranking/    pure: papers and profiles in, ranked and sectioned digests out
    mail/       pure: a digest in, an email (HTML, text, signed links, DKIM) out
    subscribers the subscriber records and their profiles
    store       the database: engines, migrations, papers
    schedule, identity, config, models, records, validation, errors   the base every stage shares
"""
