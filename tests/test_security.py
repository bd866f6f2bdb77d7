"""Security: the read-only analyst role, parameterised SQL, and no committed secrets."""

from __future__ import annotations

import ast
import re
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.db.migrations import apply_migrations
from pipeline.settings import Settings

from .conftest import ROOT, MakeDatabase

VIEWS = ["v_sections", "v_quotes", "v_entity_mentions", "v_dates", "v_quantities", "v_claims"]


@pytest.fixture
def reader_url(engine: sa.Engine, migrated_url: str) -> Iterator[str]:
    """A login role of the test's own that is a member of newsflow_reader, as docs/querying.md hands it out."""
    name = f"reader_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN IN ROLE newsflow_reader"))
    yield make_url(migrated_url).set(username=name, password=None).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {name}"))
        conn.execute(sa.text(f"DROP ROLE {name}"))


@pytest.mark.postgres
def test_the_reader_role_reads_the_views_and_nothing_else(reader_url: str) -> None:
    reader = sa.create_engine(reader_url, poolclass=sa.NullPool)
    with reader.connect() as conn:
        for view in VIEWS:
            conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 1")).all()
    refused = [
        "SELECT body_gzip FROM raw_documents LIMIT 1",
        "SELECT * FROM articles LIMIT 1",
        "SELECT * FROM ingest_errors LIMIT 1",
        "INSERT INTO entities (key, type, name) VALUES ('x', 'PERSON', 'X')",
        "UPDATE articles SET title = 'x'",
        "DELETE FROM sections",
        "CREATE TABLE mine (id int)",
        "TRUNCATE quotes",
    ]
    for statement in refused:
        with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text(statement))
    reader.dispose()


READER_REFUSED = {
    "a temporary table": "CREATE TEMP TABLE mine (id int)",
    "a temporary table by its schema": "CREATE TABLE pg_temp.mine (id int)",
    "a temporary view": "CREATE TEMP VIEW mine AS SELECT 1",
    "a function in pg_temp": "CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "a function in public": "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "a schema": "CREATE SCHEMA mine",
    "a large object by lo_create": "SELECT lo_create(0)",
    "a large object by lo_creat": "SELECT lo_creat(-1)",
    "a large object from bytes": "SELECT lo_from_bytea(0, 'x'::bytea)",
    "a large object from a server file": "SELECT lo_import('/etc/hostname')",
    "a large object from a server file, with an oid": "SELECT lo_import('/etc/hostname', 424242)",
}


@pytest.mark.postgres
@pytest.mark.parametrize("statement", READER_REFUSED.values(), ids=READER_REFUSED.keys())
def test_the_reader_role_creates_nothing(reader_url: str, statement: str) -> None:
    reader = sa.create_engine(reader_url, poolclass=sa.NullPool)
    with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.execute(sa.text(statement))
    with reader.connect() as conn:  # and it still reads every view
        for view in VIEWS:
            conn.execute(sa.text(f"SELECT * FROM {view} LIMIT 1")).all()
    reader.dispose()


@pytest.mark.postgres
def test_the_owner_keeps_temporary_tables_and_large_objects(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE scratch (id int)"))
        oid = conn.scalar(sa.text("SELECT lo_from_bytea(0, 'x'::bytea)"))
        conn.execute(sa.text("SELECT lo_unlink(:oid)"), {"oid": oid})


@pytest.mark.postgres
def test_a_database_owner_that_is_not_superuser_can_migrate(make_database: MakeDatabase, settings: Settings) -> None:
    """The compose stack's news owner migrates: what only a superuser may do is skipped with a warning."""
    url = make_database(migrated=False)
    admin = sa.create_engine(url, poolclass=sa.NullPool)
    name = f"owner_{uuid.uuid4().hex[:10]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN"))
        conn.execute(sa.text(f'ALTER DATABASE "{make_url(url).database}" OWNER TO {name}'))
    apply_migrations(make_url(url).set(username=name).render_as_string(hide_password=False), settings.sql_dir)
    with admin.connect() as conn:
        assert not conn.scalar(sa.text("SELECT has_database_privilege('public', current_database(), 'TEMPORARY')"))
    admin.dispose()


