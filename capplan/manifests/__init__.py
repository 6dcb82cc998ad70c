"""Kubernetes manifests: reading workloads and their containers' resources out of YAML files
(`load`), and rewriting only the `resources` blocks of those files (`edit`), plus kustomize
overlays (`kustomize`). Knows nothing of the store or of recommendations."""
