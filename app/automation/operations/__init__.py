"""Running it for real (docs/OPERATIONS.md): Prometheus metrics, structured
logs and the stuck-work monitor."""
