"""rcsgate: self-hostable RCS business messaging, wire-compatible with BSG One-API (RCS)."""

__version__ = "0.1.0"
