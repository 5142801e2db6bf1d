"""Other trainers point at rlpr unchanged: OpenRLHF's remote reward model and verl's custom reward
function, each tested against the request its client sends (read from that client's source)."""
import importlib.util
import os

import httpx
import pytest

from reward_contract.errors import ConfigError

ARITHMETIC_PROMPT = "6 + 17 + 1 + 3 = 23 + 1 + 3 ="


def openrlhf_post(server, reward, query, prompt, label, params=None):
    """What OpenRLHF 0.11 sends for each sample (openrlhf/utils/agent.py, _fetch_rewards_via_http):
    aiohttp `session.post(url, json={"query": [...], "prompts": [...], "labels": [...]})`, where the
    query is the prompt and response decoded with their special tokens."""
    body = {"query": [query], "prompts": [prompt], "labels": [label]}
    return httpx.post(f"{server.rest_url}/openrlhf/{reward}", json=body, params=params, timeout=30)


def test_openrlhf_remote_reward_model(embedded_server):
    answer = openrlhf_post(embedded_server, "arithmetic", ARITHMETIC_PROMPT + " 23 + 4<|endoftext|>",
                           ARITHMETIC_PROMPT, "23 + 1 + 3")  # a bare label fills arithmetic's `previous`
    assert answer.status_code == 200
    reply = answer.json()
    assert reply["rewards"] == [pytest.approx(1.0)] and reply["scores"] == reply["rewards"]  # what OpenRLHF reads
    # OpenRLHF logs extra_logs: each reward component under its name, and the failure flag.
    assert reply["extra_logs"] == {"abs_error": [0.0], "target": [27.0], "valid": [1.0], "value": [27.0],
                                   "rlpr_failed": [0.0]}
    off = openrlhf_post(embedded_server, "arithmetic", ARITHMETIC_PROMPT + " 20 + 4</s>", ARITHMETIC_PROMPT,
                        '{"previous": "23 + 1 + 3", "target": "27"}')  # a JSON label names the fields
    assert off.json()["rewards"][0] == pytest.approx(2 / (1 + 2.718281828459045 ** 0.3), rel=1e-6)


def test_openrlhf_options_failed_items_and_bad_labels(embedded_server):
    lenient = openrlhf_post(embedded_server, "arithmetic", ARITHMETIC_PROMPT + " 27", ARITHMETIC_PROMPT,
                            "23 + 1 + 3", params={"lenient": "true"})  # query parameters are reward options
    assert lenient.json()["rewards"] == [pytest.approx(1.0)]
    failed = openrlhf_post(embedded_server, "arithmetic", ARITHMETIC_PROMPT + " 27", ARITHMETIC_PROMPT,
                           "not a sum", params={"failed_reward": "-1"})
    assert failed.json()["rewards"] == [-1.0] and failed.json()["extra_logs"]["rlpr_failed"] == [1.0]
    no_field = openrlhf_post(embedded_server, "sentiment_vader", "great", "", "positive")
    assert no_field.status_code == 422 and "JSON objects of reference fields" in no_field.json()["error"]["message"]
    unknown = openrlhf_post(embedded_server, "nope", "x", "", None)
    assert unknown.status_code == 404
    numeric = openrlhf_post(embedded_server, "arithmetic", "27", "", 27, params={"lenient": "true"})
    assert numeric.json()["rewards"] == [pytest.approx(1.0)]  # a JSON number label fills `previous` too


