"""The web dashboard and HTTP API: `python -m worker web` (docs/web.md).

`worker.web.app.create_app(settings)` builds the ASGI app and `serve(settings)` runs it.
Everything it shows or does goes through `worker.admin.Admin`, the CLI's core; the read
queries it adds for scale live in `worker.queries`. Nothing here is imported by the CLI
until `web` runs (FastAPI is the `web` extra).
"""
