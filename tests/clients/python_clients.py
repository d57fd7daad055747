"""Python drivers against a running `discern serve`, over TLS with certificate checks.

Run by tests/clients.rs with DISCERN_HOST, DISCERN_PORT, DISCERN_USER, DISCERN_PASSWORD,
DISCERN_CERT (the server certificate to trust) and DISCERN_REPORT (the discrimination report
SQL). Each check prints one line; any failure raises, and the script exits non-zero.
"""

import asyncio
import math
import os
import sys

HOST = os.environ["DISCERN_HOST"]
PORT = int(os.environ["DISCERN_PORT"])
USER = os.environ["DISCERN_USER"]
PASSWORD = os.environ["DISCERN_PASSWORD"]
CERT = os.environ["DISCERN_CERT"]
REPORT = open(os.environ["DISCERN_REPORT"], encoding="utf-8").read()

# verify-ca: the chain must lead to the server's certificate (its SAN is localhost/127.0.0.1).
DSN = (
    f"host={HOST} port={PORT} dbname=discern user={USER} password={PASSWORD} "
    f"sslmode=verify-full sslrootcert={CERT}"
)


def check(name, condition, detail=""):
    if not condition:
        raise AssertionError(f"{name}: {detail}")
    print(f"ok  {name}")


def psycopg2_checks():
    import psycopg2
    import psycopg2.errors

    conn = psycopg2.connect(DSN)
    check("psycopg2 connects over TLS", conn.info.ssl_in_use)
    check("psycopg2 server_version", conn.server_version >= 160000, conn.server_version)
    cur = conn.cursor()
    # autocommit off: psycopg2 sends BEGIN implicitly; client-side parameters.
    cur.execute(
        "SELECT count(*) FROM measurements WHERE biomarker = %s AND value > %s",
        ("iron", 0.0),
    )
    (n,) = cur.fetchone()
    check("psycopg2 parameters", n > 0, n)
    check("psycopg2 implicit BEGIN", conn.info.transaction_status == 2, conn.info.transaction_status)
    try:
        cur.execute("SELECT * FROM no_such_table")
        raise AssertionError("no error")
    except psycopg2.errors.UndefinedTable:
        pass
    check("psycopg2 UndefinedTable", True)
    try:
        cur.execute("SELECT 1")
        raise AssertionError("no error in a failed transaction")
    except psycopg2.errors.InFailedSqlTransaction:
        pass
    check("psycopg2 InFailedSqlTransaction (25P02)", True)
    conn.rollback()
    cur.execute("SELECT auc(m.value, s.is_case) FROM measurements m JOIN samples s USING (sample_id) WHERE biomarker = 'iron'")
    (auc,) = cur.fetchone()
    check("psycopg2 auc is a float", isinstance(auc, float) and 0 <= auc <= 1, auc)
    cur.execute("SELECT mann_whitney(m.value, s.is_case) FROM measurements m JOIN samples s USING (sample_id) WHERE biomarker = 'iron'")
    (mw,) = cur.fetchone()
    # A STRUCT is a PostgreSQL record: (u,z,p) as text.
    fields = [float(x) for x in mw.strip("()").split(",")]
    check("psycopg2 STRUCT arrives as a record", len(fields) == 3 and 0 <= fields[2] <= 1, mw)
    cur.execute(TYPES_SQL)
    row = cur.fetchone()
    check("psycopg2 types", expected_types(row), row)
    cur.execute("SELECT current_database()")
    check("psycopg2 current_database()", cur.fetchone()[0] == "discern")
    # A named cursor: DECLARE … CURSOR, FETCH FORWARD n (simple protocol).
    with conn.cursor(name="psycopg2_cursor") as named:
        named.itersize = 3
        named.execute("SELECT sample_id FROM samples ORDER BY sample_id LIMIT %s OFFSET %s", (7, 2))
        ids = [r[0] for r in named]
    check("psycopg2 named cursor with LIMIT/OFFSET", ids == list(range(3, 10)), ids)
    conn.commit()
    conn.close()


TYPES_SQL = (
    "SELECT CAST(1 AS BIGINT) AS i8, CAST(2 AS INT) AS i4, CAST(0.5 AS DOUBLE) AS f8, 'x' AS t, "
    "true AS b, CAST('2024-01-02 03:04:05' AS TIMESTAMP) AS ts, CAST(1.25 AS DECIMAL(10, 2)) AS n, "
    "[1, 2, 3] AS arr"
)
STRUCT_SQL = (
    "SELECT mann_whitney(m.value, s.is_case) AS mw FROM measurements m "
    "JOIN samples s USING (sample_id) WHERE biomarker = 'iron'"
)


