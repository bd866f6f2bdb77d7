"""
### news_daily

The daily ingestion of the configured feeds (`seeds/feeds.yaml`, or `NEWSFLOW_FEEDS`).

1. **plan_batches** reads the feed list and splits it into batches of ten feeds.
2. **fetch_feed_batch** runs once per batch (dynamic task mapping): each feed is polled with a conditional
   GET, and only entries no feed delivered before are fetched, politely, into the raw store.
3. **announce_fetched** adds up the counts and publishes the `newsflow_raw_documents` asset, whose event
   wakes **news_process**.

A page or feed that fails is recorded in `ingest_errors` and does not fail the run. The database being
unreachable, or every fetch failing, fails the task, which is retried with exponential backoff.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Metadata, dag, task
from newsflow_common import RAW_DOCUMENTS, settings

FETCH_DOC = "Poll one batch of feeds and fetch their new entries into the raw store; returns the counts."


@dag(
    dag_id="news_daily",
    schedule="@daily",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["newsflow", "ingest", "feeds"],
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
)
def news_daily() -> None:
    @task
    def plan_batches() -> list[list[str]]:
        """Read the feed list and cut it into batches, one mapped fetch task each."""
        from pipeline.tasks import feed_batches

        return feed_batches(settings())

    @task(max_active_tis_per_dagrun=4, doc_md=FETCH_DOC)
    def fetch_feed_batch(feed_urls: list[str]) -> dict[str, int]:
        """Poll these feeds and fetch their new entries into the raw store; returns the counts."""
        from pipeline.tasks import fetch_feeds

        return fetch_feeds(settings(), feed_urls, trigger="news_daily")

    @task(outlets=[RAW_DOCUMENTS])
    def announce_fetched(counts: list[dict[str, int]]) -> Any:
        """Add up the batches' counts and publish them with the raw-documents asset event."""
        totals: dict[str, int] = {}
        for batch in counts:
            for key, value in batch.items():
                totals[key] = totals.get(key, 0) + value
        yield Metadata(RAW_DOCUMENTS, extra=totals)

    announce_fetched(fetch_feed_batch.expand(feed_urls=plan_batches()))


news_daily()
