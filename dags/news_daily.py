"""
### news_daily

The daily ingestion of the configured feeds (`seeds/feeds.yaml`, or `NEWSFLOW_FEEDS`), every day at 00:00 UTC.
It is on from its first start; switching it on never starts a run for a day already past (the first scheduled
run is the next midnight), so **Trigger** is the way to run it now.

1. **plan_batches** reads the feed list and splits it into batches of ten feeds.
2. **fetch_feed_batch** runs once per batch (dynamic task mapping, each named by the feeds it polls): each feed
   is polled with a conditional GET, and only entries no feed delivered before are fetched, politely, into the
   raw store. Its log has one line per failed feed or page (URL, stage, reason) and ends with a table of counts.
3. **announce_fetched** adds up the counts and publishes the `newsflow_raw_documents` asset, whose event
   wakes **news_process**.

A page or feed that fails is recorded in `ingest_errors` and does not fail the run; a failing feed backs off
and is skipped (not failed) until its next poll time, and one failing for `NEWSFLOW_FEED_DISABLE_DAYS` is
disabled (`newsflow feeds health`, `v_feed_health`). The database being unreachable, or no feed of a batch
could be polled at all, fails the task, which is retried with exponential backoff (a retry polls its feeds
whatever their backoff).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Metadata, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from newsflow_common import RAW_DOCUMENTS, settings

PLAN_DOC = "Read the feed list (`NEWSFLOW_FEEDS`, else `seeds/feeds.yaml`) and cut it into batches of ten feeds."
FETCH_DOC = """Poll one batch of feeds (named in the task's map index) and fetch their new entries into the raw
store. A dead feed or page is one log line and one `ingest_errors` row, and the task succeeds; it fails only when
the database cannot be reached or no feed of the batch could be polled at all."""
ANNOUNCE_DOC = "Add up the batches' counts and publish them as the `newsflow_raw_documents` event (wakes news_process)."


@dag(
    dag_id="news_daily",
    description="Poll the configured feeds every day and fetch their new entries into the raw store",
    # No start_date: switching the DAG on waits for the next midnight instead of running for a day already past.
    schedule=CronTriggerTimetable("@daily", timezone="UTC", run_immediately=False),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["newsflow", "ingest", "feeds"],
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": True},
)
def news_daily() -> None:
    @task(doc_md=PLAN_DOC)
    def plan_batches() -> list[list[str]]:
        """Read the feed list and cut it into batches, one mapped fetch task each."""
        from pipeline.tasks import feed_batches

        return feed_batches(settings())

    @task(max_active_tis_per_dagrun=4, doc_md=FETCH_DOC, map_index_template="{{ feeds_polled }}")
    def fetch_feed_batch(feed_urls: list[str]) -> dict[str, int]:
        """Poll these feeds and fetch their new entries into the raw store; returns the counts."""
        from pipeline.tasks import feed_batch_label, fetch_feeds

        context = get_current_context()
        context["feeds_polled"] = feed_batch_label(feed_urls)  # type: ignore[typeddict-unknown-key]
        retry = context["ti"].try_number > 1  # a retry polls the batch again, backoff notwithstanding
        return fetch_feeds(settings(), feed_urls, trigger="news_daily", retry=retry)

    @task(outlets=[RAW_DOCUMENTS], doc_md=ANNOUNCE_DOC)
    def announce_fetched(counts: list[dict[str, int]]) -> Any:
        """Add up the batches' counts and publish them with the raw-documents asset event."""
        totals: dict[str, int] = {}
        for batch in counts:
            for key, value in batch.items():
                totals[key] = totals.get(key, 0) + value
        yield Metadata(RAW_DOCUMENTS, extra=totals)
        return totals

    announce_fetched(fetch_feed_batch.expand(feed_urls=plan_batches()))


news_daily()
