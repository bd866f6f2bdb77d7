"""What the Newsflow DAG files share: their assets and the settings lookup (not a DAG; see .airflowignore)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, BaseHook

RAW_DOCUMENTS = Asset("newsflow_raw_documents", uri="newsflow://raw_documents")
FACTS = Asset("newsflow_facts", uri="newsflow://facts")


def settings() -> Any:
    """Pipeline settings, with the ``newsflow_db`` connection's URL when that connection is set."""
    from pipeline.tasks import settings_for

    return settings_for(lambda: BaseHook.get_connection("newsflow_db").get_uri())
