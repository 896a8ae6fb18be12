"""Status scenarios (plain helpers): the stages of a fresh install and a background
crash-loop as cluster views, and `collect`, the status collector run on a host root
against the fake cluster (support.cluster) and a real login probe of alga_server, the app
where alga-core serves it."""

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import click

from host import cli, status
from host.cluster.alga import APP_PORT, BACKGROUND
from host.cluster.kube import Kube
from host.cluster.readiness import ClusterView
from host.core import state
from support.builders import INSTALLED, healthy, job, node, pod, store_for, workload
from support.netlab import HttpsServer, Route, free_loopback_address


def alga_server(routes: dict[str, Route]) -> HttpsServer:
    """alga-core's server as it listens: plain HTTP on the node's address, port 3000."""
    return HttpsServer(None, routes, address=free_loopback_address(), port=APP_PORT)


@contextlib.contextmanager
def installed_with_app(root: Path) -> Iterator[HttpsServer]:
    """`root` (a host root) after a finished install with the default answers, its app URL
    served by alga-core's stand-in server, which it yields."""
    with alga_server({"/": Route(status=302, headers={"Location": "/msp/dashboard"})}) as app:
        state.write(state.SETUP_INPUTS, {"channel": "stable", "app_url": app.url,
                                         "dns": {"mode": "system"}, "proxy": None,
                                         "overrides": {}}, root)
        state.write(state.INSTALL_STATE, INSTALLED, root)
        yield app


def collect(root: Path, view: ClusterView | None = None, pods=(), events=()) -> dict:
    """The collector; the view's node is where the lab's app (the app URL) listens."""
    if view is not None:
        address = urlsplit(state.read(state.SETUP_INPUTS, root)["app_url"]).hostname
        view = replace(view, nodes=[node(n["status"]["conditions"][0]["status"], address)
                                    for n in view.nodes])
        (root / "store.json").write_text(json.dumps(store_for(view, pods, events)))
    snapshot = status.take_snapshot(root, Kube(str(root / "k3s.yaml")),
                                    probe=lambda url: status.probe_login(url, timeout=1.0))
    for text in primary_texts(snapshot):  # every scenario's words: none asks for kubectl
        assert "kubectl" not in text.lower(), text
    return snapshot


def primary_texts(snapshot: dict) -> list[str]:
    """What an admin reads first in a snapshot, in both the web and the console: the
    rollup, the tiers, the blockers and the app stage's failure; not the Kubernetes detail,
    the events nor a log excerpt, which are what the cluster said."""
    rollup, failure = snapshot["rollup"], snapshot["app_failure"] or {}
    return [rollup["label"], rollup["message"], rollup["next_action"],
            *(text for tier in snapshot["tiers"].values()
              for text in (tier["title"], tier["meaning"], tier["reason"])),
            *(text for blocker in snapshot["blockers"]
              for text in (blocker["label"], blocker["reason"], blocker["next_action"])),
            *(failure.get(key, "") for key in ("suspected_cause", "last_action", "next_step"))]


def stage(name: str) -> ClusterView:
    view = healthy()
    if name == "empty":
        return ClusterView(nodes=[node()])
    if name == "platform":
        return ClusterView(nodes=view.nodes, gitrepositories=view.gitrepositories,
                           kustomizations=view.kustomizations)
    if name == "core":
        view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
        view.jobs, view.helmreleases = [job("alga-core-sebastian-bootstrap-r1")], []
        return view
    if name == "bootstrap":
        view.deployments = [d for d in view.deployments if d["metadata"]["name"] == "pgbouncer"]
        return view
    if name == "login":
        view.deployments = [d for d in view.deployments
                            if d["metadata"]["name"] not in BACKGROUND]
        return view
    return view


def temporal_worker_crashloop() -> tuple[ClusterView, list[dict]]:
    """Everything healthy but a background worker, crash-looping."""
    view = healthy()
    view.deployments = [workload("Deployment", "temporal-worker", 0)
                        if d["metadata"]["name"] == "temporal-worker" else d
                        for d in view.deployments]
    return view, [pod("temporal-worker-5d9c-x1", "ReplicaSet", "temporal-worker-5d9c",
                      waiting="CrashLoopBackOff", restarts=7)]


def assert_next_step_is_ours(text: str) -> None:
    """A next step asks for no kubectl, and every command it gives is ours and runs as
    written: `sudo alga-appliance ...`, accepted by the CLI with exactly those words."""
    assert "kubectl" not in text.lower(), text
    commands = re.findall(r"`([^`]*)`", text)
    bare = re.findall(r"\((sudo alga-appliance [^)]*)\)", text)  # (sudo alga-appliance x)
    for command in [*commands, *bare]:
        assert command.startswith("sudo alga-appliance "), (command, text)
        assert not re.search("[<>…|]", command), command
        words = command.split()[2:]
        group, rest = cli.main, words
        while isinstance(group, click.Group):
            assert rest and rest[0] in group.commands, command
            group, rest = group.commands[rest[0]], rest[1:]
        group.make_context(group.name, list(rest), resilient_parsing=False)
