"""The serving state one process shares across protocols, built by the app lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from service.budget import ByteBudget
from service.config import RepositoryConfig
from service.management import ModelManager
from service.metrics import Metrics
from service.offload import Offloader
from service.repository import ModelRepository


@dataclass(frozen=True)
class Serving:
    config: RepositoryConfig
    repository: ModelRepository
    metrics: Metrics
    decoder: Offloader  # decoding and parsing off the event loop, bounded
    bodies: ByteBudget  # request body bytes held at once
    manager: ModelManager  # run-time loads and unloads, persisted
