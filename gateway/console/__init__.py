"""The web console's static files (`static/`), served at /console by gateway.api.console."""
