"""
### news_queue

Event-driven intake through a real broker. Producers publish URLs and documents to a Redis Stream
(`newsflow enqueue URL|FILE|DIR…`, or `pipeline.sources.queue.publish` from code: the WebSub receiver does).
The `newsflow_queue` asset's watcher, a trigger in the triggerer, sees a backlog in the stream's consumer group
and updates the asset; this DAG then drains the stream: each message's page is fetched (or its document taken)
into the raw store, and only then acknowledged. It publishes `newsflow_raw_documents`, so `news_process` turns
what it staged into articles and facts.

Messages wait in Redis while Airflow is down; none is processed twice (the `intake_messages` ledger); a
malformed message is an `ingest_errors` row and acknowledged. See docs/airflow.md, "Event intake through Redis".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Asset, AssetWatcher, Metadata, dag, task
from newsflow_common import RAW_DOCUMENTS, settings
from newsflow_triggers import QueueBacklogTrigger

from pipeline.settings import Settings

DRAIN_DOC = """Stage every message waiting in the intake queue (a page fetched, or a document taken) in the raw store,
acknowledging each once staged; a message that fails is one log line and one `ingest_errors` row. The log ends with
a table of counts; `redelivered` counts messages already staged before a crash (acknowledged, not done twice)."""
QUEUE_SETTINGS = Settings.from_env()
QUEUE = Asset(
    "newsflow_queue",
    uri="newsflow://queue",
    watchers=[
        AssetWatcher(
            name="newsflow_queue_backlog",
            trigger=QueueBacklogTrigger(stream=QUEUE_SETTINGS.queue_stream, group=QUEUE_SETTINGS.queue_group),
        )
    ],
)


@dag(
    dag_id="news_queue",
    description="Stage what producers publish to the intake queue (Redis), then news_process runs on it",
    schedule=[QUEUE],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    doc_md=__doc__,
    tags=["newsflow", "ingest", "events"],
)
def news_queue() -> None:
    @task(outlets=[RAW_DOCUMENTS], doc_md=DRAIN_DOC)
    def drain_queue() -> Any:
        """Stage every waiting message in the raw store, acknowledging each once staged."""
        from pipeline.tasks import drain_queue as drain

        counts = drain(settings(), trigger="news_queue")
        yield Metadata(RAW_DOCUMENTS, extra=counts)
        return counts

    drain_queue()


news_queue()
