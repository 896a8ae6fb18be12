"""What a running phase may do: say what it is doing, log, read the setup inputs, and
change the host in the ways every phase records the same way."""

from pathlib import Path

from host.core import hostcmd, paths, state
from host.core.failures import OperationFailed
from host.core.operation import Operation


class PhaseContext:
    def __init__(self, name: str, root: Path, install: dict, kubeconfig: str, save):
        self.name, self.root, self.install, self.kubeconfig = name, root, install, kubeconfig
        self.operation = Operation(install["phases"][name], "last_action", save,
                                   paths.on_host(paths.LOG_DIR, root) / f"{name}.log")

    def action(self, text: str) -> None:
        self.operation.step(text)

    def log(self, line: str) -> None:
        self.operation.log(line)

    def inputs(self) -> dict:
        inputs = state.read(state.SETUP_INPUTS, self.root)
        if inputs is None:
            raise OperationFailed("network", "setup has not been submitted yet",
                                  "complete setup in the web UI or on the console")
        return inputs

    def write_file(self, path: str, text: str, mode: int) -> None:
        """Replace the host file `path` (one of host.core.paths) atomically."""
        target = paths.on_host(path, self.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        state.write_atomically(target, text.encode(), mode)

    def run_host_command(self, argv: list[str], category: str, next_step: str) -> None:
        try:
            hostcmd.run(argv)
        except hostcmd.CommandFailed as exc:
            raise OperationFailed(category, str(exc), next_step) from exc

    def record_host_changes(self, files: list[dict]) -> None:
        """Replace this phase's entries in the host-changes record with `files`."""
        current = state.read(state.HOST_CHANGES, self.root) or {"files": []}
        kept = [entry for entry in current["files"] if entry["phase"] != self.name]
        state.write(state.HOST_CHANGES, {"files": kept + files}, self.root)
