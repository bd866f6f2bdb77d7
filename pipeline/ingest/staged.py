"""The scheduled path: fetch into the raw store, process what waits there, and reprocess stored versions.

``news_daily`` fetches feed entries into the raw store (``stage_values``); ``process_pending`` claims what
waits there and runs the batch step over it; ``reprocess`` re-derives the facts of stored articles from their
raw bytes after an extractor upgrade, without fetching anything.

Poison never stalls the queue. A staged document that fails is closed with its error by the failure
recorder. One that kills its process (a crash, the OOM killer) stays claimed by a run that is over; the next
run takes such documents one at a time, so only the culprit dies again, and once its processing has died
``NEWSFLOW_QUARANTINE_ATTEMPTS`` times it is closed as quarantined (``v_quarantined_documents``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from sqlalchemy.engine import Engine

from pipeline.db import raw_store
from pipeline.db.raw_store import ClaimPolicy
from pipeline.errors import NothingToReprocessError
from pipeline.ingest.boundary import guarded
from pipeline.ingest.run import Input, Run, RunSummary, open_run
from pipeline.ingest.step import batches, ingest_batch, read
from pipeline.models import Failure, storable
from pipeline.settings import Settings
from pipeline.sources.naming import source_names

DEFAULT_LIMIT = 1000


def process_pending(
    settings: Settings,
    engine: Engine,
    *,
    limit: int = DEFAULT_LIMIT,
    trigger: str = "process",
    seconds: float | None = None,
) -> RunSummary:
    """Process up to ``limit`` staged documents, oldest first, claiming a batch at a time until none waits or
    the time budget (``seconds``, checked before each claim after the first) is spent; each failure is recorded
    and closes its document. Several of these may run at once (news_process's shards): a claim is exclusive."""
    deadline = None if seconds is None else settings.clock() + seconds
    with open_run(settings, engine, trigger=trigger) as run:
        policy = ClaimPolicy(run.id, settings.claim_lease_seconds, settings.quarantine_attempts)
        _quarantine(run, policy)
        while run.summary.seen < limit:
            claimed = _claim(run, policy, limit - run.summary.seen)
            if not claimed:
                break
            ingest_batch(run, [Input(version.source, stored=version, claimed=True) for version in claimed])
            if deadline is not None and settings.clock() >= deadline:
                break
    return run.summary


def plan_shards(settings: Settings, engine: Engine) -> tuple[int, int]:
    """The documents waiting now, and how many shards should share them (``shard_count``)."""
    waiting = raw_store.waiting(engine)
    return waiting, shard_count(settings, waiting)


def shard_count(settings: Settings, waiting: int) -> int:
    """How many shards news_process runs for ``waiting`` documents: ``NEWSFLOW_PROCESS_SHARDS`` at most, and no
    more than there are batches to share (``NEWSFLOW_BATCH_SIZE`` documents each); at least one."""
    batches_waiting = -(-max(waiting, 0) // settings.batch_size)
    return max(1, min(settings.process_shards, batches_waiting))


def _claim(run: Run, policy: ClaimPolicy, room: int) -> list[raw_store.StoredVersion]:
    """One document a dead process left behind, alone (if it kills this process too, nothing else dies with it),
    else a batch of never-tried ones. Left-behind documents go first, so a long backlog cannot starve them."""
    assert run.engine is not None
    engine = run.engine
    return run.retrying(lambda: _claim_next(engine, policy, min(run.settings.batch_size, room)))


def _claim_next(engine: Engine, policy: ClaimPolicy, size: int) -> list[raw_store.StoredVersion]:
    """Between batches this run holds no claim it is working on: what a claim lost with its connection took is
    given back first, so trying again claims nothing twice and counts no attempt that did not happen."""
    raw_store.release(engine, policy.run_id)
    left_behind = raw_store.claim(engine, policy, limit=1, fresh=False)
    return left_behind or raw_store.claim(engine, policy, limit=size, fresh=True)


def _quarantine(run: Run, policy: ClaimPolicy) -> None:
    assert run.engine is not None
    engine = run.engine
    for source, reason in run.retrying(lambda: raw_store.quarantine(engine, policy)):
        run.fail(Input(source), Failure(source, "process", reason))


def reprocess(
    settings: Settings, engine: Engine, *, sources: list[str] | None = None, trigger: str = "reprocess"
) -> RunSummary:
    """Re-derive the facts of stored articles from their raw bytes: all of them when ``sources`` is empty or
    blank, else those each source names (as given, as a canonical URL, or as a name an input was given as). A
    source that names nothing is its own error row; ``NothingToReprocessError`` when none names anything."""
    wanted = [source.strip() for source in sources or [] if source.strip()] or None
    with open_run(settings, engine, trigger=trigger) as run:
        ids, unmatched = run.retrying(lambda: _stored_ids(engine, wanted))
        if wanted and not ids:
            raise NothingToReprocessError(NOTHING_MATCHES.format(sources=", ".join(map(repr, unmatched))))
        for source in unmatched:
            run.fail(Input(source), Failure(source, "reprocess", NO_MATCH))
        for chunk in batches(ids, settings.batch_size):
            versions = run.retrying(partial(raw_store.versions, engine, chunk))
            ingest_batch(run, [Input(version.source, stored=version) for version in versions], force=True)
    return run.summary


NO_MATCH = "no stored article has this source, canonical URL or requested name"
NOTHING_MATCHES = (
    "nothing to reprocess: no stored article matches {sources}; give a source as it was ingested (a URL or "
    "path) or an article's canonical URL (SELECT source, url FROM articles), or leave sources empty for all"
)


def _stored_ids(engine: Engine, wanted: list[str] | None) -> tuple[list[int], list[str]]:
    """The stored versions to redo, in article order without repeats, and the sources that named none."""
    if wanted is None:
        return raw_store.stored_ids(engine, sources=None), []
    ids: dict[int, None] = {}
    unmatched = []
    for source in wanted:
        names = [storable(name) for name in source_names(source)]  # as sources are stored: a NUL escaped…
        found = raw_store.stored_ids(engine, sources=names)
        ids.update(dict.fromkeys(found))
        if not found:
            unmatched.append(source)
    return sorted(ids), unmatched


def stage_values(run: Run, values: Iterable[str]) -> None:
    """Fetch or read each input into the raw store, unless exactly this version is already there."""
    stage_inputs(run, (Input(value) for value in values))


def stage_inputs(run: Run, inputs: Iterable[Input]) -> None:
    """Fetch, read or take each input into the raw store, one at a time, unless exactly this version is there."""
    for item in inputs:
        _stage_one(run, item)


def _stage_one(run: Run, item: Input) -> None:
    engine, value = run.engine, item.name
    assert engine is not None
    raw = read(run, item)
    if isinstance(raw, Failure):
        return
    raw_id = guarded(run, item, "stage", lambda: raw_store.stage(engine, raw, run_id=run.id))
    if isinstance(raw_id, Failure):
        return
    if raw_id is not None:
        run.summary.raw_documents[value] = raw_id
    run.succeed(item, "unchanged" if raw_id is None else "staged")
