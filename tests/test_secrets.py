"""No password reaches a person: every URL shown (the CLI's lines, errors, logs) has it masked as ``***``,
while ``newsflow db url``, which is for machines (``psql "$(newsflow db url)"``), keeps it."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.db.engine import PASSWORD_MASK, normalise_url, psql_command, scrubbed, shown_url
from pipeline.errors import DatabaseUnavailableError

from .conftest import ROOT, SEED, MakeDatabase

TOKEN = "S3cr3tToken"
# Every character a URL treats specially, around a token that survives any percent-encoding.
NASTY_PASSWORD = TOKEN + "p@ss:w/rd?#&=% '\"\\"
ENCODED = quote(NASTY_PASSWORD, safe="")

NASTY_URLS = [
    f"postgresql://newsflow:{ENCODED}@db.example:5432/news",
    f"postgresql+psycopg2://newsflow:{ENCODED}@db.example/news?sslmode=require",
    f"postgres://newsflow:{TOKEN}p@ss@db.example/news",  # an unescaped "@" in the password
    f"postgres://newsflow:{TOKEN}pa/ss@db.example/news",  # an unescaped "/" in the password
    f"postgresql://newsflow@db.example/news?sslmode=require&password={ENCODED}",
    f"postgresql://newsflow@db.example/news?PASSWORD={TOKEN}&sslpassword={TOKEN}x",
    f"postgresql://newsflow:{TOKEN}@db.example:notaport/news",
    f"host=db.example user=newsflow password={TOKEN} dbname=news",
    f"host=db.example password = '{TOKEN} with spaces' dbname=news",
]
# As SQLAlchemy writes it: "%", "@", ":", "/" escaped, but a space left as it is.
_RENDERED_NASTY_URL = (
    make_url("postgresql://newsflow@db.example/news").set(password=NASTY_PASSWORD).render_as_string(hide_password=False)
)
NASTY_URLS.append(_RENDERED_NASTY_URL)


@pytest.mark.parametrize("url", NASTY_URLS)
def test_shown_url_masks_every_password(url: str) -> None:
    shown = shown_url(url)
    assert TOKEN not in shown and PASSWORD_MASK in shown
    assert "db.example" in shown


def test_shown_url_leaves_a_url_without_password_alone() -> None:
    url = "postgresql://newsflow@db.example:5432/news?sslmode=require"
    assert shown_url(url) == url


@pytest.mark.parametrize("url", [NASTY_URLS[0], NASTY_URLS[4], _RENDERED_NASTY_URL])
def test_scrubbed_masks_the_password_in_any_form(url: str) -> None:
    message = f"failed with {url}; password {NASTY_PASSWORD}, encoded {ENCODED} or {quote_plus(NASTY_PASSWORD)}"
    assert TOKEN not in scrubbed(message, url)


def test_psql_command_has_no_password() -> None:
    engine = sa.create_engine(f"postgresql+psycopg2://u:{ENCODED}@h/news?password={TOKEN}&sslmode=require")
    command = psql_command(engine)
    assert TOKEN not in command and "postgresql://u@h/news?sslmode=require" in command


def _newsflow(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSFLOW_DATABASE_URL": url, "COLUMNS": "300"}
    command = [sys.executable, "-c", "from pipeline.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def _with_password(url: str) -> str:
    """The test server's URL with a password (the trust server ignores it)."""
    return make_url(url).set(password=NASTY_PASSWORD).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_a_real_ingest_never_prints_the_password(make_database: MakeDatabase) -> None:
    url = _with_password(make_database(migrated=False))
    result = _newsflow(url, "ingest", str(SEED))
    assert result.returncode == 0, result.stderr
    assert "Look at the data:" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert TOKEN in _newsflow(url, "db", "url").stdout  # for machines: psql "$(newsflow db url)"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "broken",
    [
        lambda url: make_url(url).set(port=1).render_as_string(hide_password=False),  # nobody listens
        lambda url: make_url(url).set(database="no_such_database").render_as_string(hide_password=False),
        lambda url: make_url(url).update_query_dict({"no_such_option": "1"}).render_as_string(hide_password=False),
        lambda url: url.replace(":5432/", ":notaport/"),
        lambda url: (
            make_url(url).set(password=None, database="no_such_database").render_as_string(hide_password=False)
            + f"?password={ENCODED}"
        ),
        lambda url: f"host=127.0.0.1 password={TOKEN} dbname=news",
    ],
    ids=["refused", "no-database", "bad-option", "bad-port", "query-password", "key-value"],
)
def test_database_errors_never_print_the_password(make_database: MakeDatabase, broken) -> None:  # type: ignore[no-untyped-def]
    url = broken(_with_password(make_database(migrated=False)))
    result = _newsflow(url, "db", "migrate")
    assert result.returncode == 3, result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr


