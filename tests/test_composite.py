"""Composite rewards: several weighted rewards in one request, in process, on both fronts, through
real queues and workers, from the CLI and in the trainers."""
import time

import httpx
import pytest
from redis import Redis

from reward_contract.client import GrpcRewardClient
from reward_contract.errors import ConfigError, InvalidArgument
from reward_contract.integrations.trl import RlprReward, rlpr_reward_funcs
from reward_contract.settings import reward_choice
from reward_contract.types import ItemStatus, RewardItem, RewardTerm
from reward_service.core.service import RewardService
from tests.system import train
from tests.test_queue_backend import ended_job_counts

ITEMS = [RewardItem("a", "", "23 + 4", {"previous": "23 + 1 + 3"}),
         RewardItem("b", "", "great great great 27", {"previous": "23 + 4"}),
         RewardItem("c", "", "27", {"previous": "23 + 4"})]
TERMS = [RewardTerm("arithmetic", 1.0, {"lenient": True}), RewardTerm("sentiment_vader", 0.5),
         RewardTerm("repetition", 0.25, {"n": 1})]


def singles(service):
    return {t.reward: service.score_blocking(t.reward, ITEMS, t.options) for t in TERMS}


def test_the_total_is_the_weighted_sum_and_each_term_keeps_its_reward_and_components():
    service = RewardService.embedded()
    alone = singles(service)
    combined = service.score_blocking(TERMS, ITEMS)
    for index, result in enumerate(combined):
        assert result.ok and result.id == ITEMS[index].id
        parts = {t.reward: alone[t.reward][index] for t in TERMS}
        assert result.rewards == {name: part.reward for name, part in parts.items()}
        assert result.reward == pytest.approx(sum(t.weight * parts[t.reward].reward for t in TERMS), abs=1e-12)
        assert result.components["sentiment_vader/compound"] == parts["sentiment_vader"].components["compound"]
        assert result.components["arithmetic/valid"] == parts["arithmetic"].components["valid"]
    # the terms pull apart: b is the most positive and the most repetitive
    assert combined[1].rewards["sentiment_vader"] > 0.5 and combined[1].rewards["repetition"] == pytest.approx(-0.5)


def test_a_failing_term_fails_only_its_items_and_the_error_names_it():
    items = [RewardItem("bad-sum", "", "23 + 4", {"previous": "23 + oops"}), RewardItem("boom", "", "boom",
             {"previous": "23 + 4"}), RewardItem("fine", "", "27", {"previous": "23 + 4"})]
    results = RewardService.embedded().score_blocking([RewardTerm("arithmetic"), RewardTerm("test_explosive", 2.0)],
                                                      items)
    bad, boom, fine = results
    assert bad.status is ItemStatus.INVALID and bad.error.startswith("reward 'arithmetic': ") and bad.reward == 0
    assert bad.rewards == {"test_explosive": 1.0}  # the term that scored is still reported
    assert boom.status is ItemStatus.ERROR and boom.error.startswith("reward 'test_explosive': RuntimeError")
    assert fine.ok and fine.reward == pytest.approx(1.0 + 2.0 * 1.0)


@pytest.mark.parametrize("terms, options, words", [
    ([RewardTerm("arithmetic"), RewardTerm("arithmetic", 2)], None, "named twice"),
    ([RewardTerm("arithmetic", float("nan"))], None, "finite"),
    ([RewardTerm("arithmetic")], {"lenient": "true"}, "options in its terms"),
    ([RewardTerm("arithmetic"), RewardTerm("nope")], None, "unknown reward 'nope'"),
    ([RewardTerm("arithmetic", 1, {"colour": "red"})], None, "colour"),
])
def test_bad_terms_are_refused_naming_the_fault(terms, options, words):
    with pytest.raises(InvalidArgument, match=words):
        RewardService.embedded().score_blocking(terms, ITEMS, options)


def test_both_fronts_score_terms_as_in_process(embedded_server):
    expected = RewardService.embedded().score_blocking(TERMS, ITEMS)
    client = GrpcRewardClient(embedded_server.grpc_target)
    over_grpc = client.score(TERMS, ITEMS)
    client.close()
    assert [(r.id, r.reward, dict(r.rewards), dict(r.components)) for r in over_grpc] == \
           [(r.id, r.reward, dict(r.rewards), dict(r.components)) for r in expected]
    body = {"terms": [{"reward": t.reward, "weight": t.weight, "options": dict(t.options)} for t in TERMS],
            "items": [{"id": i.id, "completion": i.completion, "reference": dict(i.reference)} for i in ITEMS]}
    with httpx.Client(base_url=embedded_server.rest_url, timeout=30) as http:
        answer = http.post("/v1/score:batch", json=body)
        assert answer.status_code == 200, answer.text
        assert [(r["reward"], r["rewards"]) for r in answer.json()["results"]] == \
               [(r.reward, dict(r.rewards)) for r in expected]
        both = http.post("/v1/score", json={"reward": "arithmetic", "terms": body["terms"], "item": body["items"][0]})
        assert both.status_code == 422 and "either `reward` or `terms`" in both.json()["error"]["message"]
        neither = http.post("/v1/score", json={"item": body["items"][0]})
        assert neither.status_code == 422 and "name a `reward`" in neither.json()["error"]["message"]


