-- Analyst views: the stable SQL contract (see docs/querying.md).
-- The tables underneath may change; these names and columns only grow.
-- depends: 0001_core_schema

CREATE VIEW v_sections AS
SELECT a.id AS article_id, a.title, a.published_at,
       s.position, s.heading, s.body
FROM sections s
JOIN articles a ON a.id = s.article_id;

COMMENT ON VIEW v_sections IS
    'One row per article section, in reading order. Section 0 is the lead before the first heading (heading NULL); body excludes the heading line.';

CREATE VIEW v_quotes AS
SELECT a.id AS article_id, a.title, a.published_at,
       s.heading AS section_heading,
       q.kind, q.speaker, q.speaker_text, q.cue, q.quote
FROM quotes q
JOIN articles a ON a.id = q.article_id
JOIN sections s ON s.id = q.section_id;

COMMENT ON VIEW v_quotes IS
    'Quotes with their speakers. kind is direct (in quotation marks), partial (a quoted fragment) or indirect (reported speech). speaker is the canonical name, speaker_text the mention as written (e.g. "he"), cue the reporting verb.';

CREATE VIEW v_entity_mentions AS
SELECT a.id AS article_id, a.title,
       s.heading AS section_heading,
       e.name AS entity, e.type, m.mention
FROM entity_mentions m
JOIN entities e ON e.id = m.entity_id
JOIN articles a ON a.id = m.article_id
JOIN sections s ON s.id = m.section_id;

COMMENT ON VIEW v_entity_mentions IS
    'Every mention of a named entity. entity is the canonical name shared across articles ("Vladimir Putin" for a mention "Putin"), type its spaCy label (PERSON, ORG, GPE, LOC, NORP, ...).';

CREATE VIEW v_dates AS
SELECT a.id AS article_id, a.title,
       d.mention AS text, d.value, d.granularity
FROM dates d
JOIN articles a ON a.id = d.article_id;

COMMENT ON VIEW v_dates IS
    'Date expressions resolved to the calendar against the article''s published date. value is YYYY-MM-DD, YYYY-MM or YYYY according to granularity (day, month, year).';

CREATE VIEW v_quantities AS
SELECT a.id AS article_id, a.title,
       s.heading AS section_heading,
       q.mention AS text, q.value, q.unit, q.noun
FROM quantities q
JOIN articles a ON a.id = q.article_id
JOIN sections s ON s.id = q.section_id;

COMMENT ON VIEW v_quantities IS
    'Numbers with their unit and the noun they count: "30-day" is 30 day, "€1.2 billion" is 1200000000 EUR, "five Ukrainian territories" is 5 with noun territories.';

CREATE VIEW v_claims AS
SELECT a.id AS article_id, a.title,
       s.heading AS section_heading,
       c.actor, c.predicate, c.object
FROM claims c
JOIN articles a ON a.id = c.article_id
JOIN sections s ON s.id = c.section_id;

COMMENT ON VIEW v_claims IS
    'Who demands, rejects, proposes or pledges what: (actor, predicate, object) from stance verbs, with predicate as the verb lemma.';

COMMENT ON TABLE articles IS
    'One row per article (source), holding the current version''s metadata and cleaned text. url is the canonical URL when the source is a web page.';
COMMENT ON TABLE raw_documents IS
    'Original bytes of every fetched document version, gzip-compressed, so facts can be re-derived without refetching.';
COMMENT ON TABLE ingest_runs IS
    'One row per ingest invocation (CLI or Airflow task) with its document counts.';
COMMENT ON TABLE ingest_errors IS
    'One row per document that failed, with the stage (read, extract, facts, load) and a human-readable reason.';
