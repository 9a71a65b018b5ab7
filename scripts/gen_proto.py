"""Generate the Python protobuf/gRPC code in mpc/_proto from proto/gaotie/v1/*.proto.

protoc writes absolute imports (``from gaotie.v1 import value_pb2``); they are rewritten
to point inside the ``mpc._proto`` package so the generated code needs no sys.path tricks.
Run ``python scripts/gen_proto.py`` after editing a .proto file; a test fails when the
committed code differs from what this script produces.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "mpc" / "_proto"


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Run protoc (from grpcio-tools) into ``out_dir`` and return the files written."""
    import grpc_tools
    from grpc_tools import protoc  # imported here: only needed by developers and tests

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "gaotie" / "v1").glob("*.proto"))
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = []
    for path in sorted((out_dir / "gaotie").rglob("*.py*")):
        text = path.read_text()
        text = re.sub(r"^from gaotie\.v1 import", "from mpc._proto.gaotie.v1 import", text, flags=re.M)
        path.write_text(text)
        written.append(path)
    for pkg in (out_dir / "gaotie", out_dir / "gaotie" / "v1"):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text("")
        written.append(init)
    return written


if __name__ == "__main__":
    for p in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT):
        print(p)