def load_like_verl():
    """verl loads `custom_reward_function.path` as a file (verl.utils.import_utils.load_extern_object)."""
    import reward_contract.integrations.verl as installed

    spec = importlib.util.spec_from_file_location("custom_module", installed.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verl_naive_manager_scores_one_item(embedded_server):
    verl = load_like_verl()
    url = f"grpc://{embedded_server.grpc_target}"
    # verl's naive manager: compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)
    score = verl.compute_score(data_source="arithmetic", solution_str="23 + 4", ground_truth="23 + 1 + 3",
                               extra_info={"index": 0}, url=url)
    assert score == {"score": pytest.approx(1.0), "rlpr_failed": 0.0}


def test_verl_batch_manager_scores_a_batch_in_one_call_per_reward(embedded_server):
    verl = load_like_verl()
    url = f"grpc://{embedded_server.grpc_target}"
    # verl's batch manager (verl/workers/reward_manager/batch.py) calls with plural keyword lists.
    scores = verl.compute_score(data_sources=["arithmetic", "sentiment_vader", "arithmetic"],
                                solution_strs=["23 + 4", "a wonderful film", "oops"],
                                ground_truths=["23 + 1 + 3", None, "23 + 1 + 3"],
                                extra_infos=[{}, {}, {}], url=url)
    assert scores[0]["score"] == pytest.approx(1.0) and scores[1]["score"] > 0.5
    assert scores[2] == {"score": 0.0, "rlpr_failed": 0.0}  # an invalid sum scores 0; it did not fail
    failed = verl.compute_score(data_sources=["arithmetic"], solution_strs=["27"], ground_truths=["1 + x"],
                                extra_infos=[{}], url=url, failed_score=-0.5)
    assert failed == [{"score": -0.5, "rlpr_failed": 1.0}]
    with pytest.raises(ConfigError, match="unknown reward_kwargs"):
        verl.compute_score(data_source="arithmetic", solution_str="1", ground_truth="1 + 0", urll=url)


def test_verl_without_a_url_scores_in_process():
    verl = load_like_verl()
    assert verl.compute_score(data_source="x", solution_str="27", ground_truth="23 + 4", reward="arithmetic",
                              options={"lenient": True})["score"] == pytest.approx(1.0)


@pytest.mark.skipif(not os.environ.get("LUDII_JAR"), reason="LUDII_JAR is not set: Ludii labels need the engine")
def test_openrlhf_fill_in_the_middle_labels_for_ludii(embedded_server):
    from tests.ludii_games import game_named

    code = game_named("Tic-Tac-Toe")
    start = code.index("(rules")
    prefix, middle, suffix = code[:start], code[start:-1], code[-1:]
    label = '{"prefix": %s, "suffix": %s}' % tuple(__import__("json").dumps(s) for s in (prefix, suffix))
    answer = openrlhf_post(embedded_server, "ludii", "### MID: " + middle, "### MID: ", label)
    assert answer.status_code == 200 and answer.json()["rewards"][0] > 0.3


def test_verl_async_compute_score_overlaps_under_gather_and_matches_the_sync_one(embedded_server):
    """verl's naive/rate_limited managers await compute_score per sample under asyncio.gather."""
    import asyncio
    import inspect
    import subprocess
    import sys

    verl = load_like_verl()
    url = f"grpc://{embedded_server.grpc_target}"
    assert inspect.iscoroutinefunction(verl.compute_score_async)
    samples = [("arithmetic", f"23 + {k}", "23 + 1 + 3") for k in range(8)]

    async def gather():
        return await asyncio.gather(*(verl.compute_score_async(data_source=d, solution_str=s, ground_truth=g,
                                                               extra_info={}, url=url) for d, s, g in samples))

    assert asyncio.run(gather()) == [verl.compute_score(d, s, g, {}, url=url) for d, s, g in samples]
    printed = subprocess.run([sys.executable, "-m", "reward_contract.integrations.verl"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert os.path.isfile(printed) and printed.endswith(os.path.join("reward_contract", "integrations", "verl.py"))


def test_trl_adapters_have_distinct_names_and_the_async_one_is_gathered_by_trl(embedded_server):
    import asyncio

    from trl.trainer.utils import get_callable_name, is_async_callable

    from reward_contract.integrations.trl import AsyncRlprReward, RlprReward

    url = f"grpc://{embedded_server.grpc_target}"
    plain = RlprReward("arithmetic", url=url)
    lenient = AsyncRlprReward("arithmetic", url=url, options={"lenient": True}, name="arithmetic_lenient")
    try:
        assert [get_callable_name(f) for f in (plain, lenient)] == ["rlpr_arithmetic", "arithmetic_lenient"]
        assert not is_async_callable(plain) and is_async_callable(lenient)
        batch = dict(prompts=["p", "p"], completions=["23 + 4", "27"], previous=["23 + 1 + 3", "23 + 1 + 3"])
        assert plain(**batch) == [pytest.approx(1.0), 0.0]  # strict: "27" skips a step, an invalid sum
        assert asyncio.run(lenient(**batch)) == [pytest.approx(1.0), pytest.approx(1.0)]
    finally:
        plain.close()
        lenient.close()
