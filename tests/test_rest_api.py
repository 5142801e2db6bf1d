"""The REST front over a real socket (uvicorn), including every bad input the issue names."""
import json

import httpx
import pytest

from tests.conftest import inprocess_service

ONE = {"reward": "arithmetic", "item": {"id": "1", "completion": "23 + 4", "reference": {"previous": "23 + 1 + 3"}}}


def post(server, path, body=None, raw=None, headers=None):
    headers = {"content-type": "application/json", **(headers or {})}
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(server.rest_url + path, content=content, headers=headers, timeout=30)


def test_score_one_and_batch(embedded_server):
    one = post(embedded_server, "/v1/score", ONE)
    assert one.status_code == 200 and one.json()["reward"] == pytest.approx(1.0)
    batch = post(embedded_server, "/v1/score:batch", {"reward": "sentiment_vader", "items": [
        {"id": "a", "completion": "I love this"}, {"id": "b", "completion": "I hate this"}]})
    assert batch.status_code == 200
    a, b = batch.json()["results"]
    assert a["status"] == "ok" and a["reward"] > 0 > b["reward"]


def test_rewards_health_metrics_docs(embedded_server):
    base = embedded_server.rest_url
    names = {k["name"] for k in httpx.get(base + "/v1/rewards").json()}
    assert {"arithmetic", "sentiment_vader", "sentiment_classifier", "ludii"} <= names
    assert httpx.get(base + "/healthz").json() == {"status": "ready", "redis": "not used", "workers": "in-process"}
    assert httpx.get(base + "/livez").json() == {"status": "alive"}
    post(embedded_server, "/v1/score", ONE)
    metrics = httpx.get(base + "/metrics").text
    assert 'rlpr_items_total{cached="false",reward="arithmetic",status="ok"} 1.0' in metrics
    spec = httpx.get(base + "/openapi.json").json()
    assert {"/v1/score", "/v1/score:batch", "/v1/rewards", "/healthz", "/metrics"} <= set(spec["paths"])
    docs = httpx.get(base + "/docs")
    assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()  # served from this process: works without internet access
    assert httpx.get(base + "/docs/assets/swagger-ui-bundle.js").status_code == 200


