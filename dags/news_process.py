"""
### news_process

Wakes up when **news_daily** (or anything else) publishes the `newsflow_raw_documents` asset, and turns the
documents waiting in the raw store into articles, sections and facts, in batches through one spaCy pass each.
It logs the asset events that woke it and publishes the `newsflow_facts` asset with the counts.

A document that fails to extract or load is recorded in `ingest_errors` and closed; the others go on.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Metadata, dag, task
from newsflow_common import FACTS, RAW_DOCUMENTS, settings

PROCESS_LIMIT = 5000
PROCESS_DOC = """Claim the waiting documents and turn them into articles, sections and facts. A document that fails
is one log line and one `ingest_errors` row; the log ends with a table of counts."""
log = logging.getLogger(__name__)


@dag(
    dag_id="news_process",
    description="Turn the documents waiting in the raw store into articles, sections and facts",
    schedule=[RAW_DOCUMENTS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["newsflow", "facts"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
)
def news_process() -> None:
    @task(outlets=[FACTS], doc_md=PROCESS_DOC)
    def process_pending_documents(triggering_asset_events: Any = None) -> Any:
        """Turn staged documents into articles, sections and facts; publish the counts."""
        from pipeline.tasks import process

        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                log.info("woken by %s: %s", getattr(asset, "name", asset), event.extra)
        counts = process(settings(), limit=PROCESS_LIMIT, trigger="news_process")
        yield Metadata(FACTS, extra=counts)
        return counts

    process_pending_documents()


news_process()
