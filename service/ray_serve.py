"""blockserve as a Ray Serve application: replicas of the whole blockserve app behind Ray's HTTP
proxy, autoscaled on ongoing requests. Needs the `ray` extra (`pip install 'blockserve[ray]'`);
nothing else in blockserve imports this module.

Each replica loads a blockserve YAML config, builds `service.app.create_app` for it and runs its
lifespan (models loaded, batchers and decode pool started), so it answers the same REST and V2
routes as `blockserve serve`. gRPC stays off in replicas: Ray's proxy speaks HTTP to them.
A replica starts once its models have loaded and reports healthy to Ray while blockserve is
ready.

    serve run service.ray_serve:build_app config_path=my.yaml max_replicas=4

or `serve.run(build_app({"config_path": "my.yaml"}))`. Serve it at route prefix `/` (Ray's
default): blockserve's routes are absolute paths.
"""

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from ray import serve
from ray.serve import Application

from service.app import create_app
from service.config import RepositoryConfig, load_config
from service.repository import ModelRepository


class ReplicaNotReady(RuntimeError):
    """blockserve in this replica cannot serve: its models failed, or it is shutting down."""


class BlockserveArgs(BaseModel):
    """The application's arguments (`serve run ... key=value`, or a Serve config's `args`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # A blockserve model repository YAML, read by each replica; unset: $BLOCKSERVE_CONFIG in
    # the replica's environment, else the packaged default config.
    config_path: Path | None = None
    name: str = "blockserve"  # the deployment's name
    min_replicas: NonNegativeInt = 1
    max_replicas: PositiveInt = 2
    initial_replicas: NonNegativeInt | None = None  # unset: min_replicas
    # Requests in flight per replica that the autoscaler aims at. A replica batches the requests
    # it holds at once, so this sits well above Ray's default of 2.
    target_ongoing_requests: PositiveFloat = 16
    # Requests Ray sends one replica at once; further ones wait in the proxy. Ray's default of
    # 5 would cap every batch at 5 requests.
    max_ongoing_requests: PositiveInt = 64
    upscale_delay_s: NonNegativeFloat = 30
    downscale_delay_s: NonNegativeFloat = 600
    num_cpus: PositiveFloat = 1  # reserved for each replica in the Ray cluster
    health_check_period_s: PositiveFloat = 10
    health_check_timeout_s: PositiveFloat = 30

    @model_validator(mode="after")
    def _check_replicas(self) -> "BlockserveArgs":
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self

    def autoscaling_config(self) -> dict[str, float | int | None]:
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "initial_replicas": self.initial_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
        }


def replica_config(config: RepositoryConfig) -> RepositoryConfig:
    """`config` as a replica serves it: gRPC off."""
    server = config.server
    grpc = server.grpc.model_copy(update={"enabled": False})
    return config.model_copy(update={"server": server.model_copy(update={"grpc": grpc})})


@serve.ingress()
class BlockserveReplica:
    """One replica: blockserve's app, built and started by Ray when the replica starts."""

    app: FastAPI  # set by Ray's ingress wrapper from `__serve_build_asgi_app__`

    def __init__(self, config_path: Path | None = None) -> None:
        self.config = replica_config(load_config(config_path))

    def __serve_build_asgi_app__(self) -> FastAPI:
        # Ray starts routing requests to a replica once its app's startup is over and a first
        # health check passed: the startup waits for the models.
        return create_app(self.config, serve_after_loading=True)

    async def check_health(self) -> None:
        """Ray's health check: blockserve's readiness."""
        repository: ModelRepository = self.app.state.serving.repository
        reason = repository.not_ready_reason
        if reason is not None:
            raise ReplicaNotReady(reason)


def build_app(args: BlockserveArgs | dict[str, Any]) -> Application:
    """The Ray Serve application for `args`; a dict (`serve run`'s arguments) is validated as
    `BlockserveArgs`, unknown or bad values raising pydantic's `ValidationError`."""
    if not isinstance(args, BlockserveArgs):
        args = BlockserveArgs.model_validate(args)
    deployment = serve.deployment(
        name=args.name,
        autoscaling_config=args.autoscaling_config(),
        max_ongoing_requests=args.max_ongoing_requests,
        ray_actor_options={"num_cpus": args.num_cpus},
        health_check_period_s=args.health_check_period_s,
        health_check_timeout_s=args.health_check_timeout_s,
    )(BlockserveReplica)
    return deployment.bind(args.config_path)
