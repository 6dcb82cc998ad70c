"""`capplan resize-plan`: in-place resize commands per running pod (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    ActClusterOption,
    DbOption,
    EndOption,
    FormatOption,
    NamespaceOption,
    OutputOption,
    WindowOption,
    check_format,
    end_option,
    handle_errors,
    one_cluster_scope,
    window_option,
)
from capplan.cli.patch_cmd import MinChangeOption, SeverityOption, StrategyOption
from capplan.cli.recommend_cmd import DEFAULT_STRATEGY


@app.command("resize-plan")
@handle_errors
def resize_plan(
    db: DbOption = None,
    cluster: ActClusterOption = None,
    end: EndOption = None,
    kubernetes_version: Annotated[str, typer.Option(
        "--kubernetes-version", help="The cluster's version: what in-place resize allows depends on it.")] = "1.35",
    manifests: Annotated[list[Path] | None, typer.Option(
        "--manifests", help="Manifest files or folders: pods whose manifest says otherwise are blocked.")] = None,
    default_namespace: Annotated[str | None, typer.Option(
        "--manifest-namespace", help="Namespace of manifests that have none.")] = None,
    fmt: FormatOption = "table",
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    strategy: StrategyOption = DEFAULT_STRATEGY,
    window: WindowOption = "14d",
    recent: Annotated[str, typer.Option(
        "--recent", help="A memory limit must stay above the working set of this recent past.")] = "1h",
    min_change: MinChangeOption = "10%",
    severity: SeverityOption = "warning",
    commands_only: Annotated[bool, typer.Option(
        "--commands", help="Print only the kubectl commands (a shell script).")] = False,
) -> None:
    """In-place resize commands per running pod (`kubectl patch --subresource resize`), and what
    cannot be done in place and why."""
    import polars as pl

    from capplan import render, store
    from capplan.act.plan import load_recommendations, parse_min_change, parse_severity
    from capplan.act.resize import COLUMNS, parse_version, plan_resize
    from capplan.analysis.strategies import get_strategy
    from capplan.manifests.load import load

    check_format(fmt)
    get_strategy(strategy)
    version = parse_version(kubernetes_version)
    fraction, min_severity = parse_min_change(min_change), parse_severity(severity)
    span, recent_span = window_option(window), window_option(recent, "--recent")
    files = load(manifests, default_namespace) if manifests else None
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        with one_cluster_scope(con, cluster, "resize-plan"):  # kubectl commands for one cluster's context
            recs = load_recommendations(con, strategy, span)
            plans = plan_resize(con, recs, span, recent_span, version, fraction, min_severity, files, namespace)
    if commands_only:
        lines = ["#!/bin/sh", (f"# capplan resize-plan --kubernetes-version {kubernetes_version}: "
                 f"{sum(p.command is not None for p in plans)} pod(s) resizable in place"), "set -e"]
        lines += [p.command for p in plans if p.command]
        text = "\n".join(lines) + "\n"
        if output is not None and str(output) != "-":
            output.write_text(text, encoding="utf-8")
        else:
            typer.echo(text, nl=False)
        return
    frame = pl.DataFrame([p.record() for p in plans], schema={c: pl.Utf8 for c in COLUMNS})
    if fmt == "json":
        import json

        records = []
        for p, rec in zip(plans, frame.to_dicts(), strict=True):
            records.append({**rec, "changes": p.changes, "blocked": p.blocked, "patch": p.patch,
                            "command": p.command})
        text = json.dumps(records, indent=2) + "\n"
        if output is not None and str(output) != "-":
            output.write_text(text, encoding="utf-8")
        else:
            typer.echo(text, nl=False)
        return
    if fmt == "table":
        frame = frame.filter(pl.col("status") != "none").select(
            "namespace", "pod", "status", "qos_class", "changes", "blocked")
    render.emit(frame, fmt, output, title=f"In-place resize plan (Kubernetes {version[0]}.{version[1]})")
    if fmt == "table" and not output:
        counts = {s: sum(p.status == s for p in plans) for s in ("resize", "partial", "blocked", "none")}
        typer.echo(f"{len(plans)} running pods: {counts['resize']} resize, {counts['partial']} partial, "
                   f"{counts['blocked']} blocked, {counts['none']} nothing to do; `--commands` prints the "
                   "kubectl commands, `--format json` everything")
