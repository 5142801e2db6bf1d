"""deploy/kubernetes: every overlay renders with `kubectl kustomize`, validates against the Kubernetes
API schema of a pinned version, carries the fields KEDA documents for its scalers, and agrees with
docker-compose.yml on commands, ports, probes, environment, grace periods and lock-down, so the two
cannot drift."""
from __future__ import annotations

import copy
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

KUBERNETES_VERSION = "1.32.0"  # the schema the manifests are checked against (kubectl 1.32 here)
ROOT = pathlib.Path(REPO) / "deploy" / "kubernetes"
OVERLAYS = ["base", "overlays/autoscaled", "overlays/trainer"]
# compose service -> Deployment of the same role
TWINS = {"redis": "redis", "reward-api": "reward-api", "cpu-worker": "cpu-worker", "ludii-worker": "ludii-worker"}
WORKERS = ("cpu-worker", "ludii-worker")

# KEDA's documented trigger metadata (keda.sh/docs/2.x/scalers/redis-lists, .../metrics-api) and
# ScaledObject spec (keda.sh/docs/2.x/reference/scaledobject-spec).
REDIS_LIST_FIELDS = {"address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv", "usernameFromEnv",
                     "passwordFromEnv", "listName", "listLength", "activationListLength", "databaseIndex",
                     "enableTLS", "unsafeSsl"}
METRICS_API_FIELDS = {"url", "format", "valueLocation", "targetValue", "activationTargetValue", "authMode",
                      "method", "keyParamName", "unsafeSsl"}
SCALED_OBJECT_FIELDS = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
                        "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}

pytestmark = pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl is not installed (it renders kustomize)")


def render(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / overlay)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: render(overlay) for overlay in OVERLAYS}


def by_kind(docs, kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def compose() -> dict:
    return yaml.safe_load((pathlib.Path(REPO) / "docker-compose.yml").read_text())["services"]


def as_run(value):
    """A compose value as it runs with nothing set in the environment: ${NAME:-default} is default."""
    if isinstance(value, list):
        return [as_run(v) for v in value]
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value) if isinstance(value, str) else value


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_core_resource_validates_against_the_kubernetes_schema(rendered, overlay):
    import kubernetes_validate

    core = [d for d in rendered[overlay] if not d["apiVersion"].startswith("keda.sh/")]
    assert core
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)  # unknown fields are errors too
    assert {d["metadata"].get("namespace") for d in rendered[overlay] if d["kind"] != "Namespace"} == {"rlpr"}


def test_a_wrong_field_fails_validation(rendered):
    """The check above can fail: a misspelt field and a wrong type are both refused."""
    import kubernetes_validate

    api = copy.deepcopy(by_kind(rendered["base"], "Deployment")["reward-api"])
    container(api)["livenessProbes"] = container(api).pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(api, KUBERNETES_VERSION, strict=True)


