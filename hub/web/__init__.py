"""The hub's web dashboard and HTTP API (docs/dashboard.md)."""
