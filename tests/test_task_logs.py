"""What an operator reads in an Airflow task's log: one line per failure with its URL, stage and reason, a table
of counts at the end, and mapped fetch tasks named by the feeds they poll."""

from __future__ import annotations

import logging

import pytest

from pipeline.ingest.run import RunSummary
from pipeline.models import Failure
from pipeline.tasks import MAX_FAILURE_LINES, MAX_LABEL_CHARS, counts_table, feed_batch_label, reported


def summary_with(failures: list[Failure]) -> RunSummary:
    summary = RunSummary(run_id=42, failures=failures)
    summary.outcomes.update({"loaded": 3, "failed": len(failures), "staged": 2})
    return summary


def test_each_failure_is_one_line_naming_url_stage_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    failures = [
        Failure("https://news.example/dead", "fetch", "HTTP 404 Not Found"),
        Failure("https://feeds.example/rss.xml", "feed", "not a feed: text/html"),
    ]
    with caplog.at_level(logging.INFO, logger="pipeline.tasks"):
        counts = reported(summary_with(failures), "fetched 2 feed(s)")
    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert lines == [
        "failed: https://news.example/dead [fetch] HTTP 404 Not Found",
        "failed: https://feeds.example/rss.xml [feed] not a feed: text/html",
    ]
    table = caplog.records[-1].getMessage().splitlines()
    assert table[0] == "fetched 2 feed(s), ingest run 42:"
    assert table[1].split() == [*counts, "entities"]
    assert dict(zip(table[1].split(), table[2].split(), strict=True)) == {
        **{name: str(value) for name, value in counts.items()}, "entities": "0"
    }
    assert (counts["seen"], counts["loaded"], counts["failed"], counts["staged"]) == (7, 3, 2, 2)


def test_a_flood_of_failures_is_capped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    failures = [Failure(f"https://x.example/{n}", "fetch", "timed out") for n in range(MAX_FAILURE_LINES + 250)]
    with caplog.at_level(logging.WARNING, logger="pipeline.tasks"):
        reported(summary_with(failures), "fetched")
    assert len(caplog.records) == MAX_FAILURE_LINES + 1
    more = caplog.records[-1].getMessage()
    assert more.startswith("… and 250 more failures (SELECT * FROM ingest_errors WHERE run_id = 42")


def test_counts_table_aligns_each_column() -> None:
    header, values = counts_table({"seen": 12345, "failed": 0}).splitlines()
    assert (header, values) == (" seen  failed", "12345       0")


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        ([], "no feeds"),
        (["https://a.example/feed.xml", "http://b.example/rss/"], "a.example/feed.xml, b.example/rss"),
    ],
)
def test_a_feed_batch_is_named_by_its_feeds(feeds: list[str], expected: str) -> None:
    assert feed_batch_label(feeds) == expected


def test_a_long_feed_batch_name_is_cut_and_counts_the_rest() -> None:
    feeds = [f"https://site{n}.example/" + "x" * 60 + "/feed.xml" for n in range(10)]
    label = feed_batch_label(feeds)
    assert len(label) <= MAX_LABEL_CHARS and label.endswith("more)")
    shown = label.count("site")
    assert label.endswith(f"(+{10 - shown} more)") and shown >= 1


def test_one_feed_longer_than_the_label_is_still_named() -> None:
    label = feed_batch_label(["https://a.example/" + "y" * 5000])
    assert len(label) <= MAX_LABEL_CHARS and label.startswith("a.example/yyy")
