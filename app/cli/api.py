"""``fraudscore api``: serve the REST API (uvicorn); ``fraudscore api token``: mint a
development token for it (docs/API.md)."""

from __future__ import annotations

import ipaddress
import time
from typing import Annotated

import typer

from app.api.auth import Role, mint_token, token_verifier
from app.api.errors import ApiConfigError
from app.cli.console import announce, catch_errors
from app.logs import configure_logging
from app.settings import FraudscoreSettings, get_settings

app = typer.Typer(
    help="The REST API: serve it, or mint a development token for it",
    invoke_without_command=True,
)


@app.callback()
def api(
    ctx: typer.Context,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Serve the REST API on FRAUDSCORE_API_HOST:FRAUDSCORE_API_PORT (127.0.0.1:8000) until
    Ctrl-C or SIGTERM; OpenAPI at /docs and /openapi.json."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn  # noqa: PLC0415 (not needed to mint a token)

    from app.api.application import create_app  # noqa: PLC0415

    settings = get_settings()
    configure_logging(log_level, settings, "api")
    with catch_errors():
        _refuse_exposed_dev_key(settings)
        application = create_app(settings)
    announce(f"API on http://{settings.api_host}:{settings.api_port} (docs at /docs)")
    uvicorn.run(
        application,
        host=settings.api_host,
        port=settings.api_port,
        log_level=log_level.lower(),
        log_config=None,  # uvicorn's lines go through our handler: JSON like the rest
        server_header=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )


def _refuse_exposed_dev_key(settings: FraudscoreSettings) -> None:
    """The development key is public: never accept it from beyond this machine."""
    if not token_verifier(settings).dev_key:
        return
    try:
        loopback = ipaddress.ip_address(settings.api_host).is_loopback
    except ValueError:
        loopback = settings.api_host == "localhost"
    if not loopback:
        raise ApiConfigError(
            f"the API would accept tokens signed with the public development key on "
            f"{settings.api_host}: listen on 127.0.0.1, or configure a key "
            "(FRAUDSCORE_API_JWKS_URL, FRAUDSCORE_API_JWKS_FILE or FRAUDSCORE_API_JWT_SECRET)"
        )


@app.command()
def token(
    role: Annotated[list[Role], typer.Option(help="Role to grant; repeat for several")],
    subject: Annotated[str, typer.Option(help="The token's sub: who, in the admin log")] = "dev",
    ttl_minutes: Annotated[int, typer.Option(min=1, max=24 * 60, help="Lifetime")] = 60,
) -> None:
    """Print a token signed with the configured shared secret (or, in dev, the development
    key), e.g. TOKEN=$(fraudscore api token --role analyst)."""
    with catch_errors():
        verifier = token_verifier(get_settings())
        typer.echo(mint_token(verifier, subject, role, ttl_minutes * 60, time.time()))
