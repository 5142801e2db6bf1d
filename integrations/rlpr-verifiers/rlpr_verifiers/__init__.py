"""rlpr's tasks as a verifiers taskset: prompts from rlpr's own task generators, rewards scored by a
running rlpr reward service (`rlpr up` or `docker compose up`).

verifiers 0.4 has one API, the Taskset API (`verifiers.v1`): a taskset package exports a `Taskset`
and its `Task`, and verifiers builds the environment around them. So:

    import rlpr_verifiers
    env = rlpr_verifiers.load_environment("arithmetic", url="grpc://127.0.0.1:50051")

or from verifiers' own command line, `--env.taskset.id rlpr_verifiers --env.taskset.rlpr-task ludii`.

The task's `@vf.reward` awaits the service on verifiers' event loop through rlpr's async gRPC client
(no thread is held while the service works), with the task's scoring timeout as the request's
deadline. An item the service could not score raises `TaskError`, which verifiers records as a
trace error with no reward: a failure is never turned into a reward of 0.
"""
from __future__ import annotations

import asyncio
import random
from typing import Literal

import verifiers.v1 as vf
from pydantic import Field

from reward_contract.client import AsyncGrpcRewardClient
from reward_contract.settings import auth_token, grpc_target
from reward_contract.types import RewardItem

__all__ = ["RlprTaskData", "RlprTaskConfig", "RlprTask", "RlprTasksetConfig", "RlprTaskset", "load_environment"]

DEFAULT_SCORING_TIMEOUT_S = {"arithmetic": 60.0, "sentiment": 60.0, "ludii": 1800.0}


class RlprTaskData(vf.TaskData):
    reference: dict[str, str] = Field(default_factory=dict)
    """What the reward needs beside the completion (arithmetic's `previous`, Ludii's `prefix`/`suffix`)."""
    reward: str = "arithmetic"
    """The rlpr reward that scores this task."""
    options: dict[str, str] = Field(default_factory=dict)
    """That reward's options."""


class RlprTaskConfig(vf.TaskConfig):
    url: str = "grpc://127.0.0.1:50051"
    """The rlpr reward service, grpc://HOST:PORT."""
    token: str = ""
    """Its bearer token; empty reads $RLPR_AUTH_TOKEN."""


class RlprTask(vf.Task[RlprTaskData, vf.State, RlprTaskConfig]):
    @vf.reward
    async def rlpr(self, task: RlprTaskData, trace) -> float:
        """The rlpr reward of the trace's reply, scored by the service."""
        deadline_s = task.timeout.scoring or DEFAULT_SCORING_TIMEOUT_S.get(task.name or "", 120.0)
        item = RewardItem(str(task.idx if task.idx is not None else 0), task.prompt_text, trace.last_reply,
                          task.reference)
        [result] = await _client(self.config.url, self.config.token).score(task.reward, [item], task.options,
                                                                             deadline_s)
        if not result.ok:
            raise vf.TaskError(f"rlpr reward {task.reward!r}: {result.status.value}: {result.error}")
        trace.info["rlpr_components"] = dict(result.components)
        return result.reward


class RlprTasksetConfig(vf.TasksetConfig):
    task: RlprTaskConfig = RlprTaskConfig()
    rlpr_task: Literal["arithmetic", "sentiment", "ludii"] = "arithmetic"
    """Which rlpr task: arithmetic steps, IMDB-style sentiment prefixes, or Ludii fill-in-the-middle."""
    num_tasks: int = Field(100, gt=0)
    """How many prompts to draw."""
    seed: int = 0
    """Seed of the prompt draw."""
    ludii_games: str = ""
    """Ludii only: a folder with games_{train,test}.json (empty: rlpr's cached copy of the paper's split)."""


class RlprTaskset(vf.Taskset[RlprTask, RlprTasksetConfig]):
    def load(self):
        task = _rlpr_task(self.config)
        timeout = vf.TaskTimeout(scoring=DEFAULT_SCORING_TIMEOUT_S[self.config.rlpr_task])
        for prompt in task.prompts(self.config.num_tasks, random.Random(self.config.seed)):
            yield RlprTask(RlprTaskData(name=self.config.rlpr_task, prompt=prompt.text, reference=dict(prompt.reference),
                                        reward=task.reward, options=dict(task.reward_options), timeout=timeout),
                           self.config.task)


def _rlpr_task(config: RlprTasksetConfig):
    """rlpr's own task object for its prompts (no model is loaded)."""
    if config.rlpr_task == "arithmetic":
        from trainer.tasks.arithmetic_task import ArithmeticTask

        return ArithmeticTask(seed=config.seed)
    if config.rlpr_task == "sentiment":
        from trainer.tasks.sentiment import SentimentTask

        return SentimentTask(seed=config.seed)
    from trainer.tasks.ludii_task import LudiiTask

    return LudiiTask("", config.ludii_games, seed=config.seed)


_clients: dict[tuple, AsyncGrpcRewardClient] = {}


def _client(url: str, token: str) -> AsyncGrpcRewardClient:
    """One client per event loop and service: a grpc.aio channel belongs to the loop it was made on."""
    key = (id(asyncio.get_running_loop()), url, token)
    if key not in _clients:
        _clients[key] = AsyncGrpcRewardClient(grpc_target(url, "url"), auth_token(token))
    return _clients[key]


def load_environment(name: str = "arithmetic", url: str = "grpc://127.0.0.1:50051", num_tasks: int = 100,
                     seed: int = 0, token: str = "", ludii_games: str = "") -> vf.Env:
    """verifiers' environment (its default single-agent env) around this taskset."""
    config = vf.SingleAgentEnvConfig(taskset=RlprTasksetConfig(
        id="rlpr_verifiers", rlpr_task=name, num_tasks=num_tasks, seed=seed,
                                                    ludii_games=ludii_games,
                                                    task=RlprTaskConfig(url=url, token=token)))
    return vf.load_environment(config)
