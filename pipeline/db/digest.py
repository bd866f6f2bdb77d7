"""A digest of what the database holds, independent of surrogate ids and timestamps.

Two databases that hold the same articles, raw pages and facts give the same
digest, whatever order the documents were loaded in, how often a run was retried
or killed, and which ids the sequences handed out. Rows are named by their
natural keys (an article by its source, a section by its article and position,
an entity by its key and type), so a duplicate or a lost row changes the digest.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

CONTENT_QUERIES: dict[str, str] = {
    "raw_documents": (
        "SELECT source, content_sha256, media_type, metadata, md5(body_gzip), byte_size FROM raw_documents"
    ),
    "articles": (
        "SELECT a.source, a.url, a.title, a.author, a.published_at, a.language, a.site_name, a.content_hash, "
        "r.content_sha256, a.text, a.version, a.extractor_version FROM articles a "
        "JOIN raw_documents r ON r.id = a.raw_document_id"
    ),
    "sections": (
        "SELECT a.source, s.position, s.heading, s.start_offset, s.end_offset, s.body FROM sections s "
        "JOIN articles a ON a.id = s.article_id"
    ),
    "entities": "SELECT key, type, name FROM entities",
    "entity_mentions": (
        "SELECT a.source, s.position, e.key, e.type, m.start_offset, m.end_offset, m.mention "
        "FROM entity_mentions m JOIN articles a ON a.id = m.article_id JOIN sections s ON s.id = m.section_id "
        "JOIN entities e ON e.id = m.entity_id"
    ),
    "quotes": (
        "SELECT a.source, s.position, q.kind, q.quote, q.start_offset, q.end_offset, q.speaker, e.key, "
        "q.speaker_text, q.cue FROM quotes q JOIN articles a ON a.id = q.article_id "
        "JOIN sections s ON s.id = q.section_id LEFT JOIN entities e ON e.id = q.speaker_entity_id"
    ),
    "dates": (
        "SELECT a.source, s.position, d.mention, d.start_offset, d.end_offset, d.value, d.granularity, "
        "d.value_start FROM dates d JOIN articles a ON a.id = d.article_id JOIN sections s ON s.id = d.section_id"
    ),
    "quantities": (
        "SELECT a.source, s.position, q.mention, q.start_offset, q.end_offset, q.value, q.unit, q.noun "
        "FROM quantities q JOIN articles a ON a.id = q.article_id JOIN sections s ON s.id = q.section_id"
    ),
    "claims": (
        "SELECT a.source, s.position, c.actor, e.key, c.predicate, c.object, c.start_offset, c.end_offset "
        "FROM claims c JOIN articles a ON a.id = c.article_id JOIN sections s ON s.id = c.section_id "
        "LEFT JOIN entities e ON e.id = c.actor_entity_id"
    ),
}


# Each table's rows, as text, sorted and hashed (built once, from the constant queries above).
DIGEST_QUERIES = {
    table: f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM ({query}) AS t"
    for table, query in CONTENT_QUERIES.items()
}


def content_digest(engine: Engine) -> dict[str, str]:
    """Per table: the row count and an md5 over its rows in a canonical order."""
    digests = {}
    with engine.connect() as conn:
        for table in CONTENT_QUERIES:
            row = conn.execute(sa.text(DIGEST_QUERIES[table])).one()
            digests[table] = f"{row[0]} rows, md5 {row[1]}"
    return digests
