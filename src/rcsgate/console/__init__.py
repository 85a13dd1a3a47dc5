"""The web console at ``/console/``: server-rendered pages (Jinja2 + htmx) over the same services as
the API, in the same process. ``app.mount_console`` adds it to the FastAPI app; docs/console.md
describes what it offers."""
