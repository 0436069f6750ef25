"""HTTP serving of recommendations (needs the ``serve`` extra: fastapi, uvicorn)."""

from dotrec.serve.app import (
    MAX_ID_LENGTH,
    MAX_K,
    ServingState,
    app_from_env,
    create_app,
    load_state,
    reload_state,
)

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_K",
    "ServingState",
    "app_from_env",
    "create_app",
    "load_state",
    "reload_state",
]