def test_the_autoscaled_overlay_scales_each_worker_kind_on_its_queues_and_its_running_jobs(rendered):
    from rq import Queue

    docs = rendered["overlays/autoscaled"]
    deployments = by_kind(docs, "Deployment")
    scaled = by_kind(docs, "ScaledObject")
    assert set(scaled) == set(WORKERS)
    auth = by_kind(docs, "TriggerAuthentication")["rlpr-api-token"]["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "token", "name": "rlpr-auth", "key": "token"}]
    for name, so in scaled.items():
        spec = so["spec"]
        assert so["apiVersion"] == "keda.sh/v1alpha1" and set(spec) <= SCALED_OBJECT_FIELDS
        assert spec["scaleTargetRef"]["name"] == name and name in deployments
        # The API refuses work for a queue no live worker serves: a queue scaled to zero would stay there.
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"] and spec["cooldownPeriod"] >= 60
        command = container(deployments[name])["command"]
        queues = command[command.index("--queues") + 1].split(",")
        lists = [t for t in spec["triggers"] if t["type"] == "redis"]
        running = [t for t in spec["triggers"] if t["type"] == "metrics-api"]
        # one redis trigger per queue the worker serves, on the list RQ keeps that queue in
        assert sorted(t["metadata"]["listName"] for t in lists) == sorted(Queue.redis_queue_namespace_prefix + q for q in queues)
        for trigger in lists:
            meta = trigger["metadata"]
            assert set(meta) <= REDIS_LIST_FIELDS and {"listName", "listLength"} <= set(meta)
            assert all(isinstance(v, str) for v in meta.values())  # KEDA's metadata is a map of strings
            assert meta["address"] == "redis.rlpr.svc.cluster.local:6379" and int(meta["listLength"]) >= 1
        [api] = running
        meta = api["metadata"]
        assert set(meta) <= METRICS_API_FIELDS and all(isinstance(v, str) for v in meta.values())
        assert meta["url"] == f"http://reward-api.rlpr.svc.cluster.local:8000/queues?names={','.join(queues)}"
        assert meta["valueLocation"] == "running" and meta["targetValue"] == "1" and meta["authMode"] == "bearer"
        assert api["authenticationRef"] == {"name": "rlpr-api-token"}


def test_the_running_jobs_url_is_the_apis_own_route():
    from reward_service.fronts.rest import operations_router
    from reward_service.core.service import RewardService

    paths = {route.path for route in operations_router(RewardService.embedded()).routes}
    assert "/queues" in paths


def test_kubernetes_and_compose_run_the_same_commands_ports_probes_and_environment(rendered):
    services = compose()
    deployments = by_kind(rendered["base"], "Deployment")
    for service, name in TWINS.items():
        ours, theirs = container(deployments[name]), services[service]
        assert ours["command"] == as_run(theirs["command"]), name
        assert ours["image"] == theirs["image"], name  # kustomize's `images` tags ours `latest`, as compose's are
        environment = theirs.get("environment", {})
        assert {v["name"] for v in ours.get("env", [])} == set(environment), name
        for variable in ours.get("env", []):
            if "valueFrom" in variable:  # a Secret in Kubernetes, the operator's environment in compose
                assert variable["name"] == "RLPR_AUTH_TOKEN" and environment["RLPR_AUTH_TOKEN"] == "${RLPR_AUTH_TOKEN:-}"
                assert variable["valueFrom"]["secretKeyRef"] == {"name": "rlpr-auth", "key": "token"}
            else:
                assert variable["value"] == as_run(environment[variable["name"]]), (name, variable)
        probe, test = ours["livenessProbe"], theirs["healthcheck"]["test"]
        if "exec" in probe:
            assert probe["exec"]["command"] == test[1:], name
        else:
            port = {p["name"]: p["containerPort"] for p in ours["ports"]}[probe["httpGet"]["port"]]
            assert f"http://127.0.0.1:{port}{probe['httpGet']['path']}'" in test[-1], name
        assert theirs["read_only"] is True and ours["securityContext"]["readOnlyRootFilesystem"] is True, name
    published = {int(p.rsplit(":", 1)[-1]) for p in services["reward-api"]["ports"]}
    assert published == {p["containerPort"] for p in container(deployments["reward-api"])["ports"]}
    assert [p["containerPort"] for p in container(deployments["redis"])["ports"]] == [6379]


def test_a_stopping_worker_has_longer_than_its_grace_and_ludiis_grace_covers_the_longest_game(rendered):
    from reward_service.ludii.engine import KILL_GRACE_S
    from reward_service.rewards.ludii import MAX_TIME_LIMIT_S

    services = compose()
    deployments = by_kind(rendered["base"], "Deployment")
    for name in WORKERS:
        pod = deployments[name]["spec"]["template"]["spec"]
        grace = float({v["name"]: v.get("value") for v in container(deployments[name])["env"]}["RLPR_STOP_GRACE_S"])
        assert pod["terminationGracePeriodSeconds"] >= grace + 10, name  # room to put a job back and exit
        assert services[name]["stop_grace_period"] == f"{pod['terminationGracePeriodSeconds']}s", name
    ludii_grace = float(services["ludii-worker"]["environment"]["RLPR_STOP_GRACE_S"])
    assert ludii_grace >= MAX_TIME_LIMIT_S + KILL_GRACE_S


def test_every_pod_is_locked_down_and_sized(rendered):
    docs = rendered["overlays/trainer"]
    namespace = by_kind(docs, "Namespace")["rlpr"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 5
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for box in pod["containers"]:
            context = box["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert box["resources"]["requests"] and box["resources"]["limits"]["memory"]
    trainer = by_kind(docs, "Job")["rlpr-train"]["spec"]["template"]["spec"]
    assert container({"spec": {"template": {"spec": trainer}}})["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_only_the_api_and_the_workers_reach_redis_and_nothing_reaches_a_worker(rendered):
    docs = rendered["base"]
    policies = by_kind(docs, "NetworkPolicy")
    [rule] = policies["redis-clients-only"]["spec"]["ingress"]
    selector = rule["from"][0]["podSelector"]["matchLabels"]
    clients = {name for name, d in by_kind(docs, "Deployment").items()
               if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in selector.items())}
    assert clients == {"reward-api", *WORKERS}
    workers = policies["workers-take-no-traffic"]["spec"]
    assert workers["policyTypes"] == ["Ingress"] and "ingress" not in workers
    trainer = by_kind(render("overlays/trainer"), "Job")["rlpr-train"]["spec"]["template"]["metadata"]["labels"]
    assert not any(trainer.get(k) == v for k, v in selector.items())


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else float(quantity) / 2**20


def test_memory_requests_and_limits_cover_what_the_capacity_benchmark_measured(rendered):
    """bench/capacity.py records each process's peak resident memory under a trainer's load: a pod's
    request holds it, and a Ludii worker's limit also holds its JVM heap cap with room to spare."""
    import json

    figures = json.loads((pathlib.Path(REPO) / "docs" / "data" / "bench" / "capacity.json").read_text())["figures"]
    peaks = {}
    for figure in figures:
        if figure["name"].startswith("peak resident memory, "):
            who = "api" if figure["name"].startswith("peak resident memory, api") else "ludii"
            peaks[who] = max(peaks.get(who, 0), figure["value"])
    assert set(peaks) == {"api", "ludii"}
    deployments = by_kind(rendered["base"], "Deployment")
    for name, who in (("reward-api", "api"), ("ludii-worker", "ludii")):
        resources = container(deployments[name])["resources"]
        assert mebibytes(resources["requests"]["memory"]) >= peaks[who], (name, peaks[who])
        assert mebibytes(resources["limits"]["memory"]) >= 1.5 * peaks[who], (name, peaks[who])
    ludii = container(deployments["ludii-worker"])
    heap = {v["name"]: v.get("value") for v in ludii["env"]}["RLPR_JVM_HEAP"]
    assert heap == "2g" and mebibytes(ludii["resources"]["limits"]["memory"]) >= 2048 + 512
    assert ludii["resources"]["requests"]["cpu"] == "1" and "cpu" not in ludii["resources"]["limits"]
