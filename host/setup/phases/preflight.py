"""Preflight: every check before anything on the host changes; records the release the
channel names."""

from host.core import state
from host.core.failures import OperationFailed
from host.net import endpoints
from host.setup import preflight

READS = (state.SETUP_INPUTS, state.ENDPOINTS, state.RELEASE_SOURCE)


def execute(ctx) -> None:
    inputs = ctx.inputs()
    ctx.action("checking DNS, the proxy, the release source, GitHub and GHCR")
    result = preflight.run_checks(inputs, endpoints.load(ctx.root), ctx.root, log=ctx.log)
    if result.failure is not None:  # the root cause's first failed check
        failure = result.failure
        raise OperationFailed(failure.category, f"{failure.check_id}: {failure.message}",
                              failure.remediation)
    ctx.action("recording the selected release")
    state.write(state.SELECTED_RELEASE, result.selection, ctx.root)
