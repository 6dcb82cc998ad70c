"""The resources editor on its own (no database): exact expected texts for the shapes a splice
must get right, and anchors shared between containers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from capplan.errors import BadInputError
from capplan.manifests.edit import edit_text
from capplan.manifests.load import load_file

HEAD = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w\n  namespace: ns\nspec:\n  template:\n    spec:\n"


def _edit(tmp_path: Path, body: str, changes: dict[str, dict]) -> str:
    path = tmp_path / "w.yaml"
    path.write_text(HEAD + body)
    mf = load_file(path)
    by_name = {c.name: c for w in mf.workloads for c in w.containers}
    return edit_text(mf, [(by_name[name], change) for name, change in changes.items()])[len(HEAD):]


def test_block_values_replaced_removed_added_keeping_quotes_and_comments(tmp_path) -> None:
    body = ("      containers:\n"
            "      - name: a   # main\n"
            "        image: x\n"
            "        resources:\n"
            "          requests:\n"
            "            cpu: '200m'   # measured\n"
            "            memory: \"256Mi\"\n"
            "          limits:\n"
            "            cpu: 1\n"
            "        # after resources\n"
            "        ports: [{containerPort: 80}]\n")
    got = _edit(tmp_path, body, {"a": {("requests", "cpu"): "250m", ("requests", "memory"): "300Mi",
                                       ("limits", "cpu"): None, ("limits", "memory"): "600Mi"}})
    assert got == ("      containers:\n"
                   "      - name: a   # main\n"
                   "        image: x\n"
                   "        resources:\n"
                   "          requests:\n"
                   "            cpu: '250m'   # measured\n"
                   "            memory: \"300Mi\"\n"
                   "          limits:\n"
                   "            memory: 600Mi\n"
                   "        # after resources\n"
                   "        ports: [{containerPort: 80}]\n")


def test_flow_mappings_edited_in_place(tmp_path) -> None:
    body = "      containers:\n      - {name: a, image: x, resources: {requests: {cpu: \"5\", memory: 6Gi}, limits: {cpu: \"6\", memory: 8Gi}}}\n"
    got = _edit(tmp_path, body, {"a": {("limits", "cpu"): None, ("requests", "memory"): "5Gi"}})
    assert got == "      containers:\n      - {name: a, image: x, resources: {requests: {cpu: \"5\", memory: 5Gi}, limits: {memory: 8Gi}}}\n"
    got = _edit(tmp_path, body, {"a": {("limits", "cpu"): None, ("limits", "memory"): None}})
    assert got == "      containers:\n      - {name: a, image: x, resources: {requests: {cpu: \"5\", memory: 6Gi}}}\n"


def test_missing_resources_block_is_added_with_the_containers_indentation(tmp_path) -> None:
    body = "      containers:\n        - name: a\n          image: x\n"   # no trailing content after
    got = _edit(tmp_path, body, {"a": {("requests", "cpu"): "100m", ("limits", "memory"): "64Mi"}})
    assert got == ("      containers:\n        - name: a\n          image: x\n          resources:\n"
                   "            requests:\n              cpu: 100m\n            limits:\n              memory: 64Mi\n")


def test_empty_section_and_null_section(tmp_path) -> None:
    body = "      containers:\n      - name: a\n        image: x\n        resources:\n          limits:\n          requests: {cpu: 1}\n"
    got = _edit(tmp_path, body, {"a": {("limits", "memory"): "1Gi"}})
    assert got == ("      containers:\n      - name: a\n        image: x\n        resources:\n"
                   "          limits: {memory: 1Gi}\n          requests: {cpu: 1}\n")


def test_an_alias_shared_by_two_containers_changes_only_the_patched_one(tmp_path) -> None:
    body = ("      containers:\n"
            "      - name: a\n        image: x\n        resources: &small\n          requests: {cpu: 100m, memory: 64Mi}\n"
            "      - name: b\n        image: y\n        resources: *small\n"
            "      - name: c\n        image: z\n        resources: *small\n")
    got = _edit(tmp_path, body, {"b": {("requests", "cpu"): "300m"}})
    loaded = yaml.safe_load(HEAD + got)["spec"]["template"]["spec"]["containers"]
    assert [c["resources"] for c in loaded] == [
        {"requests": {"cpu": "100m", "memory": "64Mi"}},
        {"requests": {"cpu": "300m", "memory": "64Mi"}},
        {"requests": {"cpu": "100m", "memory": "64Mi"}}]
    # the anchor's own container was rewritten only because its anchor was dropped: same values
    assert "&small" not in got and "*small" not in got


def test_merge_keys_are_made_explicit(tmp_path) -> None:
    body = ("      containers:\n"
            "      - name: a\n        image: x\n        resources: &base\n          requests: {cpu: 100m}\n"
            "      - name: b\n        image: y\n        resources:\n          <<: *base\n          limits: {memory: 1Gi}\n")
    got = _edit(tmp_path, body, {"b": {("requests", "memory"): "512Mi"}})
    loaded = yaml.safe_load(HEAD + got)["spec"]["template"]["spec"]["containers"]
    assert loaded[0]["resources"] == {"requests": {"cpu": "100m"}}
    assert loaded[1]["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}


def test_init_containers_and_sidecars_are_read(tmp_path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + "      initContainers:\n      - name: init\n        image: i\n"
                    "      - name: side\n        image: s\n        restartPolicy: Always\n"
                    "      containers:\n      - name: main\n        image: m\n")
    (w,) = load_file(path).workloads
    assert [(c.name, c.init, c.sidecar) for c in w.containers] == [
        ("init", True, False), ("side", True, True), ("main", False, False)]


def test_a_workload_without_containers_is_bad_input(tmp_path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(HEAD + "      containers: []\n")
    with pytest.raises(BadInputError, match=r"e.yaml:1:1: Deployment w has no containers"):
        load_file(path)


def test_windows_line_endings_are_kept(tmp_path) -> None:
    path = tmp_path / "w.yaml"
    body = "      containers:\n      - name: a\n        image: x\n        resources:\n          requests:\n            cpu: 1\n"
    path.write_bytes((HEAD + body).replace("\n", "\r\n").encode())
    mf = load_file(path)
    (c,) = mf.workloads[0].containers
    new = edit_text(mf, [(c, {("requests", "cpu"): "250m", ("limits", "memory"): "1Gi"})])
    assert new.count("\r\n") == new.count("\n")
    assert new.endswith("            cpu: 250m\r\n          limits:\r\n            memory: 1Gi\r\n")
