"""Mail: a digest in, an email out. Pure: no database, no network.

    templates   the Jinja2 templates (shipped or the operator's), checked at start-up
    paper_view  what a paper looks like in an email (shortened authors, trimmed abstract)
    render      a `Digest` into its HTML and text parts, with signed links
    message     the MIME message: headers, List-Unsubscribe, packing, DKIM
    tokens      signed tokens for the links in a digest (manage, rate, unsubscribe)

May import: records, config, errors.
"""
