"""`capplan patch`: write recommendations into Kubernetes manifests (issue 18)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from capplan.cli import app
from capplan.cli.common import (
    ActClusterOption,
    DbOption,
    EndOption,
    WindowOption,
    end_option,
    handle_errors,
    one_cluster_scope,
    window_option,
)
from capplan.cli.recommend_cmd import DEFAULT_STRATEGY, STRATEGIES
from capplan.errors import UsageError

PATCH_FORMATS = ("inplace", "diff", "kustomize")  # capplan.act.patch.FORMATS, restated to keep --help light

PathsArgument = Annotated[list[Path], typer.Argument(help="Manifest files or folders (*.yaml, *.yml).",
                                                     show_default=False)]
DefaultNamespaceOption = Annotated[str | None, typer.Option(
    "--namespace", "-n", help="Namespace of manifests that have none (a kustomization's namespace wins).")]
MinChangeOption = Annotated[str, typer.Option(
    "--min-change", help="Leave a value alone unless it moves by at least this much of itself.")]
SeverityOption = Annotated[str, typer.Option(
    "--severity", help="Act on recommendations of at least this severity (critical, warning, ok, good).")]
StrategyOption = Annotated[str, typer.Option("--strategy", "-s", metavar=f"[{'|'.join(STRATEGIES)}]", help=f"One of {', '.join(STRATEGIES)}.")]


@app.command()
@handle_errors
def patch(
    paths: PathsArgument,
    db: DbOption = None,
    cluster: ActClusterOption = None,
    end: EndOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="inplace, diff or kustomize.")] = "inplace",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="kustomize: the overlay folder; diff: a file for the diff.")] = None,
    namespace: DefaultNamespaceOption = None,
    strategy: StrategyOption = DEFAULT_STRATEGY,
    window: WindowOption = "14d",
    min_change: MinChangeOption = "10%",
    severity: SeverityOption = "warning",
) -> None:
    """Write recommendations into Kubernetes manifests: rewrite their resources in place, print a
    unified diff, or write a kustomize overlay."""
    # the analysis (polars, DuckDB) is imported only when the command runs
    from capplan import store
    from capplan.act import patch as patching
    from capplan.act.plan import load_recommendations, parse_min_change, parse_severity
    from capplan.analysis.strategies import get_strategy
    from capplan.manifests.kustomize import WorkloadOverlay, write_overlay
    from capplan.manifests.load import load

    if fmt not in PATCH_FORMATS:
        raise UsageError(f"--format must be one of {', '.join(PATCH_FORMATS)}, not {fmt!r}")
    if fmt == "kustomize" and output is None:
        raise UsageError("--format kustomize needs -o DIR, the overlay folder to write")
    if fmt == "inplace" and output is not None:
        raise UsageError("--format inplace rewrites the files themselves: -o is for diff and kustomize")
    get_strategy(strategy)
    fraction = parse_min_change(min_change)
    min_severity = parse_severity(severity)
    span = window_option(window)
    files = load(paths, namespace)   # bad manifests fail here, before the database is opened
    with store.open_db(db, read_only=True, end=end_option(end)) as con:
        with one_cluster_scope(con, cluster, "patch"):
            recs = load_recommendations(con, strategy, span)
    plan = patching.plan_patch(files, recs, fraction, min_severity)
    texts = patching.new_texts(plan)   # every edit is made and verified before anything is written
    report = "\n".join(patching.summary_lines(plan)) + "\n"
    if fmt == "diff":
        diff = patching.unified_diff(texts)
        if output is not None and str(output) != "-":
            output.write_text(diff, encoding="utf-8")
        else:
            sys.stdout.write(diff)
        sys.stderr.write(report)
        return
    if fmt == "inplace":
        written = patching.write_inplace(texts)
        sys.stdout.write(report)
        for path in written:
            sys.stdout.write(f"rewrote {path}\n")
        return
    overlays = [WorkloadOverlay(wp.workload, [(p.container, patching.changes_of(p)) for p in wp.containers])
                for wp in plan.workloads]
    bases = [mf.path for mf in files if mf.workloads or mf.skipped]
    written = write_overlay(output, bases, overlays)  # type: ignore[arg-type]
    sys.stdout.write(report)
    sys.stdout.write(f"wrote {len(written)} file(s) to {output} (build it with `kubectl kustomize {output}`)\n")
