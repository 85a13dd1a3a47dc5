"""One module per console screen, each with its ``router = APIRouter()`` (paths relative to /console);
``console/app.py`` includes them all under the CSRF check."""
