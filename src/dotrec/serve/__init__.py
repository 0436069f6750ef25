"""HTTP serving of recommendations (needs the ``serve`` extra: fastapi, uvicorn)."""

from dotrec.serve.app import MAX_K, ServingState, app_from_env, create_app, load_state

__all__ = ["MAX_K", "ServingState", "app_from_env", "create_app", "load_state"]
