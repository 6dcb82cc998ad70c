"""`capplan patch`: match manifest containers to recommendations and produce the changes as
rewritten files, a unified diff, or a kustomize overlay."""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from capplan.act.plan import (
    RecKey,
    Recommendations,
    Target,
    acts_on,
    qos_change,
    recommended_values,
    target,
)
from capplan.errors import NoDataError, UsageError
from capplan.manifests.edit import Change, edit_text
from capplan.manifests.load import Container, ManifestFile, Skipped, Workload

FORMATS = ("inplace", "diff", "kustomize")


@dataclass
class ContainerPatch:
    container: Container
    row: dict
    target: Target


@dataclass
class WorkloadPatch:
    workload: Workload
    containers: list[ContainerPatch]
    qos_before: str
    qos_after: str


@dataclass
class PatchPlan:
    files: list[ManifestFile]
    workloads: list[WorkloadPatch] = field(default_factory=list)
    unmatched_manifests: list[Workload] = field(default_factory=list)
    not_acted: list[tuple[Workload, Container, str]] = field(default_factory=list)
    unmatched_recommendations: list[RecKey] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def plan_patch(files: list[ManifestFile], recs: Recommendations, min_change: float, min_severity: int) -> PatchPlan:
    """What to change in which container. A workload the store does not know is listed as
    unmatched; a container of a known workload that the store has never seen is an error
    (NoDataError, exit 6): the manifest and the cluster disagree about what runs."""
    plan = PatchPlan(files=files)
    matched: set[RecKey] = set()
    for mf in files:
        plan.skipped.extend(mf.skipped)
        for w in mf.workloads:
            if w.namespace is None:
                raise UsageError(f"{w.file}:{w.line}: {w.kind} {w.name} has no metadata.namespace: "
                                 "pass --namespace NS for manifests without one")
            known = recs.store_containers.get((w.namespace, w.kind, w.name))
            if known is None:
                plan.unmatched_manifests.append(w)
                continue
            for c in w.containers:
                if c.name not in known:
                    raise NoDataError(
                        f"{w.file}:{c.line}: container {c.name!r} of {w.label} is not in the store "
                        f"(it knows {', '.join(sorted(known))}): is the manifest ahead of the cluster?")
            patches = []
            for c in w.containers:
                key = (w.namespace, w.kind, w.name, c.name)
                row = recs.rows.get(key)
                matched.add(key)
                if row is None:
                    plan.not_acted.append((w, c, "no usage samples in the window: no recommendation"))
                    continue
                if not acts_on(row, min_severity):
                    why = (row["reason"] or "no recommendation") if row["severity"] == "unknown" \
                        else f"severity {row['severity']} is below --severity"
                    plan.not_acted.append((w, c, why))
                    continue
                t = target(c.current, recommended_values(row), min_change)
                if not t.changes:
                    plan.not_acted.append((w, c, "no value moves by --min-change or more"))
                    continue
                patches.append(ContainerPatch(c, row, t))
            if patches:
                by_name = {p.container.name: p.target.final for p in patches}
                before = [c.current for c in w.containers]
                after = [by_name.get(c.name, c.current) for c in w.containers]
                qb, qa = qos_change(before, after)
                plan.workloads.append(WorkloadPatch(w, patches, qb, qa))
    plan.unmatched_recommendations = sorted(
        k for k, r in recs.rows.items() if k not in matched and acts_on(r, min_severity))
    return plan


def changes_of(patch: ContainerPatch) -> Change:
    return {vc.section: vc.new_text for vc in patch.target.changes}


def new_texts(plan: PatchPlan) -> dict[Path, tuple[str, str]]:
    """(old, new) text per file that changes; computed for every file before any is written."""
    edits: dict[Path, list] = {}
    for wp in plan.workloads:
        edits.setdefault(wp.workload.file, []).extend((p.container, changes_of(p)) for p in wp.containers)
    out = {}
    for mf in plan.files:
        if mf.path in edits:
            out[mf.path] = (mf.text, edit_text(mf, edits[mf.path]))
    return out


def unified_diff(texts: dict[Path, tuple[str, str]]) -> str:
    chunks: list[str] = []
    for path, (old, new) in texts.items():
        shown = os.path.relpath(path)
        # git's a/ b/ prefixes for paths below the working folder (`patch -p1` applies it); else as given
        before, after = (f"a/{shown}", f"b/{shown}") if not shown.startswith("..") else (str(path), str(path))
        chunks.extend(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                           fromfile=before, tofile=after))
    return "".join(chunks)


def write_inplace(texts: dict[Path, tuple[str, str]]) -> list[Path]:
    """Replace each file by a renamed temporary file beside it (a kill leaves old or new, never half)."""
    written = []
    for path, (_, new) in texts.items():
        mode = path.stat().st_mode
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(new)
            os.chmod(tmp, mode & 0o7777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(path)
    return written


def summary_lines(plan: PatchPlan) -> list[str]:
    """What changes and what does not, for people (one line per container, then the lists)."""
    lines = []
    for wp in plan.workloads:
        w = wp.workload
        qos = f"QoS {wp.qos_before}" if wp.qos_before == wp.qos_after else \
            f"QoS class changes {wp.qos_before} -> {wp.qos_after} (needs a rollout; in-place resize cannot do it)"
        lines.append(f"{w.label} ({w.file}:{w.line}): {qos}")
        for p in wp.containers:
            notes = "; ".join(p.target.notes)
            lines.append(f"  {p.container.name} (line {p.container.line}, severity {p.row['severity']}): "
                         + ", ".join(vc.describe() for vc in p.target.changes) + (f"; {notes}" if notes else ""))
    for w, c, why in plan.not_acted:
        lines.append(f"unchanged: {w.label} {c.name} ({w.file}:{c.line}): {why}")
    for w in plan.unmatched_manifests:
        lines.append(f"unmatched manifest: {w.label} ({w.file}:{w.line}): not in the store")
    for ns, kind, name, container in plan.unmatched_recommendations:
        lines.append(f"unmatched recommendation: {ns}/{kind}/{name} {container}: no manifest given")
    n = sum(len(wp.containers) for wp in plan.workloads)
    lines.append(f"{n} container(s) in {len(plan.workloads)} workload(s) to change; "
                 f"{len(plan.unmatched_manifests)} unmatched manifest(s), "
                 f"{len(plan.unmatched_recommendations)} unmatched recommendation(s)")
    return lines
