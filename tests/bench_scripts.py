"""Load a script of bench/ as a module, for the tests of the benchmarks' own machinery."""
import importlib.util
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench"


def load_bench_module(name: str):
    # The scripts import bench/common.py; bench/ leaves the path at once, or its trainer.py would
    # shadow the trainer package for every test after this one
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module
