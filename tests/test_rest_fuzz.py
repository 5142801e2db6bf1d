"""Property-based fuzzing of every REST endpoint and field: no input may cause a 5xx, and the server survives.

Seeded and bounded, so the run is the same every time and costs a fixed budget.
"""
import json
import sys

import httpx
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

SEED = 20261125
LIMITS = [0, -0.0, 1e308, -1e308, 5e-324, sys.float_info.max, float("inf"), float("-inf"), float("nan"), 2**31,
          2**32, 2**53 + 1, 2**63, 2**64, -2**63 - 1, 10**30]
number = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.floats(), st.sampled_from(LIMITS))
scalar = st.one_of(st.none(), st.booleans(), number, st.text(max_size=12))
any_json = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)
OPTION_NAMES = ["lenient", "scale", "text", "model", "output", "positive_label", "max_length", "playouts",
                "max_turns", "unplayable_reward", "time_limit_s", "seed", "zzz"]
reward_name = st.sampled_from(["arithmetic", "sentiment_vader", "ludii", "sentiment_classifier", "nope", ""]) | scalar
reference = st.dictionaries(st.sampled_from(["previous", "target", "prefix", "suffix", "x"]), scalar, max_size=3)
item = st.fixed_dictionaries({"id": st.text(max_size=4) | scalar, "completion": st.text(max_size=20) | scalar},
                             optional={"prompt": st.text(max_size=8) | scalar, "reference": reference | any_json})
options = st.dictionaries(st.sampled_from(OPTION_NAMES), scalar, max_size=3)
score_body = st.fixed_dictionaries(
    {"reward": reward_name},
    optional={"item": item | any_json, "items": st.lists(item, max_size=4) | any_json, "options": options | any_json,
              "deadline_ms": number | scalar, "no_cache": scalar})
openrlhf_body = st.fixed_dictionaries(
    {"query": st.lists(st.text(max_size=20), max_size=3) | any_json},
    optional={"prompts": st.lists(st.text(max_size=8), max_size=3) | any_json,
              "labels": st.lists(st.text(max_size=8) | reference | scalar, max_size=3) | any_json})
PATHS = ["/v1/score", "/v1/score:batch", "/openrlhf/arithmetic", "/openrlhf/ludii", "/openrlhf/nope"]


def post(server, path, body, params=None):
    content = body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()
    return httpx.post(server.rest_url + path, content=content, params=params,
                      headers={"content-type": "application/json"}, timeout=30)


@seed(SEED)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=score_body | openrlhf_body | any_json, path=st.sampled_from(PATHS),
       query=st.dictionaries(st.sampled_from(OPTION_NAMES + ["failed_reward", "strip"]), st.text(max_size=6),
                             max_size=2))
def test_no_input_causes_a_server_error(embedded_server, body, path, query):
    response = post(embedded_server, path, body, params=query)  # query parameters: reward options
    assert response.status_code < 500, (response.status_code, response.text)


@seed(SEED)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), digits=st.integers(1, 6000))
def test_random_bytes_and_huge_numbers_never_cause_a_server_error(embedded_server, raw, digits):
    assert 400 <= post(embedded_server, "/v1/score", raw).status_code < 500
    huge = b'{"reward":"arithmetic","item":{"id":"1","completion":"1"},"deadline_ms":' + b"9" * digits + b"}"
    assert post(embedded_server, "/v1/score", huge).status_code < 500
    assert httpx.get(embedded_server.rest_url + "/healthz").status_code == 200


@seed(SEED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reward=st.text(max_size=12))
def test_readiness_query_never_causes_a_server_error(embedded_server, reward):
    response = httpx.get(embedded_server.rest_url + "/readyz", params={"reward": reward}, timeout=30)
    assert response.status_code < 500 or response.status_code == 503
