"""Property-based fuzzing of the REST API: no input may cause a 5xx, and the server survives."""
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
any_json = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)
reward_name = st.sampled_from(["arithmetic", "sentiment_vader", "ludii_nope", "", "sentiment_classifier"])
reference = st.dictionaries(st.sampled_from(["previous", "target", "x"]), st.text(max_size=12) | st.integers()
                            | st.floats(), max_size=3)
item = st.fixed_dictionaries({"id": st.text(max_size=5), "completion": st.text(max_size=30)},
                             optional={"prompt": st.text(max_size=10), "reference": reference | any_json})
options = st.dictionaries(st.sampled_from(["lenient", "scale", "text", "model", "zzz"]),
                          st.text(max_size=6) | st.integers(), max_size=2)
shaped = st.one_of(
    st.fixed_dictionaries({"reward": reward_name, "item": item}, optional={"options": options}),
    st.fixed_dictionaries({"reward": reward_name, "items": st.lists(item, max_size=4)},
                          optional={"options": options, "deadline_ms": st.integers(-5, 10**12)}),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=shaped | any_json, path=st.sampled_from(["/v1/score", "/v1/score:batch"]))
def test_no_input_causes_a_server_error(embedded_server, body, path):
    response = httpx.post(embedded_server.rest_url + path, content=json.dumps(body, allow_nan=True),
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code < 500, (response.status_code, response.text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_cause_a_server_error(embedded_server, raw):
    response = httpx.post(embedded_server.rest_url + "/v1/score", content=raw,
                          headers={"content-type": "application/json"}, timeout=30)
    assert 400 <= response.status_code < 500
    assert httpx.get(embedded_server.rest_url + "/healthz").status_code == 200
