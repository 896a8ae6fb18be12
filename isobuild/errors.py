"""The one error type isobuild raises for anything a release engineer can fix."""


class IsoBuildError(Exception):
    """A refusal or failure with the problem stated and the fix to apply."""

    def __init__(self, problem: str, fix: str):
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}\n  fix: {fix}")
