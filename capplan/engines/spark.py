"""`--engine spark --lake DIR`: the per-sample aggregates on Apache Spark, over the lake.

What runs where: Spark runs the queries in SPARK_QUERIES (per-series statistics, the CPU
histogram, daily peaks, node usage sums: every query that reads every sample of the window) over
the lake `capplan export-lake` wrote. Everything else stays on the local DuckDB database: the
window (its newest sample), spec history, series identity, OOM kills, HPAs, and all the Python
after the aggregates, which is the same code for both engines.

The SQL is the same file DuckDB runs (queries/NAME.sql), transpiled by capplan.engines.transpile;
the lake's tables are registered as Spark temporary views of the store's table names, and the
store's own views (usage_samples) are transpiled from their definitions carried in the lake's
manifest. Relations an analysis registers on its DuckDB connection for a query (e.g.
`_rec_first`, one row per series) are copied to Spark as they are. Results come back as Arrow and
are cast to the column types DuckDB gives for the same query (asked with LIMIT 0), so the frames
the analyses see are alike from both engines.

The Spark session: under `spark-submit` the one it configured (master, memory, S3 credentials);
otherwise a local one (`local[*]`, or `$CAPPLAN_SPARK_MASTER`). Two settings are always made,
because the results depend on them: timestamps without time zone (`spark.sql.timestampType =
TIMESTAMP_NTZ`, as the store's TIMESTAMP) and the session time zone UTC (SESSION_CONF).
"""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl
import pyarrow as pa

from capplan import lake, store
from capplan.engines import transpile
from capplan.errors import BadInputError, UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# The named queries Spark runs: those that read every sample of the window.
SPARK_QUERIES = frozenset({
    "recommend_series_stats", "recommend_series_stats_light", "recommend_series_percentile",
    "recommend_cpu_histogram", "recommend_memory_peaks", "recommend_daily_stats",
    "node_usage_series", "node_usage_percentiles",
})
INSTALL_HINT = "pip install 'capplan[spark]'"
JAVA_HINT = "apt-get install openjdk-17-jre-headless (or set JAVA_HOME)"
MASTER_ENV = "CAPPLAN_SPARK_MASTER"
# Settings the results depend on (see the module docstring); always set.
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # Partition values stay strings: a cluster named `2024` is a name, not a number.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}
# Settings for a session capplan starts itself (not under spark-submit, where the user's own apply).
LOCAL_CONF = {
    "spark.ui.showConsoleProgress": "false",
}


def _launched_by_spark_submit() -> bool:
    # spark-submit (and the pyspark shell) start the JVM first and hand Python its gateway.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _log4j_option() -> str:
    """The JVM option pointing log4j at capplan's quiet configuration (errors only: the
    analyses report their own failures in one line)."""
    path = resources.files("capplan.engines").joinpath("log4j2.properties")
    return f"-Dlog4j2.configurationFile=file:{path}"


def require_spark() -> None:
    """UsageError naming the install command when pyspark or Java is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise UsageError(f"--engine spark needs pyspark: {INSTALL_HINT}") from None
    if not _launched_by_spark_submit() and not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise UsageError(f"--engine spark needs Java 17 or newer: {JAVA_HINT}")


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The Spark session `--engine spark` runs on (see the module docstring); UsageError naming
    the install command when pyspark or Java is missing."""
    require_spark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("capplan")
    if not _launched_by_spark_submit():
        builder = builder.master(master or os.environ.get(MASTER_ENV) or "local[*]")
        for key, value in {**LOCAL_CONF, "spark.driver.extraJavaOptions": _log4j_option()}.items():
            builder = builder.config(key, value)
    for key, value in {**(conf or {}), **SESSION_CONF}.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # pyspark raises its own runtime errors when the JVM cannot start
        if "JAVA_GATEWAY_EXITED" in str(exc) or "Java gateway process exited" in str(exc):
            raise UsageError(f"--engine spark could not start Java: {JAVA_HINT}") from exc
        raise
    for key, value in SESSION_CONF.items():  # a session that already existed gets them too
        session.conf.set(key, value)
    return session


def _session_running() -> bool:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return False
    return SparkSession.getActiveSession() is not None


def lake_uri(lake_dir: str) -> str:
    """A Hadoop URI for `--lake`: kept as given with a scheme (s3a://, gs://, hdfs://, file:),
    else the local folder's absolute file: URI."""
    if "://" in lake_dir or lake_dir.startswith("file:"):
        return lake_dir.rstrip("/")
    return Path(lake_dir).resolve().as_uri()


