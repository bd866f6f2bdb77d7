"""Newsflow: an event-driven news ingestion pipeline.

The stages are plain modules over dataclasses, composed in this order:
``sources`` (read raw bytes) → ``extract`` (body, metadata, blocks) →
``sections`` → ``facts`` (entities, quotes, dates, quantities, claims) →
``store`` (Postgres). ``ingest`` runs them over a batch; ``cli`` is a thin shell.
"""

__version__ = "0.1.0"
