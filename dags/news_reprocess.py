"""
### news_reprocess

Manual. Re-derives sections and facts from the raw documents already stored, after an extractor or model
upgrade, without fetching anything again. Leave **sources** empty to redo every article, or list the sources
to redo, one per line: each as it was ingested (the URL or path you fed in, a feed's link) or as the article's
canonical URL. A source that matches nothing is an `ingest_errors` row; when none matches, the run fails saying so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Metadata, Param, dag, task
from newsflow_common import FACTS, settings

REDERIVE_DOC = """Re-extract the stored raw documents of the chosen articles (all when `sources` is empty) and replace
their sections and facts; fails when sources are given and none matches a stored article."""


@dag(
    dag_id="news_reprocess",
    description="Re-derive sections and facts from the stored raw documents, without fetching",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    doc_md=__doc__,
    tags=["newsflow", "facts", "maintenance"],
    params={
        "sources": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Sources (optional)",
            description="One per line: a URL or path as ingested, or a canonical URL. Empty: every article.",
        )
    },
)
def news_reprocess() -> None:
    @task(outlets=[FACTS], doc_md=REDERIVE_DOC)
    def rederive_facts(params: Any = None) -> Any:
        """Re-extract stored raw documents and replace their facts."""
        from pipeline.tasks import reprocess_articles

        counts = reprocess_articles(settings(), list((params or {}).get("sources") or []), trigger="news_reprocess")
        yield Metadata(FACTS, extra=counts)
        return counts

    rederive_facts()


news_reprocess()
