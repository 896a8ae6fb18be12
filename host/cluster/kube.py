"""The Kubernetes boundary: every cluster access goes through here and nowhere else.

It runs `kubectl` with the configured kubeconfig, sends objects as JSON to
`kubectl apply --server-side`, and reads with `kubectl get -o json`: structured in and out,
never parsed text. The kubeconfig is configuration, so the Flux and release phases run
unchanged against any cluster.
"""

import json
import subprocess
from dataclasses import dataclass

from host.core import paths

FIELD_MANAGER = "alga-appliance"
TIMEOUT = 120


class KubeError(Exception):
    """kubectl failed; carries the command and kubectl's own explanation."""

    def __init__(self, args: list[str], returncode: int, stderr: str):
        self.returncode, self.stderr = returncode, stderr.strip()
        super().__init__(f"kubectl {' '.join(args)} failed ({returncode}): {self.stderr}")

    @property
    def not_found(self) -> bool:
        return "NotFound" in self.stderr or "not found" in self.stderr

    @property
    def no_such_resource(self) -> bool:
        """The cluster does not know the resource type: its CRD is not installed."""
        return "doesn't have a resource type" in self.stderr


@dataclass(frozen=True)
class Kube:
    kubeconfig: str = paths.K3S_KUBECONFIG

    def _run(self, args: list[str], stdin: str | None = None) -> str:
        try:
            done = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args],
                                  input=stdin, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise KubeError(args, -1, f"no answer within {TIMEOUT} s") from exc
        except FileNotFoundError as exc:
            raise KubeError(args, -1, "kubectl is not installed") from exc
        if done.returncode != 0:
            raise KubeError(args, done.returncode, done.stderr)
        return done.stdout

    def apply(self, objects: list[dict]) -> list[dict]:
        """Server-side apply `objects` as one List; return what the API server stored."""
        document = {"apiVersion": "v1", "kind": "List", "items": objects}
        out = self._run(["apply", "--server-side", f"--field-manager={FIELD_MANAGER}",
                         "--force-conflicts", "-o", "json", "-f", "-"], json.dumps(document))
        stored = json.loads(out)
        return stored["items"] if stored.get("kind") == "List" else [stored]

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None if it does not exist."""
        try:
            out = self._run(["get", resource, name, *_namespaced(namespace), "-o", "json"])
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return json.loads(out)

    def annotate(self, resource: str, name: str, namespace: str | None,
                 annotations: dict[str, str]) -> None:
        """Set `annotations` on an object someone else owns (a Flux reconcile request on the
        Alga tree's objects), without taking over any of its other fields."""
        self._run(["annotate", "--overwrite", resource, name, *_namespaced(namespace),
                   *(f"{key}={value}" for key, value in annotations.items())])

    def delete(self, resource: str, name: str, namespace: str | None = None) -> None:
        """Delete the object; one that is already gone is fine."""
        self._run(["delete", resource, name, *_namespaced(namespace), "--ignore-not-found"])

    def list(self, resource: str, namespace: str | None = None) -> list[dict]:
        out = self._run(["get", resource, *_namespaced(namespace), "-o", "json"])
        return json.loads(out)["items"]

    def list_all_namespaces(self, resource: str, *options: str) -> dict:
        """`kubectl get <resource> --all-namespaces -o json`: the whole List document."""
        return json.loads(self._run(["get", resource, "--all-namespaces", "-o", "json",
                                     *options]))

    def logs(self, namespace: str, target: str, *options: str) -> str:
        """`kubectl logs` of a pod, or of `deployment/NAME` or `job/NAME`."""
        return self._run(["logs", target, "--namespace", namespace, *options])


def _namespaced(namespace: str | None) -> list[str]:
    return ["--namespace", namespace] if namespace else []
