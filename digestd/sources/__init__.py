"""Sources: each module turns the bytes of one kind of feed or file into `PaperRecord`s.
No module here touches the database; `digestd.ingest` does that."""
