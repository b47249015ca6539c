"""Sources: each module turns the bytes of one kind of feed or file into `PaperRecord`s.
No module here touches the database; `digestd.ingest.run` does that.

    arxiv_rss    rss.arxiv.org RSS 2.0 / Atom listings, and the legacy RSS 1.0/RDF feed
    arxiv_api    export.arxiv.org/api/query (search queries, id_list, paging)
    hf_daily     huggingface.co/api/daily_papers
    rss          any RSS/Atom feed, via feedparser
    oai_pmh      arXiv OAI-PMH ListRecords (metadataPrefix=arXiv)
    files        JSONL / JSON / CSV paper files
    identity     canonical ids: arXiv id without version, else DOI, else title hash
    documents    bytes → checked XML/JSON; HTML error pages and truncation named
    fetch        the polite, conditional, retrying, bounded HTTP GET (and its redirects)
    network      connections: a total deadline per request, the redirect address rule
    bodies       response bodies within size limits, gzip/deflate unpacked within them
    harvest      what one source run brought back, before it is saved

Each kind has a pure `parse_*(content: bytes, *, source, ...)` and a `fetch_*(fetcher,
settings, harvest, ...)` that does the requests and fills a `Harvest`.
"""
