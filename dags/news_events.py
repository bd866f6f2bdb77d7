"""
### news_events

Event-driven intake. Producers drop documents (`.txt`, `.md`, `.html`, `.html.gz`, with optional
`NAME.meta.yaml` sidecars) or URL lists (`.urls`, one URL per line) into the inbox (`NEWSFLOW_INBOX`,
default `.newsflow/inbox`), then ring the doorbell by creating the file `.ring` in it. An `AssetWatcher`
in the triggerer sees the doorbell, deletes it and updates the `newsflow_inbox` asset; this DAG then
ingests everything in the inbox and moves each file to `processed/` or `failed/`.

The inbox is durable: files and the doorbell wait on disk while Airflow is down and are taken up when
it comes back; several rings before a run collapse into one run that drains the whole inbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.standard.triggers.file import FileDeleteTrigger
from airflow.sdk import Asset, AssetWatcher, Metadata, dag, task
from newsflow_common import FACTS, settings

from pipeline.settings import Settings

DRAIN_DOC = """Ingest every file and URL list in the inbox, then move each to `processed/` or `failed/`. A file or
URL that fails is one log line and one `ingest_errors` row; the log ends with a table of counts."""
DOORBELL = Settings.from_env().inbox_dir / ".ring"
INBOX = Asset(
    "newsflow_inbox",
    uri="newsflow://inbox",
    watchers=[
        AssetWatcher(name="newsflow_inbox_doorbell", trigger=FileDeleteTrigger(filepath=str(DOORBELL), poke_interval=5))
    ],
)


@dag(
    dag_id="news_events",
    description="Ingest what producers drop in the inbox, when they ring its doorbell",
    schedule=[INBOX],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["newsflow", "ingest", "events"],
)
def news_events() -> None:
    @task(outlets=[FACTS], doc_md=DRAIN_DOC)
    def drain_inbox() -> Any:
        """Ingest every file and URL list in the inbox, then move each to processed/ or failed/."""
        from pipeline.tasks import drain_inbox as drain

        newsflow = settings()
        counts = drain(newsflow, newsflow.inbox_dir, trigger="news_events")
        yield Metadata(FACTS, extra=counts)
        return counts

    drain_inbox()


news_events()
