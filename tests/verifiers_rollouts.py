"""Run by the verifiers venv (tests/test_verifiers_env.py): build rlpr_verifiers' environment with the real
verifiers package, score hand-written rollouts through its tasks' rewards (no model), print JSON."""
import asyncio
import json
import sys

import verifiers.v1 as vf

import rlpr_verifiers

REPLIES = {"arithmetic": ["{answer}", "{previous}", "7 + oops"],
           "sentiment": [" a wonderful, moving film", " dull and far too long", ""],
           "ludii": ["", ")(broken"]}


async def main(url: str, task_names: list[str], ludii_games: str) -> None:
    rows = []
    for name in task_names:
        env = rlpr_verifiers.load_environment(name, url=url, num_tasks=len(REPLIES[name]), seed=3,
                                              ludii_games=ludii_games)
        assert isinstance(env, vf.Env)
        for task, template in zip(env.taskset, REPLIES[name]):
            reply = template.format(**task.data.reference)
            trace = vf.Trace(task=vf.TraceTask(type=type(task).__name__, data=task.data),
                             agent=vf.AgentInfo(config=vf.AgentConfig()))
            trace.root_reply = reply
            await task.score(trace)
            rewards = {key: (r.score if r is not None else None) for key, r in trace.rewards.items()}
            rows.append({"task": name, "reward_name": task.data.reward, "options": task.data.options,
                         "prompt": task.data.prompt_text, "reference": task.data.reference, "reply": trace.last_reply,
                         "rewards": rewards, "errors": [e.model_dump(mode="json") for e in trace.errors],
                         "scoring_timeout_s": task.data.timeout.scoring})
    print(json.dumps(rows))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2].split(","), sys.argv[3] if len(sys.argv) > 3 else ""))
