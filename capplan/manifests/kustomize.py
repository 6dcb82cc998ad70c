"""A kustomize overlay: `kustomization.yaml` naming the bases and one strategic-merge patch per
workload that sets only the containers' changed resources (`null` removes a value).

kustomize loads plain files only from at or below the overlay's folder (its default load
restrictor), so a base file elsewhere must sit in a folder whose kustomization lists it; that
folder is then the overlay's resource.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from capplan.errors import UsageError
from capplan.manifests.load import POD_SPEC_PATHS, Container, Workload, kustomization_of

KUSTOMIZATION = "kustomization.yaml"


@dataclass
class WorkloadOverlay:
    workload: Workload
    # container -> {("requests", "cpu"): "250m" or None (remove)}
    containers: list[tuple[Container, dict[tuple[str, str], str | None]]]


def _dump(data: object) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


def _resource_ref(path: Path, out_dir: Path) -> str:
    """How the overlay names the base that holds `path`."""
    out = out_dir.resolve()
    directory = path.parent.resolve()
    if kustomization_of(directory) is not None:
        return os.path.relpath(directory, out)
    resolved = path.resolve()
    if resolved.is_relative_to(out):
        return os.path.relpath(resolved, out)
    raise UsageError(
        f"{path}: kustomize loads plain files only from at or below the overlay ({out_dir}); "
        f"add a kustomization.yaml listing it in {path.parent}, or use --format inplace or diff")


def patch_document(overlay: WorkloadOverlay) -> dict:
    w = overlay.workload
    metadata: dict = {"name": w.name}
    if w.namespace_from != "option":
        metadata["namespace"] = w.namespace
    lists: dict[str, list] = {}
    for container, change in overlay.containers:
        resources: dict = {}
        for (section, resource), value in change.items():
            resources.setdefault(section, {})[resource] = value
        lists.setdefault("initContainers" if container.init else "containers", []).append(
            {"name": container.name, "resources": resources})
    spec: dict = dict(lists)
    for step in reversed(POD_SPEC_PATHS[w.kind]):
        spec = {step: spec}
    return {"apiVersion": w.api_version, "kind": w.kind, "metadata": metadata, **spec}


def patch_name(w: Workload) -> str:
    parts = [w.kind.lower()] + ([w.namespace] if w.namespace else []) + [w.name]
    return "-".join(parts) + ".yaml"


def write_overlay(out_dir: Path, bases: list[Path], overlays: list[WorkloadOverlay]) -> list[Path]:
    """Write the overlay; returns the files written."""
    refs: list[str] = []
    for path in bases:
        ref = _resource_ref(path, out_dir)
        if ref not in refs:
            refs.append(ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    patches = []
    for overlay in overlays:
        w = overlay.workload
        name = patch_name(w)
        target = {"kind": w.kind, "name": w.name}
        if w.namespace_from != "option" and w.namespace is not None:
            target["namespace"] = w.namespace
        patches.append({"path": name, "target": target})
        (out_dir / name).write_text(_dump(patch_document(overlay)), encoding="utf-8")
        written.append(out_dir / name)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": refs, "patches": patches}
    header = "# Written by `capplan patch --format kustomize`: right-sized requests and limits.\n"
    (out_dir / KUSTOMIZATION).write_text(header + _dump(kustomization), encoding="utf-8")
    written.append(out_dir / KUSTOMIZATION)
    return written
