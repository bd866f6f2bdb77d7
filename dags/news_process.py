"""
### news_process

Wakes up when **news_daily** (or anything else) publishes the `newsflow_raw_documents` asset, and turns the
documents waiting in the raw store into articles, sections and facts, spread over the workers:

1. **plan_shards** logs the asset events that woke it, counts the waiting documents and plans the shards:
   `NEWSFLOW_PROCESS_SHARDS` (default 2) at most, and no more than there are batches of
   `NEWSFLOW_BATCH_SIZE` documents to share.
2. **process_pending_documents** runs once per shard (dynamic task mapping, named `shard 1 of 2` …), each on
   whichever worker is free. Each shard claims a batch of waiting documents at a time
   (`FOR UPDATE SKIP LOCKED`: no document is ever handed to two shards), runs it through one spaCy pass, and
   claims the next, until none waits or its time budget (`NEWSFLOW_PROCESS_SECONDS`) is spent.
3. **publish_facts** adds up the shards' counts and publishes the `newsflow_facts` asset with the totals.
4. **continue_backlog** runs news_process again when a shard spent its budget and documents still wait: it
   publishes `newsflow_raw_documents` (with `waiting` in its `extra`), and is skipped otherwise.

A document that fails to extract or load is recorded in `ingest_errors` and closed; the others go on. A shard
whose worker dies leaves its claims to the next run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Metadata, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from newsflow_common import FACTS, RAW_DOCUMENTS, settings

PLAN_DOC = """Log the asset events that woke this run, count the staged documents waiting, and plan the shards
(`NEWSFLOW_PROCESS_SHARDS` at most, no more than the batches waiting)."""
PROCESS_DOC = """One shard (named in the map index): claim batches of waiting documents and turn them into
articles, sections and facts until none waits or `NEWSFLOW_PROCESS_SECONDS` is spent. Shards never share a
document. A document that fails is one log line and one `ingest_errors` row; the log ends with a table of counts."""
PUBLISH_DOC = "Add up the shards' counts and publish them as the `newsflow_facts` asset event."
CONTINUE_DOC = """When a shard spent its time budget and documents still wait, publish `newsflow_raw_documents`
so that news_process runs again at once; skipped (no event) when the shards emptied the backlog."""
log = logging.getLogger(__name__)


@dag(
    dag_id="news_process",
    description="Turn the documents waiting in the raw store into articles, sections and facts, over the workers",
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
    @task(doc_md=PLAN_DOC)
    def plan_shards(triggering_asset_events: Any = None) -> list[str]:
        """Log what woke this run; one name per shard of the waiting documents."""
        from pipeline.tasks import process_shards

        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                log.info("woken by %s: %s", getattr(asset, "name", asset), event.extra)
        return process_shards(settings())

    @task(doc_md=PROCESS_DOC, map_index_template="{{ shard }}")
    def process_pending_documents(shard: str) -> dict[str, int]:
        """Claim and process waiting documents until none waits or the shard's time budget is spent."""
        from pipeline.tasks import process_shard

        get_current_context()["shard"] = shard  # type: ignore[typeddict-unknown-key]
        return process_shard(settings(), trigger="news_process")

    @task(outlets=[FACTS], doc_md=PUBLISH_DOC)
    def publish_facts(counts: list[dict[str, int]]) -> Any:
        """Add up the shards' counts and publish them with the facts asset event."""
        from pipeline.tasks import summed

        totals = summed(list(counts))
        yield Metadata(FACTS, extra=totals)
        return totals

    @task(outlets=[RAW_DOCUMENTS], doc_md=CONTINUE_DOC)
    def continue_backlog(totals: dict[str, int]) -> Any:
        """Wake news_process again when the backlog outgrew this run's shards."""
        from pipeline.tasks import leftovers

        waiting = leftovers(settings(), totals)
        if not waiting:
            raise AirflowSkipException("the shards left no backlog behind")
        log.info("%d document(s) still wait after a shard spent its budget: running news_process again", waiting)
        yield Metadata(RAW_DOCUMENTS, extra={"waiting": waiting})
        return waiting

    continue_backlog(publish_facts(process_pending_documents.expand(shard=plan_shards())))


news_process()
