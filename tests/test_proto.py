"""The committed stubs in reward_contract/wire/ are exactly what proto/generate.py produces."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_committed_stubs_match_a_fresh_generation(tmp_path):
    spec = importlib.util.spec_from_file_location("generate", os.path.join(REPO, "proto", "generate.py"))
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    fresh = generate.generate(tmp_path)
    assert fresh
    for path in fresh:
        committed = os.path.join(REPO, os.path.relpath(path, tmp_path))
        assert open(committed).read() == open(path).read(), f"{committed} is stale: run python proto/generate.py"