def test_a_grpc_term_without_a_weight_weighs_one(embedded_server):
    import grpc

    from reward_contract.wire.v1 import reward_pb2 as pb
    from reward_contract.wire.v1 import reward_pb2_grpc as pb_grpc

    with grpc.insecure_channel(embedded_server.grpc_target) as channel:
        response = pb_grpc.RewardServiceStub(channel).Score(pb.ScoreRequest(
            terms=[pb.RewardTerm(reward="arithmetic"), pb.RewardTerm(reward="repetition", weight=0.0)],
            items=[pb.Item(id="1", completion="23 + 4", reference={"previous": "23 + 1 + 3"})]), timeout=30)
    [result] = response.results
    assert result.reward == pytest.approx(1.0) and dict(result.rewards) == {"arithmetic": pytest.approx(1.0),
                                                                           "repetition": 0.0}


def test_terms_run_on_their_own_queues_in_parallel_and_are_cached_on_their_own(workers, queue_service, redis_url):
    workers.start("test_slow")
    workers.start("test_slow_too")
    terms = [RewardTerm("test_slow"), RewardTerm("test_slow_too", 10.0)]
    item = [RewardItem("1", "", "abc", {"sleep_s": "1.5"})]
    started = time.monotonic()
    [result] = queue_service.score_blocking(terms, item)
    elapsed = time.monotonic() - started
    assert result.ok and result.reward == pytest.approx(3 + 10 * 3) and not result.cached
    # one job on each queue's worker, at the same time: one after the other would take >= 3 s
    assert sorted(ended_job_counts(Redis.from_url(redis_url), 2)) == [(1, 0), (1, 0)]
    assert elapsed < 2.7, elapsed
    [alone] = queue_service.score_blocking("test_slow_too", item)  # cached by the composite's term
    assert alone.cached and alone.reward == 3
    [again] = queue_service.score_blocking(terms, item)
    assert again.cached and again.reward == result.reward


def test_a_term_without_a_worker_refuses_the_request_naming_its_queue(workers, queue_service):
    from reward_contract.errors import NoWorker

    workers.start("arithmetic")
    with pytest.raises(NoWorker, match="sentiment_vader"):
        queue_service.score_blocking([RewardTerm("arithmetic"), RewardTerm("sentiment_vader")], ITEMS)


def test_reward_flags_parse_into_terms_with_their_options():
    assert reward_choice(["arithmetic"], {"lenient": "true"}) == ("arithmetic", {"lenient": "true"})
    terms, options = reward_choice(["arithmetic=1", "repetition=0.1"], {"repetition.n": "2", "arithmetic.lenient": "1"})
    assert options == {} and terms == (RewardTerm("arithmetic", 1.0, {"lenient": "1"}),
                                       RewardTerm("repetition", 0.1, {"n": "2"}))
    assert reward_choice(["arithmetic="], {})[0] == (RewardTerm("arithmetic", 1.0, {}),)
    with pytest.raises(ConfigError, match="--option repetition.n=2"):  # the first term names the form
        reward_choice(["repetition=1", "arithmetic=1"], {"n": "2"})
    with pytest.raises(ConfigError, match="weight must be a number"):
        reward_choice(["arithmetic=heavy"], {})
    with pytest.raises(ConfigError, match="twice"):
        reward_choice(["arithmetic=1", "arithmetic=2"], {})


def test_the_trl_adapter_of_a_composite_logs_each_term_and_maps_onto_reward_weights():
    logged = {}
    adapter = RlprReward(TERMS)
    rewards = adapter(["", "", ""], [i.completion for i in ITEMS], previous=[i.reference["previous"] for i in ITEMS],
                      log_metric=logged.__setitem__)
    expected = RewardService.embedded().score_blocking(TERMS, ITEMS)
    assert rewards == [r.reward for r in expected]
    assert adapter.__name__ == "rlpr_arithmetic+sentiment_vader+repetition"
    assert logged["reward/sentiment_vader"] == pytest.approx(sum(r.rewards["sentiment_vader"] for r in expected) / 3)
    funcs, weights = rlpr_reward_funcs(TERMS)
    assert weights == [1.0, 0.5, 0.25] and [f.__name__ for f in funcs] == [
        "rlpr_arithmetic", "rlpr_sentiment_vader", "rlpr_repetition"]
    assert funcs[0].options == {"lenient": True}


def test_ppo_trains_on_a_composite_and_logs_each_term(tmp_path):
    rows = train(tmp_path / "run", "--steps", "2", "--reward", "arithmetic=1", "--reward", "repetition=0.5",
                 "--reward-option", "repetition.n=1")
    for row in rows:
        assert {"reward/arithmetic", "reward/repetition"} <= set(row)
        if row["reward/failed_items"] == 0:
            assert row["reward/mean"] == pytest.approx(row["reward/arithmetic"] + 0.5 * row["reward/repetition"])
    assert "reward_components/arithmetic/valid" in rows[-1]


def test_train_refuses_a_bare_option_beside_several_rewards(tmp_path):
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rlpr", "train", "--reward", "arithmetic=1", "--reward",
                           "repetition=1", "--reward-option", "n=2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="300"))
    assert done.returncode != 0 and "name the reward an option is for, e.g. --reward-option arithmetic.n=2" in done.stderr