# Red team, round 3. A URL with no "//", or no scheme at all: everything from the first ":" to the last "@" is
# taken for a password.
UNPARSED_URLS = [
    f"postgres:{TOKEN}@db.example:5432/news",
    f"postgresql:newsflow:{TOKEN}@db.example/news",
    f"newsflow:{TOKEN}@db.example/news",
    f"postgresql:/newsflow:{TOKEN}@db.example/news",
    f"newsflow:{TOKEN}p@ss@db.example/news",
]


@pytest.mark.parametrize("url", UNPARSED_URLS)
def test_shown_url_masks_a_password_in_text_that_is_no_url(url: str) -> None:
    shown = shown_url(url)
    assert TOKEN not in shown and PASSWORD_MASK in shown
    assert "db.example" in shown


# A password with an unescaped "@" (SQLAlchemy ends it at the first "@", libpq echoes the "host" it then
# sees), a driver that is not psycopg2, a misspelt scheme: refused before any connection, as one masked line.
REFUSED_URLS = [
    f"postgresql://newsflow:Sekr@{TOKEN}@127.0.0.1:5432/news",
    f"postgresql://newsflow:{TOKEN}@p@ss@127.0.0.1/news",
    f"postgres://newsflow:Sekr@{TOKEN}/x@127.0.0.1/news",
    f"postgresql://newsflow:Sekr?x@{TOKEN}@127.0.0.1/news",
    f"postgres:{TOKEN}@127.0.0.1:5432/news",
    f"postgressql://newsflow:{TOKEN}@127.0.0.1/news",
    f"mysql://newsflow:{TOKEN}@127.0.0.1/news",
    "sqlite:///news.db",
    f"postgresql+asyncpg://newsflow:{TOKEN}@127.0.0.1/news",
    f"postgresql+pg8000://newsflow:{TOKEN}@127.0.0.1/news",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_normalise_url_refuses_what_psycopg2_would_misread(url: str) -> None:
    with pytest.raises(DatabaseUnavailableError) as raised:
        normalise_url(url)
    message = str(raised.value)
    assert TOKEN not in message
    assert PASSWORD_MASK in message or url.startswith("sqlite")
    assert "127.0.0.1" in message or "news.db" in message
    assert ("%40" in message) == (url.split("?")[0].count("@") > 1 or "Sekr?x@" in url)


@pytest.mark.parametrize("url", REFUSED_URLS[:1] + REFUSED_URLS[4:7] + REFUSED_URLS[8:])
def test_a_refused_url_is_one_masked_line_and_exit_3(url: str) -> None:
    result = _newsflow(url, "db", "migrate")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("error: not a ") and "Traceback" not in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_an_escaped_at_sign_is_accepted() -> None:
    url = f"postgresql://newsflow:Sekr%40{TOKEN}@127.0.0.1:5432/news"
    assert make_url(normalise_url(url)).password == f"Sekr@{TOKEN}"


# A short or guessable password is not revealed by masking it where it is an ordinary word of the message.
@pytest.mark.parametrize(
    ("password", "message", "kept"),
    [
        ("5432", 'connection to server at "127.0.0.1", port 5432 failed', "port 5432 failed"),
        ("newsflow", 'role "newsflow" does not exist', 'role "newsflow"'),
        ("news", "the newsflow database is down", "newsflow database"),
        ("abc", "abcdef: the server abc refused", "server abc refused"),
    ],
)
def test_scrubbed_does_not_reveal_a_password_by_masking_ordinary_words(password: str, message: str, kept: str) -> None:
    url = f"postgresql://newsflow:{password}@127.0.0.1/news"
    assert kept in scrubbed(message, url)


@pytest.mark.parametrize(
    "message",
    [
        f"failed with postgresql://newsflow:{TOKEN}@127.0.0.1/news",
        f"could not use password={TOKEN} here",
        f'could not translate host name "{TOKEN}"',
        f"the token {TOKEN} was refused",
        f"(x:{TOKEN})",
    ],
)
def test_scrubbed_still_masks_the_password_as_a_token(message: str) -> None:
    assert TOKEN not in scrubbed(message, f"postgresql://newsflow:{TOKEN}@127.0.0.1/news")


def test_scrubbed_masks_every_reading_of_a_password_with_an_at_sign() -> None:
    url = f"postgresql://newsflow:Sekr@{TOKEN}@127.0.0.1/news"
    assert TOKEN not in scrubbed(f'could not translate host name "{TOKEN}@127.0.0.1"; Sekr@{TOKEN}', url)