BAD_INPUTS = {
    "invalid utf-8": (None, b'{"reward":"arithmetic","item":{"id":"1","completion":"\xff\xfe"}}', 400),
    "1 MB completion": ({"reward": "sentiment_vader", "item": {"id": "1", "completion": "x" * (1 << 20)}}, None, 413),
    "unknown reward": ({"reward": "sentimant", "item": {"id": "1", "completion": "x"}}, None, 404),
    "missing field": ({"reward": "arithmetic", "item": {"id": "1"}}, None, 422),
    "nan in reference": (None, b'{"reward":"arithmetic","item":{"id":"1","completion":"1",'
                               b'"reference":{"target":NaN}}}', 422),
    "empty batch": ({"reward": "arithmetic", "items": []}, None, 422),
    "malformed json": (None, b'{"reward": "arithmetic", "item": {', 422),
    "lone surrogate": (None, b'{"reward":"arithmetic","item":{"id":"1","completion":"\\ud800"}}', 422),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_gets_a_clear_4xx_and_server_keeps_serving(embedded_server, name):
    body, raw, status = BAD_INPUTS[name]
    path = "/v1/score:batch" if body and "items" in body else "/v1/score"
    response = post(embedded_server, path, body, raw)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED") and error["message"]
    assert post(embedded_server, "/v1/score", ONE).status_code == 200


def test_body_size_limit(make_server):
    server = make_server(inprocess_service(), max_request_bytes=2048)
    response = post(server, "/v1/score", {"reward": "sentiment_vader", "item": {"id": "1", "completion": "x" * 5000}})
    assert response.status_code == 413
    chunked = httpx.post(server.rest_url + "/v1/score", content=iter([b"{" + b" " * 3000, b"}"]),
                         headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert post(server, "/v1/score", ONE).status_code == 200


def test_token_auth_on_every_endpoint_but_health(make_server):
    server = make_server(inprocess_service(), token="s3cret")
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
        assert post(server, "/v1/score", ONE, headers=headers).status_code == 401
        assert post(server, "/v1/score:batch", {"reward": "arithmetic", "items": []}, headers=headers).status_code == 401
        for path in ("/v1/rewards", "/metrics", "/openapi.json", "/docs"):
            assert httpx.get(server.rest_url + path, headers=headers).status_code == 401
    good = {"authorization": "Bearer s3cret"}
    assert post(server, "/v1/score", ONE, headers=good).status_code == 200
    assert httpx.get(server.rest_url + "/v1/rewards", headers=good).status_code == 200
    assert "/v1/score" in httpx.get(server.rest_url + "/openapi.json", headers=good).json()["paths"]
    assert httpx.get(server.rest_url + "/healthz").status_code == 200


def test_readme_curl_example_works(embedded_server):
    import re
    import shlex
    import subprocess

    readme = open("README.md").read()
    command = re.search(r"```bash\n(curl [^`]*?/v1/score .*?)\n```", readme, re.S).group(1)
    command = command.replace("\\\n", " ").replace("127.0.0.1:8000", f"127.0.0.1:{embedded_server.rest_port}")
    output = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(output)["status"] == "ok"


def test_keep_alive_responses_are_not_held_back_by_nagle(embedded_server):
    """With Nagle on, each response on a kept-alive connection waits ~40 ms for a delayed ACK."""
    import statistics
    import time

    with httpx.Client(base_url=embedded_server.rest_url) as http:
        times = []
        for _ in range(21):
            started = time.perf_counter()
            assert http.get("/livez").status_code == 200
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.02, times


def test_a_new_users_wrong_body_gets_a_message_that_says_what_to_send(embedded_server):
    score, batch = embedded_server.rest_url + "/v1/score", embedded_server.rest_url + "/v1/score:batch"

    def message(url, **kwargs):
        response = httpx.post(url, **kwargs)
        assert response.status_code == 422, response.text
        return response.json()["error"]["message"]

    example = '{"reward": "sentiment_vader", "item": {"id": "1", "completion": "a fine film"}}'
    assert message(score, content=b"reward: arithmetic", headers={"content-type": "application/json"}).startswith(
        "the body is not valid JSON; send one JSON object, e.g. " + example)
    assert message(score, content=b'{"reward": "arithmetic"}').startswith(
        "the body must be JSON sent with 'Content-Type: application/json' (got no content type)")
    assert "(got 'text/plain')" in message(score, content=b"{}", headers={"content-type": "text/plain"})
    assert message(score, json=[1, 2]).startswith("the body must be a JSON object, e.g. ")
    items = [{"id": "1", "completion": "good"}]
    assert message(score, json={"reward": "sentiment_vader", "items": items}).startswith(
        "/v1/score takes one `item`; send a list of `items` to /v1/score:batch")
    assert message(batch, json={"reward": "sentiment_vader", "item": items[0]}).startswith(
        "/v1/score:batch takes a list of `items`; send one `item` to /v1/score")
    # The example in the messages is a body that scores.
    scored = httpx.post(score, json=json.loads(example))
    assert scored.status_code == 200 and scored.json()["status"] == "ok"


def test_the_readmes_python_batch_example_runs_against_a_server(embedded_server, capsys):
    import re

    readme = open("README.md").read()
    code = re.search(r"```python\n(from reward_contract.client import make_client\n.*?)```", readme, re.S).group(1)
    code = code.replace("127.0.0.1:50051", embedded_server.grpc_target).replace(
        "127.0.0.1:8000", f"127.0.0.1:{embedded_server.rest_port}")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "a ok 1.0" and printed[1].startswith("b ok 0.950")  # 28 is 1 off 27: 2/(1+e^0.1)
    assert "'status': 'ok'" in printed[2]
