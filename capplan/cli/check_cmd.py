"""`capplan check`: the CI gate over manifests (issue 18). Exit 7 when a rule fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    ActClusterOption,
    DbOption,
    OutputOption,
    WindowOption,
    handle_errors,
    one_cluster_scope,
    window_option,
)
from capplan.cli.patch_cmd import DefaultNamespaceOption, PathsArgument, StrategyOption
from capplan.cli.recommend_cmd import DEFAULT_STRATEGY
from capplan.errors import UsageError

CHECK_FORMATS = ("table", "csv", "json", "junit", "github")  # capplan.act.formats.CHECK_FORMATS
POLICY_FAILED = 7   # CONTRACT.md: a policy rule failed


def _database(db: Path | None, static: bool) -> Path | None:
    """The database for usage rules: --db, else $CAPPLAN_DB, else ./capplan.duckdb when it exists;
    none (static rules only) when there is none of those or --static is given."""
    if static:
        return None
    if db is not None:
        return db
    if os.environ.get("CAPPLAN_DB"):
        return Path(os.environ["CAPPLAN_DB"])
    default = Path("capplan.duckdb")
    return default if default.exists() else None


@app.command()
@handle_errors
def check(
    paths: PathsArgument,
    db: DbOption = None,
    cluster: ActClusterOption = None,
    policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy YAML (docs/patch.md).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, csv, json, junit or github.")] = "table",
    output: OutputOption = None,
    namespace: DefaultNamespaceOption = None,
    strategy: StrategyOption = DEFAULT_STRATEGY,
    window: WindowOption = "14d",
    static: Annotated[bool, typer.Option("--static", help="Static rules only, even when a database exists.")] = False,
) -> None:
    """CI gate over manifests: static rules, and usage rules when a database is given; exit 7
    when a finding reaches the policy's fail_on severity."""
    import polars as pl

    from capplan import render, store
    from capplan.act import formats
    from capplan.act.check import COLUMNS, Usage, run_check
    from capplan.act.plan import load_recommendations, load_usage
    from capplan.act.policy import load_policy
    from capplan.analysis.strategies import get_strategy
    from capplan.manifests.load import load

    if fmt not in CHECK_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(CHECK_FORMATS)}, not {fmt!r}")
    get_strategy(strategy)
    span = window_option(window)
    policy = load_policy(policy_file)
    files = load(paths, namespace)
    usage = recs = known = None
    path = _database(db, static)
    if path is not None:
        con = store.open_db(path, read_only=True)
        try:
            with one_cluster_scope(con, cluster, "check"):  # the manifests deploy to one cluster
                raw = load_usage(con, span)
                rec = load_recommendations(con, strategy, span)
        finally:
            con.close()
        usage = {k: Usage(float(r["memory_peak_bytes"]), float(r["memory_p95_bytes"]), float(r["cpu_p95_cores"]),
                          int(r["samples"])) for k, r in raw.items()}
        recs, known = rec.rows, rec.store_containers
    findings = run_check(files, policy, usage, recs, known, span)
    failed = any(policy.fails(f.severity) for f in findings)
    checked = [(str(w.file), f"{w.namespace or ''}/{w.kind}/{w.name}", c.name)
               for mf in files for w in mf.workloads for c in w.containers]
    if fmt == "junit":
        text = formats.junit(findings, checked, policy)
    elif fmt == "github":
        text = formats.github(findings)
    elif fmt == "json":   # cpu in cores (float), memory in whole bytes (int), like every capplan JSON
        import json

        text = json.dumps([{c: f.record()[c] for c in COLUMNS} for f in findings], indent=2) + "\n"
    else:
        def cell(value: float | None) -> str | None:
            return None if value is None else str(value)

        records = [{**(r := f.record()), "current": cell(r["current"]), "observed": cell(r["observed"])}
                   for f in findings]
        frame = pl.DataFrame(records, schema={c: (pl.Int64 if c == "line" else pl.Utf8) for c in COLUMNS}
                             ).select(COLUMNS)
        if fmt == "table":
            frame = frame.select("file", "line", "namespace", "kind", "name", "container", "rule", "severity",
                                 "message")
        render.emit(frame, fmt, output, title=f"capplan check ({len(checked)} containers, policy {policy.source})")
        text = None
    if text is not None:
        if output is not None and str(output) != "-":
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    mode = "static and usage rules" if usage is not None else "static rules only (no database)"
    verdict = "FAILED" if failed else "passed"
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "notice")}
    typer.echo(f"check {verdict}: {counts['error']} error(s), {counts['warning']} warning(s), "
               f"{counts['notice']} notice(s) in {len(checked)} containers; {mode}; fail_on {policy.fail_on}",
               err=True)
    if failed:
        raise typer.Exit(POLICY_FAILED)
