"""The REST API (FastAPI), served by ``fraudscore api``; docs/API.md describes it.

- :mod:`app.api.application`: the app factory (``create_app``);
- :mod:`app.api.auth`: bearer JWTs, roles and the dependencies that check them;
- :mod:`app.api.errors` and :mod:`app.api.handlers`: the errors, and the one place that turns
  exceptions into the error shape;
- :mod:`app.api.middleware`: request ids and the body size limit;
- :mod:`app.api.resources` and :mod:`app.api.publisher`: what the lifespan opens and closes;
- :mod:`app.api.routers`: one router per resource.
"""
