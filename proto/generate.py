"""Generate the Python gRPC stubs of proto/ into the `rlpr_proto` package.

Run from anywhere: `python proto/generate.py [--out DIR]`. The output is never edited
by hand; tests/test_proto.py checks the committed stubs match a fresh generation.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

PROTO_ROOT = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PROTO_ROOT.parent


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    from grpc_tools import protoc

    sources = sorted(PROTO_ROOT.rglob("*.proto"))
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + [str(s) for s in sources]) != 0:
        raise SystemExit("protoc failed")
    for package_dir in {(out / s.relative_to(PROTO_ROOT)).parent for s in sources}:
        while package_dir != out:  # make every level an importable package
            (package_dir / "__init__.py").touch()
            package_dir = package_dir.parent
    stems = [out / s.relative_to(PROTO_ROOT).with_suffix("") for s in sources]
    return [stem.with_name(stem.name + tail) for stem in stems for tail in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT)
    out = parser.parse_args().out
    for path in generate(out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
