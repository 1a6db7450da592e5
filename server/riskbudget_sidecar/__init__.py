"""riskbudget sidecar: a regime-aware risk budget served over localhost gRPC."""

__version__ = "0.1.0"
