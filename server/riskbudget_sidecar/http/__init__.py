"""The admin HTTP port: metrics, health, JSON status, operator controls and the dashboard."""

from .server import AdminHttpServer, start_http_server

__all__ = ["AdminHttpServer", "start_http_server"]