class SparkEngine:
    """Runs SPARK_QUERIES on Spark over the lake at `lake_dir` (a folder or a Hadoop URI)."""

    def __init__(self, lake_dir: str, session: SparkSession | None = None) -> None:
        self.lake_dir = lake_dir
        self.uri = lake_uri(lake_dir)
        self._local_dir = None if "://" in lake_dir or lake_dir.startswith("file:") else Path(lake_dir).resolve()
        if session is None:
            require_spark()
        # A local lake is checked before Spark starts (which takes seconds); a remote one through Spark.
        manifest = self._read_manifest(None) if self._local_dir is not None else None
        # A session this engine starts is its to stop; one given, or already running, is not.
        self._owns_session = session is None and not _session_running()
        self.spark = session if session is not None else spark_session()
        self.manifest = manifest or self._read_manifest(self.spark)
        self._scope: tuple[str, ...] | None | bool = False  # the clusters the views show (False: none yet)
        self._registered: set[str] = set()
        self._checked = False

    # --- the lake ------------------------------------------------------------------------

    def _read_manifest(self, spark: SparkSession | None) -> dict[str, Any]:
        where = f"{self.uri}/{lake.MANIFEST}"
        try:
            if spark is None:
                assert self._local_dir is not None
                text = (self._local_dir / lake.MANIFEST).read_text()
            else:
                row = spark.read.text(where, wholetext=True).first()
                text = row[0] if row is not None else ""  # empty: not a manifest (the ValueError below)
            manifest = json.loads(text)
        except FileNotFoundError:
            raise BadInputError(f"{self.lake_dir} holds no capplan lake (no {lake.MANIFEST}): "
                                f"run `capplan export-lake {self.lake_dir}` first") from None
        except ValueError as exc:
            raise BadInputError(f"{where}: not a capplan lake manifest: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ == "AnalysisException":  # Spark: path does not exist
                raise BadInputError(f"{self.lake_dir} holds no capplan lake (no {lake.MANIFEST}): "
                                    f"run `capplan export-lake {self.lake_dir}` first") from None
            raise
        if not isinstance(manifest, dict) or manifest.get("format") != lake.FORMAT_VERSION:
            raise BadInputError(f"{where}: not a capplan lake manifest of format {lake.FORMAT_VERSION}")
        if not manifest.get("finished"):
            raise BadInputError(f"{self.lake_dir}: its last export did not finish; run `capplan export-lake "
                                f"{self.lake_dir}` again")
        return manifest

    def _check_against(self, con: duckdb.DuckDBPyConnection) -> None:
        """The lake must hold what the database holds: the same samples (counted per usage
        table), else Spark would answer for other data than DuckDB."""
        if self._checked:
            return
        tables = self.manifest.get("tables", {})
        catalog = '"' + str(store.fetch_row(con, "SELECT current_database()")[0]).replace('"', '""') + '"'
        for table in lake.TIME_PARTITIONS:
            if table not in tables:
                continue
            in_lake = sum(int(p["rows"]) for p in tables[table]["partitions"].values())
            # The real table, whatever cluster scope is active on the connection.
            in_db = int(store.fetch_row(con, f'SELECT count(*) FROM {catalog}.main."{table}"')[0])
            if in_lake != in_db:
                raise BadInputError(
                    f"{self.lake_dir} is out of date: {table} has {in_lake:,} rows there and {in_db:,} in the database; "
                    f"run `capplan export-lake {self.lake_dir}`")
        self._checked = True

    def _table(self, name: str, info: dict[str, Any]) -> DataFrame:
        """One lake table as a Spark DataFrame, with its partition columns (cluster, day, ...)."""
        from pyspark.sql import functions as F

        if info.get("partitions"):
            return self.spark.read.parquet(f"{self.uri}/{name}")
        # No partition, no file to read the columns from: the table's empty schema file.
        frame = self.spark.read.parquet(f"{self.uri}/{lake.SCHEMA_DIR}/{name}.parquet")
        for key in info.get("partition_by", ["cluster"]):
            frame = frame.withColumn(key, F.lit(None).cast("string"))
        return frame

    def _register(self, names: set[str], clusters: tuple[str, ...] | None) -> None:
        """The lake tables and store views among `names` (and those the views read) as Spark
        temporary views, filtered to `clusters` (None: all). Only what a query reads: opening a
        table reads its files' footers, seconds each on a busy machine."""
        from pyspark.sql import functions as F

        if self._scope != clusters:
            self._scope, self._registered = clusters, set()
        tables, views = self.manifest.get("tables", {}), self.manifest.get("views", {})
        for name in sorted(names - self._registered):
            if name in views:
                self._register(set(transpile.relations(views[name])), clusters)
                self.spark.sql(transpile.view_body(views[name])).createOrReplaceTempView(name)
            elif name in tables:
                frame = self._table(name, tables[name])
                if clusters is not None:
                    frame = frame.where(F.col("cluster").isin(list(clusters)))
                frame.createOrReplaceTempView(name)
            else:
                continue
            self._registered.add(name)

    @staticmethod
    def _clusters(con: duckdb.DuckDBPyConnection) -> tuple[str, ...] | None:
        """The cluster the analysis on `con` reads (store.scope), None: every cluster."""
        cluster = store.active_cluster(con)
        return None if cluster is None else (cluster,)

    # --- QueryEngine -------------------------------------------------------------------------

    def runs(self, name: str) -> bool:
        return name in SPARK_QUERIES

    def query(self, con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any]) -> pl.DataFrame:
        self._check_against(con)
        sql = store.load_sql(name)
        self._register(set(transpile.relations(sql)), self._clusters(con))
        lake_names = set(self.manifest.get("tables", {})) | set(self.manifest.get("views", {}))
        for relation in sorted(transpile.relations(sql) - lake_names):
            # Registered on the DuckDB connection by the analysis for this query (small).
            self.spark.createDataFrame(con.execute(f'SELECT * FROM "{relation}"').to_arrow_table()) \
                .createOrReplaceTempView(relation)
        expected = con.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0", params).arrow().schema
        args = {k: v for k, v in params.items() if k in transpile.parameters(sql)}
        result = self.spark.sql(transpile.to_spark(sql), args=args).toArrow()
        return pl.from_arrow(conform(result, expected))  # type: ignore[return-value]

    def close(self) -> None:
        if self._owns_session:
            self.spark.stop()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Spark's result with DuckDB's column names and types for the same query."""
    if table.num_columns != len(schema):
        raise RuntimeError(f"Spark returned {table.num_columns} columns where DuckDB gives {len(schema)}")
    return pa.Table.from_arrays([column.cast(field.type) for column, field in zip(table.columns, schema, strict=True)],
                                schema=schema)
