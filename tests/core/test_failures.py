"""Failure records with literal expectations: the categories, the record of a known and an
unforeseen failure and the log excerpt's length."""

import pytest

from host.core import failures
from host.core.failures import OperationFailed, failure_record, log_excerpt


def test_the_categories_are_these():
    # schemas and docs/support name each; adding or dropping one is a contract change.
    assert failures.CATEGORIES == (
        "network", "dns", "release-source", "k3s", "flux", "storage", "app-bootstrap",
        "app-readiness", "background-services")


@pytest.mark.parametrize("category", failures.CATEGORIES)
def test_a_known_failure_is_recorded_as_it_says(category):
    error = OperationFailed(category, "ghcr.io does not resolve", "fix DNS")
    assert str(error) == "ghcr.io does not resolve"
    assert failure_record(error, "k3s") == {"category": category, "suspected_cause":
                                            "ghcr.io does not resolve", "next_step": "fix DNS"}


def test_an_unknown_category_is_a_bug():
    with pytest.raises(AssertionError):
        OperationFailed("weather", "rain", "wait")


def test_an_unforeseen_failure_takes_the_category_of_where_it_happened():
    assert failure_record(KeyError("spec"), "flux") == {
        "category": "flux", "suspected_cause": "unexpected KeyError: 'spec'",
        "next_step": "try again; if it fails again, send the support bundle "
                     "(sudo alga-appliance support-bundle)"}


def test_the_log_excerpt_is_the_last_20_lines():
    lines = [f"line {n}" for n in range(1, 31)]
    assert log_excerpt(lines) == "\n".join(f"line {n}" for n in range(11, 31))
    assert log_excerpt(["a\nb", "c"]) == "a\nb\nc"
    assert log_excerpt([]) == ""

