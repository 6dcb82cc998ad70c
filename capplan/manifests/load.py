"""Read Kubernetes manifests: files or folders of multi-document YAML, to the workloads they
declare and each container's current requests and limits.

Workloads are Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and bare Pods
(`kind: List` items too); containers, init containers and native sidecars (init containers
with `restartPolicy: Always`). Other built-in kinds (Service, ConfigMap, ...) and custom
resources are passed over. Bad input raises BadInputError naming file, line and column: YAML
that does not parse, a document that is not a Kubernetes object, a built-in API group with a kind
Kubernetes does not have, an unparsable quantity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from capplan.errors import BadInputError
from capplan.manifests import yamlnodes as yn
from capplan.quantity import parse_cpu_cores, parse_memory_bytes

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}
# API groups served by Kubernetes itself: a kind in one of these that Kubernetes does not have
# is a typo the apiserver would reject (custom resources live in other groups and are skipped).
BUILTIN_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "apiregistration.k8s.io",
    "certificates.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io", "resource.k8s.io",
    "extensions", "authentication.k8s.io", "authorization.k8s.io", "internal.apiserver.k8s.io",
    "storagemigration.k8s.io",
}
# The built-in kinds (kubectl api-resources, Kubernetes 1.35) that hold no pod template.
OTHER_BUILTIN_KINDS = {
    "Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
    "PersistentVolume", "PersistentVolumeClaim", "PodTemplate", "ReplicationController", "ResourceQuota",
    "Secret", "Service", "ServiceAccount", "ControllerRevision", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "Ingress", "IngressClass", "NetworkPolicy", "ServiceCIDR", "IPAddress",
    "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "CSIDriver", "CSINode",
    "CSIStorageCapacity", "StorageClass", "VolumeAttachment", "VolumeAttributesClass", "PriorityClass",
    "Lease", "EndpointSlice", "RuntimeClass", "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "CustomResourceDefinition",
    "APIService", "CertificateSigningRequest", "ClusterTrustBundle", "FlowSchema",
    "PriorityLevelConfiguration", "DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice",
    "TokenReview", "TokenRequest", "SelfSubjectReview", "SubjectAccessReview", "SelfSubjectAccessReview",
    "SelfSubjectRulesReview", "LocalSubjectAccessReview", "StorageVersion", "StorageVersionMigration",
    "Eviction", "Scale", "List",
}
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
RESOURCE_KEYS = (("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory"))
# The flat names the analyses use for the four values.
FLAT = {("requests", "cpu"): "cpu_request_cores", ("limits", "cpu"): "cpu_limit_cores",
        ("requests", "memory"): "memory_request_bytes", ("limits", "memory"): "memory_limit_bytes"}


@dataclass
class Container:
    name: str
    init: bool            # in initContainers
    sidecar: bool         # an init container with restartPolicy: Always
    node: MappingNode     # the container's mapping in the file
    path: tuple           # path to it in the loaded document (for verification)
    line: int             # 1-based line of the container
    current: dict[str, float | None]   # cpu_request_cores, cpu_limit_cores, memory_request_bytes, memory_limit_bytes
    raw: dict[tuple[str, str], str]    # ("limits", "cpu") -> "500m" as written
    resources_line: int | None = None  # 1-based line of `resources:`

    def value_line(self, section: str, resource: str) -> int:
        """The line of one value (its container's line when it is not written)."""
        res = yn.value(self.node, "resources")
        sec = yn.get(res, section) if isinstance(res, MappingNode) else None
        val = yn.get(sec[1], resource) if sec and isinstance(sec[1], MappingNode) else None
        if val is not None and not yn.is_alias_use(*val):
            return val[1].start_mark.line + 1
        return self.resources_line or self.line


@dataclass
class Workload:
    file: Path
    doc_index: int
    api_version: str
    kind: str
    name: str
    namespace: str | None   # as resolved: metadata, kustomization, or the --namespace default
    line: int
    containers: list[Container]
    namespace_from: str = "metadata"   # metadata | kustomization | option

    @property
    def key(self) -> tuple[str | None, str, str]:
        return (self.namespace, self.kind, self.name)

    @property
    def label(self) -> str:
        return f"{self.namespace or '?'}/{self.kind}/{self.name}"


@dataclass
class Skipped:
    file: Path
    line: int
    what: str


@dataclass
class ManifestFile:
    path: Path
    text: str
    documents: list[Node | None]
    workloads: list[Workload] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _where(path: Path, node: Node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _walk(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml")
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and p.name not in KUSTOMIZATION_NAMES)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise BadInputError(f"{path}: no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def kustomization_of(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def _kustomize_namespace(path: Path, cache: dict[Path, tuple[str | None, set[str]]]) -> str | None:
    """The `namespace:` of a kustomization beside `path` that lists it in `resources`
    (kustomize sets it on every resource it builds)."""
    directory = path.parent.resolve()
    if directory not in cache:
        found = kustomization_of(directory)
        namespace, resources = None, set()
        if found is not None:
            try:
                data = YAML(typ="safe", pure=True).load(found.read_text(encoding="utf-8"))
            except YAMLError as exc:
                raise BadInputError(f"{found}: malformed YAML: {str(exc).splitlines()[0]}") from exc
            if isinstance(data, dict):
                namespace = data.get("namespace") if isinstance(data.get("namespace"), str) else None
                listed = data.get("resources") or []
                resources = {str(r) for r in listed} if isinstance(listed, list) else set()
        cache[directory] = (namespace, {str((directory / r).resolve()) for r in resources})
    namespace, listed = cache[directory]
    return namespace if str(path.resolve()) in listed else None


def _quantity(path: Path, node: Node, resource: str) -> float:
    if not isinstance(node, ScalarNode):
        raise BadInputError(f"{_where(path, node)}: {resource} must be a quantity, not a {type(node).__name__}")
    try:
        return parse_cpu_cores(node.value) if resource == "cpu" else float(parse_memory_bytes(node.value))
    except BadInputError as exc:
        raise BadInputError(f"{_where(path, node)}: {exc}") from exc


def _container(path: Path, node: Node, init: bool, doc_path: tuple) -> Container:
    if not isinstance(node, MappingNode):
        raise BadInputError(f"{_where(path, node)}: a container must be a mapping")
    name = yn.scalar(node, "name")
    if not name:
        raise BadInputError(f"{_where(path, node)}: a container without a name")
    sidecar = init and yn.scalar(node, "restartPolicy") == "Always"
    current: dict[str, float | None] = {v: None for v in FLAT.values()}
    raw: dict[tuple[str, str], str] = {}
    res = yn.get(node, "resources")
    if res is not None and not yn.is_null(res[1]):
        if not isinstance(res[1], MappingNode):
            raise BadInputError(f"{_where(path, res[1])}: resources must be a mapping")
        for section, resource in RESOURCE_KEYS:
            sec = yn.value(res[1], section)
            if sec is None or yn.is_null(sec):
                continue
            if not isinstance(sec, MappingNode):
                raise BadInputError(f"{_where(path, sec)}: resources.{section} must be a mapping")
            val = yn.value(sec, resource)
            if val is None or yn.is_null(val):
                continue
            current[FLAT[(section, resource)]] = _quantity(path, val, resource)
            raw[(section, resource)] = str(val.value)
    return Container(name=name, init=init, sidecar=sidecar, node=node, path=doc_path,
                     line=node.start_mark.line + 1, current=current, raw=raw,
                     resources_line=res[0].start_mark.line + 1 if res else None)


def _workload(path: Path, index: int, node: MappingNode, doc_path: tuple, kind: str, api_version: str,
              default_namespace: str | None, kustomize_ns: str | None) -> Workload:
    meta = yn.value(node, "metadata")
    name = yn.scalar(meta, "name")
    if not name:
        raise BadInputError(f"{_where(path, node)}: {kind} without metadata.name")
    namespace, source = kustomize_ns, "kustomization"
    if namespace is None:
        namespace, source = yn.scalar(meta, "namespace"), "metadata"
    if namespace is None:
        namespace, source = default_namespace, "option"
    spec: Node | None = node
    spec_path = doc_path
    for step in POD_SPEC_PATHS[kind]:
        spec = yn.value(spec, step)
        spec_path = (*spec_path, step)
    containers: list[Container] = []
    if isinstance(spec, MappingNode):
        for list_key, init in (("initContainers", True), ("containers", False)):
            items = yn.value(spec, list_key)
            if items is None or yn.is_null(items):
                continue
            if not isinstance(items, SequenceNode):
                raise BadInputError(f"{_where(path, items)}: {list_key} must be a list")
            for i, item in enumerate(items.value):
                containers.append(_container(path, item, init, (*spec_path, list_key, i)))
    if not any(not c.init for c in containers):
        raise BadInputError(f"{_where(path, node)}: {kind} {name} has no containers")
    return Workload(file=path, doc_index=index, api_version=api_version, kind=kind, name=name,
                    namespace=namespace, line=node.start_mark.line + 1, containers=containers,
                    namespace_from=source)


def _object(mf: ManifestFile, index: int, node: Node, doc_path: tuple, default_namespace: str | None,
            kustomize_ns: str | None) -> None:
    path = mf.path
    if not isinstance(node, MappingNode):
        raise BadInputError(f"{_where(path, node)}: not a Kubernetes object (a mapping with apiVersion "
                            f"and kind), found a {'list' if isinstance(node, SequenceNode) else 'scalar'}")
    api_version, kind = yn.scalar(node, "apiVersion"), yn.scalar(node, "kind")
    if not api_version or not kind:
        missing = " and ".join(k for k, v in (("apiVersion", api_version), ("kind", kind)) if not v)
        raise BadInputError(f"{_where(path, node)}: not a Kubernetes object (no {missing})")
    group = api_version.split("/")[0] if "/" in api_version else ""
    if kind == "List":
        items = yn.value(node, "items")
        if isinstance(items, SequenceNode):
            for i, item in enumerate(items.value):
                _object(mf, index, item, (*doc_path, "items", i), default_namespace, kustomize_ns)
        return
    if kind in POD_SPEC_PATHS and group in ("", "apps", "batch"):
        mf.workloads.append(_workload(path, index, node, doc_path, kind, api_version, default_namespace,
                                      kustomize_ns))
    elif group in BUILTIN_GROUPS and kind not in OTHER_BUILTIN_KINDS and kind not in POD_SPEC_PATHS:
        raise BadInputError(f"{_where(path, node)}: unknown kind {kind!r} in {api_version} "
                            "(Kubernetes has no such kind)")
    else:
        meta = yn.value(node, "metadata")
        mf.skipped.append(Skipped(path, node.start_mark.line + 1, f"{kind} {yn.scalar(meta, 'name') or ''}".strip()))


def parse_text(path: Path, text: str) -> list[Node | None]:
    """The documents of one file as composed nodes (None for an empty document)."""
    try:
        docs = list(YAML().compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "cannot parse"
        raise BadInputError(f"{where}: malformed YAML: {problem}") from exc
    except YAMLError as exc:
        raise BadInputError(f"{path}: malformed YAML: {str(exc).splitlines()[0]}") from exc
    return [None if yn.is_null(d) else d for d in docs]


def load_file(path: Path, default_namespace: str | None = None,
              cache: dict | None = None) -> ManifestFile:
    try:
        with path.open(encoding="utf-8", newline="") as handle:   # newline="": keep CRLF as written
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    mf = ManifestFile(path=path, text=text, documents=parse_text(path, text))
    kustomize_ns = _kustomize_namespace(path, cache if cache is not None else {})
    for index, doc in enumerate(mf.documents):
        if doc is not None:
            _object(mf, index, doc, (index,), default_namespace, kustomize_ns)
    return mf


def load(paths: list[Path], default_namespace: str | None = None) -> list[ManifestFile]:
    """Every manifest file under `paths` (folders walked for *.yaml/*.yml, sorted)."""
    cache: dict = {}
    return [load_file(p, default_namespace, cache) for p in _walk(paths)]
