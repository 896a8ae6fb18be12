"""Failures, described the same way wherever they happen.

An operation raises OperationFailed where it knows the cause; anything else it raises is
described from the category of where it happened. Either way the record names the
category, the suspected cause and the next step; the install state adds the last action, a
log excerpt and the support-bundle command.
"""

CATEGORIES = ("network", "dns", "release-source", "k3s", "flux", "storage",
              "app-bootstrap", "app-readiness", "background-services")
SUPPORT_COMMAND = "sudo alga-appliance support-bundle"
LOG_EXCERPT_LINES = 20


class OperationFailed(Exception):
    """A failure whose cause the operation understands."""

    def __init__(self, category: str, suspected_cause: str, next_step: str):
        assert category in CATEGORIES, category
        self.category, self.suspected_cause, self.next_step = (category, suspected_cause,
                                                               next_step)
        super().__init__(suspected_cause)


def failure_record(error: BaseException, category: str) -> dict:
    """What `error` says of itself, or, for an unforeseen error, what is known: it happened
    in something of `category`."""
    if isinstance(error, OperationFailed):
        return {"category": error.category, "suspected_cause": error.suspected_cause,
                "next_step": error.next_step}
    return {"category": category, "suspected_cause": f"unexpected {type(error).__name__}: "
                                                     f"{error}",
            "next_step": f"try again; if it fails again, send the support bundle "
                         f"({SUPPORT_COMMAND})"}


def log_excerpt(lines: list[str]) -> str:
    return "\n".join("\n".join(lines).splitlines()[-LOG_EXCERPT_LINES:])
