"""The layout's promises, checked in fresh interpreters: the contract is a leaf, and a trainer that
talks gRPC loads nothing of the service."""
import json
import subprocess
import sys

from tests.conftest import REPO

HEAVY = ["rq", "redis", "fastapi", "uvicorn", "torch", "transformers", "reward_service", "trainer"]


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(set(m.split('.')[0] for m in sys.modules))))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_contract_package_is_a_leaf():
    modules = loaded_after("import reward_contract.types, reward_contract.errors, reward_contract.codec, "
                           "reward_contract.client, reward_contract.labels, reward_contract.settings, "
                           "reward_contract.integrations.trl, reward_contract.integrations.verl")
    assert not set(HEAVY) & set(modules), set(HEAVY) & set(modules)


def test_a_trainer_that_talks_grpc_loads_nothing_of_the_service():
    modules = loaded_after("from reward_contract.client import make_client\n"
                           "import trainer.ppo, trainer.trl_algos, trainer.sft, trainer.scorer\n"
                           "make_client('grpc://127.0.0.1:9').close()")
    assert "torch" in modules and not {"reward_service", "rq", "redis", "fastapi", "uvicorn"} & set(modules)


def test_in_process_scoring_comes_from_the_same_factory():
    modules = loaded_after("from reward_contract.client import make_client\n"
                           "from reward_contract.types import RewardItem\n"
                           "assert make_client('').score('sentiment_vader', [RewardItem('1', '', 'nice')])[0].ok")
    assert "reward_service" in modules and not {"fastapi", "uvicorn"} & set(modules)  # no server is loaded


def test_errors_know_their_status_codes_without_grpc():
    import grpc

    from reward_contract import errors

    for error in errors.ERRORS_BY_GRPC_CODE.values():
        assert error.grpc_code in grpc.StatusCode.__members__ and 400 <= error.http_status < 600
    assert "grpc" not in loaded_after("import reward_contract.errors")


def unit_of(module: str) -> str | None:
    """The part of the design a module belongs to: reward_service's folders are parts of their own."""
    parts = module.split(".")
    if parts[0] == "reward_service" and len(parts) > 1:
        return "reward_service." + parts[1].removesuffix(".py")
    return parts[0] if parts[0] in ("reward_contract", "reward_service", "trainer", "rlpr") else None


def import_graph() -> dict[str, set[str]]:
    import ast
    import pathlib

    graph: dict[str, set[str]] = {}
    for package in ("reward_contract", "reward_service", "trainer", "rlpr"):
        for path in (pathlib.Path(REPO) / package).rglob("*.py"):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            source = unit_of(module)
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
                for name in names:
                    target = unit_of(name)
                    if target and target != source:
                        graph.setdefault(source, set()).add(target)
    return graph


def test_the_parts_import_each_other_without_a_cycle():
    graph = import_graph()
    assert not graph.get("reward_contract"), graph.get("reward_contract")  # the leaf
    assert not {u for u in graph.get("trainer", ()) if u.startswith("reward_service")}  # the trainer: contract only
    assert "reward_service.worker" not in graph.get("reward_service.core", ())  # jobs are enqueued by name

    def reachable(start, seen):
        for nxt in graph.get(start, ()):
            if nxt not in seen:
                seen.add(nxt)
                reachable(nxt, seen)
        return seen

    cycles = [unit for unit in graph if unit in reachable(unit, set())]
    assert not cycles, {unit: sorted(graph[unit]) for unit in cycles}
