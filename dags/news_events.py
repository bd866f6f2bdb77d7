"""
### news_events

Event-driven intake from two durable sources; each wakes this DAG through an asset watcher in the triggerer.

* **The intake queue** (a Redis Stream). Producers on any machine publish URLs and documents
  (`newsflow enqueue URL|FILE|DIR…`, the WebSub receiver, or `pipeline.sources.queue.publish` from code). The
  `newsflow_queue` asset's watcher, `QueueBacklogTrigger`, sees a backlog in the stream's consumer group;
  **drain_queue** then stages each message's page (fetched) or document in the raw store, acknowledging each only
  once it is staged, and publishes `newsflow_raw_documents`, so `news_process` turns them into facts. Messages
  wait in Redis while Airflow is down; none is processed twice (the `intake_messages` ledger); a malformed
  message is an `ingest_errors` row, and acknowledged.
* **The inbox** (`NEWSFLOW_INBOX`, default `.newsflow/inbox`), for local use. Producers drop documents (`.txt`,
  `.md`, `.html`, `.html.gz`, with optional `NAME.meta.yaml` sidecars) or URL lists (`.urls`, one URL per line),
  then ring the doorbell by creating the file `.ring` in it. The `newsflow_inbox` asset's watcher sees the
  doorbell and deletes it; **drain_inbox** ingests everything in the inbox and moves each file to `processed/`
  or `failed/`. Files and the doorbell wait on disk while Airflow is down; several rings collapse into one run.

A run drains the source whose watcher woke it (the other task is skipped); a run triggered by hand drains both,
skipping the queue when Redis cannot be reached. See docs/airflow.md, "Event intake through Redis".
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.standard.triggers.file import FileDeleteTrigger
from airflow.sdk import Asset, AssetWatcher, Metadata, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from newsflow_common import FACTS, RAW_DOCUMENTS, settings
from newsflow_triggers import QueueBacklogTrigger

from pipeline.settings import Settings

INBOX_DOC = """Ingest every file and URL list in the inbox, then move each to `processed/` or `failed/`. A file or
URL that fails is one log line and one `ingest_errors` row; the log ends with a table of counts. Skipped when only
the queue woke this run."""
QUEUE_DOC = """Stage every message waiting in the intake queue (a page fetched, or a document taken) in the raw store,
acknowledging each once staged; a message that fails is one log line and one `ingest_errors` row. The log ends with
a table of counts; `redelivered` counts messages already staged before a crash (acknowledged, not done twice).
Skipped when only the inbox's doorbell woke this run."""
ENVIRONMENT = Settings.from_env()
DOORBELL = ENVIRONMENT.inbox_dir / ".ring"
INBOX = Asset(
    "newsflow_inbox",
    uri="newsflow://inbox",
    watchers=[
        AssetWatcher(name="newsflow_inbox_doorbell", trigger=FileDeleteTrigger(filepath=str(DOORBELL), poke_interval=5))
    ],
)
QUEUE = Asset(
    "newsflow_queue",
    uri="newsflow://queue",
    watchers=[
        AssetWatcher(
            name="newsflow_queue_backlog",
            trigger=QueueBacklogTrigger(stream=ENVIRONMENT.queue_stream, group=ENVIRONMENT.queue_group),
        )
    ],
)
log = logging.getLogger(__name__)


def woken_by(triggering_asset_events: Any, asset: Asset) -> bool | None:
    """Whether ``asset``'s watcher woke this run; None for a run without asset events (triggered by hand)."""
    woken = {getattr(key, "name", None) or str(key) for key in (triggering_asset_events or {})}
    for name in woken:
        log.info("woken by %s", name)
    return (asset.name in woken or asset.uri in woken) if woken else None


@dag(
    dag_id="news_events",
    description="Stage what producers publish to the intake queue (Redis) or drop in the inbox, when they do",
    schedule=(QUEUE | INBOX),
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    doc_md=__doc__,
    tags=["newsflow", "ingest", "events"],
)
def news_events() -> None:
    @task(outlets=[RAW_DOCUMENTS], doc_md=QUEUE_DOC)
    def drain_queue(triggering_asset_events: Any = None) -> Any:
        """Stage every waiting message in the raw store, acknowledging each once staged."""
        from pipeline.errors import QueueUnavailableError
        from pipeline.tasks import drain_queue as drain

        woken = woken_by(triggering_asset_events, QUEUE)
        if woken is False:
            raise AirflowSkipException("woken by the inbox's doorbell, not the queue")
        try:
            counts = drain(settings(), trigger="news_events")
        except QueueUnavailableError as error:
            if woken:
                raise
            raise AirflowSkipException(f"triggered by hand and the intake queue cannot be reached: {error}") from error
        yield Metadata(RAW_DOCUMENTS, extra=counts)
        return counts

    @task(outlets=[FACTS], doc_md=INBOX_DOC)
    def drain_inbox(triggering_asset_events: Any = None) -> Any:
        """Ingest every file and URL list in the inbox, then move each to processed/ or failed/."""
        from pipeline.tasks import drain_inbox as drain

        if woken_by(triggering_asset_events, INBOX) is False:
            raise AirflowSkipException("woken by the queue, not the inbox's doorbell")
        newsflow = settings()
        counts = drain(newsflow, newsflow.inbox_dir, trigger="news_events")
        yield Metadata(FACTS, extra=counts)
        return counts

    drain_queue()
    drain_inbox()


news_events()
