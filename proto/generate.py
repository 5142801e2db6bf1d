"""Generate the Python gRPC stubs of proto/ into the contract package, reward_contract/wire/.

Run from anywhere: `python proto/generate.py [--out DIR]`. The output is never edited by
hand; tests/test_proto.py checks the committed stubs match a fresh generation.

The .proto files sit under their proto package path (rlpr/reward/v1/) as buf lays them out.
protoc's virtual include path maps that tree onto the Python package `reward_contract.wire`,
so the generated modules import each other as `reward_contract.wire.v1...`.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

PROTO_ROOT = pathlib.Path(__file__).resolve().parent / "rlpr" / "reward"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE_DIR = "reward_contract/wire"  # where the stubs go, relative to --out


def generate(out: pathlib.Path) -> list[pathlib.Path]:
    from grpc_tools import protoc

    sources = sorted(PROTO_ROOT.rglob("*.proto"))
    virtual = [f"{PACKAGE_DIR}/{s.relative_to(PROTO_ROOT).as_posix()}" for s in sources]
    args = ["protoc", f"-I{PACKAGE_DIR}={PROTO_ROOT}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}"]
    if protoc.main(args + virtual) != 0:
        raise SystemExit("protoc failed")
    stems = [out / v.removesuffix(".proto") for v in virtual]
    for stem in stems:  # every level below reward_contract/wire is a package of its own
        package_dir = stem.parent
        while package_dir != out / PACKAGE_DIR:
            (package_dir / "__init__.py").touch()
            package_dir = package_dir.parent
    return [stem.with_name(stem.name + tail) for stem in stems for tail in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=REPO_ROOT)
    out = parser.parse_args().out
    for path in generate(out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
