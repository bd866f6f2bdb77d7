"""
### news_reprocess

Manual. Re-derives sections and facts from the raw documents already stored, after an extractor or model
upgrade, without fetching anything again. Leave **sources** empty to redo every article, or list the
article sources (paths or canonical URLs) to redo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Metadata, Param, dag, task
from newsflow_common import FACTS, settings


@dag(
    dag_id="news_reprocess",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    doc_md=__doc__,
    tags=["newsflow", "facts", "maintenance"],
    params={"sources": Param([], type="array", description="Article sources to redo; empty means all.")},
)
def news_reprocess() -> None:
    @task(outlets=[FACTS])
    def rederive_facts(params: Any = None) -> Any:
        """Re-extract stored raw documents and replace their facts."""
        from pipeline.tasks import reprocess_articles

        counts = reprocess_articles(settings(), list((params or {}).get("sources") or []), trigger="news_reprocess")
        yield Metadata(FACTS, extra=counts)

    rederive_facts()


news_reprocess()
