"""`rlpr serve`: the gRPC and REST fronts in one process over one RewardService."""
from __future__ import annotations

import logging

import uvicorn

from reward_service.config import ServeConfig, split_addr
from reward_service.grpc_server import create_server
from reward_service.rest_app import create_app
from reward_service.service import RewardService

log = logging.getLogger(__name__)


def serve(config: ServeConfig) -> None:
    service = RewardService.from_config(config)
    grpc_server, grpc_port = create_server(
        service, config.grpc_addr, config.auth_token, config.max_request_bytes, config.grpc_threads
    )
    grpc_server.start()
    host, port = split_addr(config.rest_addr, "rest_addr")
    log.info("gRPC listening", extra={"port": grpc_port})
    print(f"rlpr serve: gRPC on {config.grpc_addr.rpartition(':')[0]}:{grpc_port}, "
          f"REST on http://{config.rest_addr} (docs at /docs), backend={config.backend}", flush=True)
    app = create_app(service, config.auth_token, config.max_request_bytes)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        grpc_server.stop(grace=2).wait()