def expected_types(row):
    import datetime
    import decimal

    return (
        row[0] == 1 and row[1] == 2 and row[2] == 0.5 and row[3] == "x" and row[4] is True
        and row[5] == datetime.datetime(2024, 1, 2, 3, 4, 5)
        and row[6] == decimal.Decimal("1.25") and list(row[7]) == [1, 2, 3]
    )


def psycopg3_checks():
    import psycopg

    with psycopg.connect(DSN) as conn:
        # Server-side prepared statements (named after prepare=True), binary results.
        with conn.cursor(binary=True) as cur:
            for _ in range(3):
                cur.execute(
                    "SELECT count(*), avg(value) FROM measurements WHERE biomarker = %s",
                    ("iron",),
                    prepare=True,
                )
                n, mean = cur.fetchone()
            check("psycopg3 prepared + binary", n > 0 and isinstance(mean, float), (n, mean))
        # Pipeline mode, with an error in the middle and recovery after it.
        with conn.pipeline():
            c1 = conn.execute("SELECT 1")
            c2 = conn.execute("SELECT 2")
        check("psycopg3 pipeline", c1.fetchone()[0] == 1 and c2.fetchone()[0] == 2)
        # An error inside a pipeline: the server skips to Sync, the connection recovers.
        try:
            with conn.pipeline():
                conn.execute("SELECT 1")
                conn.execute("SELECT * FROM no_such_table")
                conn.execute("SELECT 3")
            raise AssertionError("no error")
        except psycopg.errors.UndefinedTable:
            conn.rollback()
        check("psycopg3 pipeline error and recovery", conn.execute("SELECT 4").fetchone()[0] == 4)
        for binary in (False, True):
            with conn.cursor(binary=binary) as cur:
                row = cur.execute(TYPES_SQL).fetchone()
                check(f"psycopg3 types (binary={binary})", expected_types(row), row)
        row = conn.execute(STRUCT_SQL).fetchone()
        check("psycopg3 STRUCT as a record", isinstance(row[0], (str, tuple)), row)
        try:
            conn.execute("SELECT * FROM no_such_table")
            raise AssertionError("no error")
        except psycopg.errors.UndefinedTable:
            conn.rollback()
        check("psycopg3 UndefinedTable", True)
        # COPY TO STDOUT (how psycopg exports reports).
        with conn.cursor() as cur:
            with cur.copy("COPY (SELECT sample_id, is_case FROM samples ORDER BY sample_id LIMIT 5) TO STDOUT") as copy:
                rows = list(copy.rows())
        check("psycopg3 COPY TO STDOUT", len(rows) == 5, rows)
        # A named (server-side) cursor: DECLARE with parameters over the extended protocol.
        with conn.cursor(name="psycopg3_cursor") as named:
            named.execute(
                "SELECT sample_id FROM samples ORDER BY sample_id LIMIT %s OFFSET %s", (7, 2)
            )
            first = named.fetchmany(3)
            rest = named.fetchall()
        ids = [r[0] for r in first + rest]
        check("psycopg3 named cursor with LIMIT/OFFSET parameters", ids == list(range(3, 10)), ids)
        rows = conn.execute(
            "SELECT sample_id FROM samples ORDER BY sample_id LIMIT %s OFFSET %s", (2, 1)
        ).fetchall()
        check("psycopg3 LIMIT/OFFSET parameters", rows == [(2,), (3,)], rows)
        check(
            "psycopg3 current_database()",
            conn.execute("SELECT current_database()").fetchone()[0] == "discern",
        )
        cur = conn.execute("SELECT 1 AS one, 3000000000 AS big")
        check(
            "psycopg3 integer literals are int4 when they fit (as PostgreSQL types them)",
            [d.type_code for d in cur.description] == [23, 20] and cur.fetchone() == (1, 3000000000),
            cur.description,
        )
        types = dict(
            (r[0], (r[1], r[2]))
            for r in conn.execute(
                "SELECT column_name, data_type, udt_name FROM information_schema.columns "
                "WHERE table_name = 'measurements'"
            ).fetchall()
        )
        check(
            "psycopg3 information_schema.columns types as PostgreSQL names them",
            types.get("value") == ("double precision", "float8")
            and types.get("sample_id") == ("bigint", "int8")
            and types.get("biomarker") == ("text", "text"),
            types,
        )
        catalogs = conn.execute(
            "SELECT DISTINCT table_catalog FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
        check("psycopg3 information_schema catalog is the database", catalogs == [("discern",)], catalogs)
        text = conn.execute(
            "SELECT CAST('2024-02-29 13:45:30.25' AS TIMESTAMP) AS a, "
            "CAST('2024-02-29 13:45:30' AS TIMESTAMP) AS b"
        )
        with conn.cursor() as raw:
            raw.execute(
                "SELECT CAST('2024-02-29 13:45:30.25' AS TIMESTAMP), CAST('2024-02-29 13:45:30' AS TIMESTAMP)"
            )
            # The text the server sent, before psycopg parses it.
            sent = [raw.pgresult.get_value(0, i).decode() for i in range(2)]
        check(
            "psycopg3 timestamp text as PostgreSQL writes it",
            sent == ["2024-02-29 13:45:30.25", "2024-02-29 13:45:30"],
            sent,
        )
        text.close()


def reflect_everything(name, inspector, reflect):
    """The SQLAlchemy Inspector calls BI tools make (Superset, pandas.read_sql_table)."""
    schemas = inspector.get_schema_names()
    check(f"{name} get_schema_names", "public" in schemas, schemas)
    tables = sorted(inspector.get_table_names())
    check(f"{name} get_table_names", tables == ["measurements", "samples"], tables)
    for table in tables:
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        check(f"{name} get_columns({table})", "sample_id" in columns and all(
            c["default"] is None for c in columns.values()), list(columns))
        pk = inspector.get_pk_constraint(table)
        check(f"{name} get_pk_constraint({table})", pk["constrained_columns"] == [], pk)
        check(f"{name} get_foreign_keys({table})", inspector.get_foreign_keys(table) == [])
        check(f"{name} get_indexes({table})", inspector.get_indexes(table) == [])
        check(f"{name} get_unique_constraints({table})", inspector.get_unique_constraints(table) == [])
        check(f"{name} has_table({table})", inspector.has_table(table))
    check(f"{name} has_table(no_such_table)", not inspector.has_table("no_such_table"))
    metadata = reflect()
    check(f"{name} MetaData.reflect()", sorted(metadata.tables) == tables, list(metadata.tables))
    value = metadata.tables["measurements"].c["value"].type
    check(f"{name} reflected type of measurements.value", value.python_type is float, value)


def sqlalchemy_checks():
    import pandas as pd
    import sqlalchemy as sa

    for driver in ("psycopg2", "psycopg"):
        url = sa.URL.create(
            f"postgresql+{driver}",
            username=USER,
            password=PASSWORD,
            host=HOST,
            port=PORT,
            database="discern",
            query={"sslmode": "verify-full", "sslrootcert": CERT},
        )
        engine = sa.create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            n = conn.execute(
                sa.text("SELECT count(*) FROM samples WHERE is_case = :c"), {"c": True}
            ).scalar_one()
            check(f"sqlalchemy[{driver}] text() with parameters", n > 0, n)
            # stream_results: a server-side cursor (DECLARE … CURSOR), LIMIT as a parameter.
            streamed = conn.execution_options(stream_results=True, max_row_buffer=2).execute(
                sa.text("SELECT sample_id FROM samples ORDER BY sample_id LIMIT :n"), {"n": 5}
            ).scalars().all()
            check(f"sqlalchemy[{driver}] stream_results with LIMIT :n", streamed == [1, 2, 3, 4, 5], streamed)
        inspector = sa.inspect(engine)

        def reflect():
            metadata = sa.MetaData()
            metadata.reflect(engine)
            return metadata

        reflect_everything(f"sqlalchemy[{driver}]", inspector, reflect)
        samples = sa.Table("samples", sa.MetaData(), autoload_with=engine)
        check(f"sqlalchemy[{driver}] Table(autoload_with=engine)", "is_case" in samples.c, samples.c.keys())
        with engine.connect() as conn:
            n = conn.execute(sa.select(sa.func.count()).select_from(samples)).scalar_one()
        check(f"sqlalchemy[{driver}] select() on a reflected table", n > 0, n)
        frame = pd.read_sql_table("samples", engine)
        check(
            f"pandas[{driver}] read_sql_table",
            len(frame) == n and "is_case" in frame.columns,
            frame.head(),
        )
        # pandas.read_sql of the discrimination report.
        with engine.connect() as conn:
            report = pd.read_sql(sa.text(REPORT), conn)
        check(
            f"pandas[{driver}] read_sql of the report",
            len(report) > 0 and "auc" in report.columns and report["auc"].between(0, 1).all(),
            report.head(),
        )
        engine.dispose()
    asyncio.run(sqlalchemy_asyncpg_checks())


async def sqlalchemy_asyncpg_checks():
    import ssl

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    url = sa.URL.create(
        "postgresql+asyncpg", username=USER, password=PASSWORD, host=HOST, port=PORT,
        database="discern",
    )
    engine = create_async_engine(
        url, connect_args={"ssl": ssl.create_default_context(cafile=CERT)}
    )
    async with engine.connect() as conn:
        n = (await conn.execute(
            sa.text("SELECT sample_id FROM samples ORDER BY sample_id LIMIT :n"), {"n": 3}
        )).scalars().all()
        check("sqlalchemy[asyncpg] LIMIT :n", n == [1, 2, 3], n)

        def sync(connection):
            def reflect():
                metadata = sa.MetaData()
                metadata.reflect(connection)
                return metadata

            reflect_everything("sqlalchemy[asyncpg]", sa.inspect(connection), reflect)

        await conn.run_sync(sync)
    await engine.dispose()


async def asyncpg_checks():
    import ssl

    import asyncpg

    context = ssl.create_default_context(cafile=CERT)
    conn = await asyncpg.connect(
        host=HOST, port=PORT, user=USER, password=PASSWORD, database="discern", ssl=context
    )
    n = await conn.fetchval("SELECT count(*) FROM measurements WHERE biomarker = $1", "iron")
    check("asyncpg extended protocol", n > 0, n)
    rows = await conn.fetch(
        "SELECT biomarker, auc(m.value, s.is_case) AS auc FROM measurements m "
        "JOIN samples s USING (sample_id) GROUP BY biomarker ORDER BY biomarker"
    )
    check("asyncpg binary results", all(0 <= r["auc"] <= 1 for r in rows), rows[:2])
    # An array result makes asyncpg introspect its type (the typeinfo_tree query).
    row = await conn.fetchrow(TYPES_SQL)
    check("asyncpg types, array included", expected_types(tuple(row)), row)
    row = await conn.fetchrow(STRUCT_SQL)
    check("asyncpg STRUCT as a record", len(row["mw"]) == 3 and 0 <= row["mw"][2] <= 1, row)
    # Parameters typed from their context: LIMIT/OFFSET bigint, a comparison the column's type.
    rows = await conn.fetch(
        "SELECT sample_id FROM samples ORDER BY sample_id LIMIT $1 OFFSET $2", 2, 1
    )
    check("asyncpg LIMIT $1 OFFSET $2 with integers", [r[0] for r in rows] == [2, 3], rows)
    n = await conn.fetchval("SELECT count(*) FROM measurements WHERE value > $1", 1.5)
    check("asyncpg comparison parameter typed as the column", n > 0, n)
    check("asyncpg current_database()", await conn.fetchval("SELECT current_database()") == "discern")
    # A cursor: a named portal read with an Execute row limit inside a transaction.
    async with conn.transaction():
        ids = [r[0] async for r in conn.cursor(
            "SELECT sample_id FROM samples ORDER BY sample_id LIMIT $1", 9, prefetch=4)]
    check("asyncpg cursor with a LIMIT parameter", ids == list(range(1, 10)), ids)
    await conn.close()
    pool = await asyncpg.create_pool(
        host=HOST, port=PORT, user=USER, password=PASSWORD, database="discern", ssl=context,
        min_size=1, max_size=2,
    )
    async with pool.acquire() as c:
        check("asyncpg pool", await c.fetchval("SELECT 1") == 1)
    # Released connections get the pool's reset statements; reuse must still work.
    async with pool.acquire() as c:
        check("asyncpg pool reuse", await c.fetchval("SELECT 2") == 2)
    await pool.close()


def main():
    which = sys.argv[1:] or ["psycopg2", "psycopg3", "sqlalchemy", "asyncpg"]
    if "psycopg2" in which:
        psycopg2_checks()
    if "psycopg3" in which:
        psycopg3_checks()
    if "sqlalchemy" in which:
        sqlalchemy_checks()
    if "asyncpg" in which:
        asyncio.run(asyncpg_checks())


if __name__ == "__main__":
    main()
