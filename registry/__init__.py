"""The enarx-pkg registry: an OCI Distribution v1.1 server with tokens, HTML browsing and a JSON API.

Start it with ``enarx-pkg registry serve``; build the ASGI app with :func:`registry.app.create_app`.
"""

__version__ = "0.1.0"
