"""Newsflow's event trigger, run by the triggerer (not a DAG; see .airflowignore).

The triggerer imports a trigger by its class path and puts only ``$AIRFLOW_HOME/config`` and the plugins folder
on ``sys.path``, not the DAGs folder: every Airflow process runs with this folder on ``PYTHONPATH`` (``make
airflow``, compose, tests/airflow_stack.py) so that ``newsflow_triggers`` imports there too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


class QueueBacklogTrigger(BaseEventTrigger):
    """Fires while the intake queue's consumer group has a backlog (messages pending or not delivered yet).

    It reads the backlog (XINFO, nothing is taken: the drain takes and acknowledges) every ``poll_seconds``,
    fires once on a backlog, again when new messages arrive, and again when a backlog stays ``refire_seconds``
    (a drain that ran out of time or failed), never in a hot loop. Redis being down is a warning in the
    triggerer's log and the trigger goes on polling; the messages wait in Redis. The Redis URL is the
    triggerer's ``NEWSFLOW_QUEUE_URL`` (it may carry a password, so it is not serialised with the trigger)."""

    def __init__(self, stream: str, group: str, poll_seconds: float = 5.0, refire_seconds: float = 60.0) -> None:
        super().__init__()
        self.stream, self.group = stream, group
        self.poll_seconds, self.refire_seconds = poll_seconds, refire_seconds
        self.redis_down = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"stream": self.stream, "group": self.group, "poll_seconds": self.poll_seconds,
                  "refire_seconds": self.refire_seconds}  # fmt: skip
        return ("newsflow_triggers.QueueBacklogTrigger", kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from pipeline.settings import Settings
        from pipeline.sources import queue as broker

        queue, fired, fired_at = broker.connect(Settings.from_env().queue_url), None, 0.0
        while True:
            backlog = await self._backlog(queue)
            since = time.monotonic() - fired_at
            if backlog and broker.should_wake(backlog, fired, since_fired=since, refire_seconds=self.refire_seconds):
                fired, fired_at = backlog, time.monotonic()
                self.log.info("intake queue backlog: %d pending, %d waiting", backlog.pending, backlog.waiting)
                payload = {"stream": self.stream, "pending": backlog.pending, "waiting": backlog.waiting}
                yield TriggerEvent({**payload, "last_id": backlog.last_id})
            await asyncio.sleep(self.poll_seconds)

    async def _backlog(self, queue: Any) -> Any:
        """The group's backlog, or None (logged once per outage) while Redis cannot be reached."""
        from pipeline.errors import QueueUnavailableError
        from pipeline.sources import queue as broker

        try:
            backlog = await asyncio.to_thread(broker.backlog, queue, self.stream, self.group)
        except QueueUnavailableError as error:
            if not self.redis_down:
                self.log.warning("%s; the messages wait in Redis; polling every %s s", error, self.poll_seconds)
            self.redis_down = True
            return None
        self.redis_down = False
        return backlog