@pytest.mark.postgres
def test_every_analyst_view_is_granted_to_the_reader(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        views = set(conn.execute(sa.text("SELECT viewname FROM pg_views WHERE schemaname = 'public'")).scalars())
        granted = set(
            conn.execute(
                sa.text(
                    "SELECT table_name FROM information_schema.role_table_grants "
                    "WHERE grantee = 'newsflow_reader' AND privilege_type = 'SELECT'"
                )
            ).scalars()
        )
    assert views and views == granted


SQL_CALLS = {"text", "execute", "exec_driver_sql", "copy_expert", "execute_values", "mogrify"}


def _sql_built_from_variables(tree: ast.AST) -> Iterator[int]:
    """Lines where SQL handed to the database is an f-string, a %-format or a concatenation of variables."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        argument = node.args[1] if name == "execute_values" and len(node.args) > 1 else node.args[0]
        if name in SQL_CALLS and _is_built(argument):
            yield node.lineno


def _is_built(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return isinstance(node.func.value, ast.Constant)  # "... {} ...".format(x); sql.SQL(...).format is safe
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return not (_is_literal(node.left) and _is_literal(node.right))
    return False


def _is_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.BinOp) and _is_literal(node.left) and _is_literal(node.right)
    )


def test_sql_is_never_built_from_variables() -> None:
    """Values travel as bind parameters; table and column names are composed with psycopg2.sql.Identifier."""
    offenders = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _sql_built_from_variables(tree)]
    assert offenders == []


def test_the_sql_check_catches_string_built_sql() -> None:
    code = (
        'conn.execute(sa.text(f"SELECT * FROM t WHERE name = \'{name}\'"))\ncursor.execute("SELECT %s" % x)\n'
        'cursor.execute("SELECT * FROM {}".format(table))\ncursor.execute(SQL("SELECT {}").format(Identifier(t)))'
    )
    assert sorted(_sql_built_from_variables(ast.parse(code))) == [1, 2, 3]


SECRET_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"gh[pousr]_[A-Za-z0-9]{36}"),
    # a password-like assignment whose value is neither a change-me placeholder nor a ${VARIABLE}
    re.compile(
        r"(?i)(password|secret|token|fernet_key)[ \t]*[:=][ \t]*['\"]?(?!-?change-me|\$\{|<)[A-Za-z0-9+/_\-]{16,}"
    ),
]


def test_no_secret_is_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert ".env" not in tracked
    found = []
    for name in tracked:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".gz", ".pyc"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {m.group(0)[:40]}" for pattern in SECRET_PATTERNS for m in pattern.finditer(text)]
    assert found == []


def test_compose_reads_secrets_from_env_and_the_example_marks_them_local() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "path: .env" in compose
    for variable in ("POSTGRES_PASSWORD", "NEWS_DB_PASSWORD", "_AIRFLOW_WWW_USER_PASSWORD"):
        assert f"${{{variable}" in compose
        value = re.search(rf"^{variable}=(.*)$", example, re.MULTILINE)
        assert value and value.group(1) == "", variable  # compose refuses to start until each is filled in
    assert "local-only" in example.lower()
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def test_the_secret_scan_catches_secrets() -> None:
    fake = "s3cr3tV4lu3Xyz12345"  # pieces joined at run time, so this file does not trip its own scan
    samples = [
        "POSTGRES_PASSWORD=" + fake,
        "  password: '" + fake + "'",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "aws = AKIA" + "ABCDEFGHIJKLMNOP",
    ]
    assert all(any(p.search(sample) for p in SECRET_PATTERNS) for sample in samples)
    assert not any(p.search("JWT_SECRET: ${JWT_SECRET:-change-me-jwt-secret}") for p in SECRET_PATTERNS)
