"""pyrunc: an OCI container runtime (runc-compatible CLI) in Python with a small C helper."""

__version__ = "0.1.0"
OCI_VERSION = "1.3.0"
