"""The web: the pages a reader sees, and the core they stand on.

    server         uvicorn on the configured address, alone (`digestd web`) or in the daemon
    app            the Starlette app: routes, error pages, security headers
    signup_routes  sign-up with double opt-in; link_routes: manage, one-click unsubscribe, ratings
    signup         the core behind them: start and confirm a sign-up, check a link, rate, unsubscribe, purge
    signup_queue   the form only queues a sign-up; a sender in the web process records and mails it
    confirmation   the signed, expiring confirmation links
    forms, manage  form parsing and the manage page's view
    pages, messages, mailer   page templates, the web's emails and how they are sent
    csrf, limits, context     CSRF tokens, rate limits, what every route is given
    hook_routes    `POST /hooks/bounce`: bounces reported over HTTP (`digestd.bounces`)

May import: delivery (its SMTP helpers), bounces, mail, subscribers, store, and the base modules.
"""
