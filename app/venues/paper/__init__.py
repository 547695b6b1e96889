"""The paper venue: a deterministic exchange simulator (book, queue models, matching)."""
