"""The one exception type pyrunc reports to its caller as a single error line."""


class PyruncError(Exception):
    """A failure to report as `pyrunc: <message>` with a non-zero exit status."""
