"""Failure classification, the same for every phase.

A phase raises PhaseFailure where it knows the cause; anything else it raises is
classified from the phase's declared category. Either way the install state records
the category, the last action, a log excerpt, the suspected cause, the next step,
whether a retry is safe, and the support-bundle command.
"""

CATEGORIES = ("network", "dns", "github-release-source", "k3s", "flux", "storage",
              "app-bootstrap", "app-readiness", "background-services")
SUPPORT_COMMAND = "sudo alga-appliance support-bundle"
LOG_EXCERPT_LINES = 20


class PhaseFailure(Exception):
    """A failure whose cause the phase understands."""

    def __init__(self, category: str, suspected_cause: str, next_step: str,
                 retry_safe: bool | None = None):
        assert category in CATEGORIES, category
        self.category, self.suspected_cause = category, suspected_cause
        self.next_step, self.retry_safe = next_step, retry_safe
        super().__init__(suspected_cause)


def classify(error: BaseException, *, phase_category: str, phase_retry_safe: bool,
             last_action: str, log_text: str) -> dict:
    """The install-state failure record for `error`."""
    if isinstance(error, PhaseFailure):
        category, cause, next_step = error.category, error.suspected_cause, error.next_step
        retry_safe = phase_retry_safe if error.retry_safe is None else error.retry_safe
    else:
        category, retry_safe = phase_category, phase_retry_safe
        cause = f"unexpected {type(error).__name__}: {error}"
        next_step = f"retry setup; if it fails again, send the support bundle ({SUPPORT_COMMAND})"
    return {
        "category": category,
        "last_action": last_action,
        "log_excerpt": "\n".join(log_text.splitlines()[-LOG_EXCERPT_LINES:]),
        "suspected_cause": cause,
        "next_step": next_step,
        "retry_safe": retry_safe,
        "support_command": SUPPORT_COMMAND,
    }
