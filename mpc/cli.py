"""The ``gaotie`` command: serve, certs, demo, run/submit/status, datasets, audit.

Errors are one line on stderr (``gaotie: error: ...``) and a non-zero exit code, never a
traceback wall.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from pathlib import Path
from typing import Any


def _client(args: argparse.Namespace):
    from mpc.client import Client
    from mpc.server.tls import TlsFiles

    tls = None
    if args.cert or args.key or args.ca:
        if not (args.cert and args.key and args.ca):
            raise ValueError("--ca, --cert and --key go together")
        tls = TlsFiles(Path(args.ca), Path(args.cert), Path(args.key))
    return Client(args.server, tls=tls, server_name=args.server_name)


def _read_job(path: str) -> tuple[str, dict[str, Any], float]:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read job file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    if not isinstance(raw.get("protocol"), str):
        raise ValueError(f"{path}: missing key 'protocol' (e.g. protocol = \"psi.cardinality\")")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{path}: key 'params' must be a table")
    return raw["protocol"], params, float(raw.get("timeout", 0.0))


def cmd_serve(args: argparse.Namespace) -> int:
    from mpc.server.config import load_config
    from mpc.server.service import serve

    config = load_config(args.config)
    serve(config)
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    from mpc.server.tls import make_deployment

    hosts: dict[str, tuple[str, ...]] = {}
    for spec in args.host or []:
        party, _, names = spec.partition("=")
        if not names:
            raise ValueError(f"--host {spec!r}: expected PARTY=HOST[,HOST...]")
        hosts[party] = tuple(names.split(","))
    if len(set(args.party)) != len(args.party):
        raise ValueError("duplicate party names in --party")
    unknown = set(hosts) - set(args.party)
    if unknown:
        raise ValueError(f"--host names unknown party {sorted(unknown)[0]!r}")
    files = make_deployment(Path(args.out), args.party, hosts)
    print(f"CA: {Path(args.out) / 'ca.pem'} (keep ca.key offline)")
    for party, f in files.items():
        print(f"{party}: {f.cert} {f.key}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mpc.demo import run_demo

    return run_demo()


def cmd_run(args: argparse.Namespace) -> int:
    protocol, params, timeout = _read_job(args.job)
    with _client(args) as client:
        result = client.run(protocol, job_timeout=timeout, to=args.out, **params)
    if args.out is None:
        _print_result(result)
    else:
        _print_saved(result)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    protocol, params, timeout = _read_job(args.job)
    with _client(args) as client:
        print(client.submit(protocol, job_timeout=timeout, **params))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status(args.job_id)
        print(json.dumps(status))
        if status["state"] == "done" and (args.result or args.out):
            result = client.result(args.job_id, progress=False, to=args.out)
            if args.out is None:
                _print_result(result)
            else:
                _print_saved(result)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.explain:
            print(client.explain(args.sql, reveal_to=args.reveal_to, join=args.join))
            return 0
        result = client.query(args.sql, reveal_to=args.reveal_to, join=args.join, progress=not args.quiet,
                              memory=args.memory, to=args.out)
    if result is None:
        print(f"(the result went to {args.reveal_to})")
    elif args.out is not None:
        _print_saved(result)
    elif args.format == "csv":
        print(result.to_csv(index=False), end="")
    elif args.format == "json":
        print(result.to_json(orient="records"))
    else:
        print(result.to_string(index=False))
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for party, datasets in client.datasets(args.party).items():
            for ds in datasets:
                print(f"{party}.{ds['name']}  (id: {ds['id'] or '-'}, min group size {ds['min_group_size']})")
                for column, policy in ds["columns"].items():
                    print(f"    {column:<24} {policy}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else None
    if path is None:
        from mpc.server.config import load_config
        path = load_config(args.config).audit_log
    if not path.exists():
        print(f"no audit log at {path}")
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    header = ("job_id", "protocol", "requester", "outcome", "revealed_to_me", "error")
    print("\t".join(header))
    for r in rows:
        print("\t".join(str(r.get(k, "")) for k in header))
    return 0


def _print_saved(path: Path | None) -> None:
    """What ``--out`` wrote: the file and its rows (from the Parquet footer), or that there was nothing."""
    if path is None:
        print("(no result for this party: nothing written)")
        return
    import pyarrow.parquet as pq

    print(f"{path}: {pq.read_metadata(path).num_rows} rows")


def _print_result(result: Any, name: str = "") -> None:
    """A result in full: a table with every row and column, a dict (join.stats, woe_iv)
    one entry after another under its key (``histogram.retailer.spend:``), else print()."""
    import pandas as pd

    if isinstance(result, dict):
        for key, value in result.items():
            label = f"{name}.{key}" if name else str(key)
            if isinstance(value, (dict, pd.DataFrame)):
                _print_result(value, label)
            else:
                print(f"{label}: {value}")
    elif isinstance(result, pd.DataFrame):
        if name:
            print(f"{name}:")
        print(result.to_string())
    else:
        print(f"{name}: {result}" if name else result)


OUT_HELP = ("PATH: save the result table there as a Parquet file instead of printing it (a bucketed job's "
            "result file streamed to disk as it arrives); a result that is not a table is an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaotie", description="Privacy-preserving joint computation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run this party's server")
    p.add_argument("--config", required=True, help="party TOML config")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("certs", help="make a CA and party certificates for a deployment")
    p.add_argument("--out", required=True, help="directory for ca.pem/ca.key and <party>.pem/.key")
    p.add_argument("--party", action="append", required=True, help="a party name (repeat)")
    p.add_argument("--host", action="append", help="PARTY=HOST[,HOST]: names the party's server is reached at")
    p.set_defaults(fn=cmd_certs)

    p = sub.add_parser("demo", help="run a two-company demo on bundled sample data")
    p.set_defaults(fn=cmd_demo)

    def client_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", required=True, help="HOST:PORT of your party server")
        p.add_argument("--ca", help="CA certificate (mutual TLS)")
        p.add_argument("--cert", help="your party's certificate")
        p.add_argument("--key", help="your party's private key")
        p.add_argument("--server-name", help="the party name in the server's certificate")

    for name, fn, text in (("run", cmd_run, "run a job file and print the result"),
                           ("submit", cmd_submit, "submit a job file and print its id")):
        p = sub.add_parser(name, help=text)
        p.add_argument("job", help="job TOML: protocol = \"...\" and a [params] table")
        if name == "run":
            p.add_argument("--out", help=OUT_HELP)
        client_args(p)
        p.set_defaults(fn=fn)

    p = sub.add_parser("status", help="state of a job")
    p.add_argument("job_id")
    p.add_argument("--result", action="store_true", help="print the result when done")
    p.add_argument("--out", help=OUT_HELP)
    client_args(p)
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("query", help="run a SQL query over the parties' tables (party.dataset)")
    p.add_argument("sql", help='e.g. "SELECT b.segment, AVG(r.spend) FROM bank.accounts b JOIN '
                              'retailer.purchases r USING (customer_id) GROUP BY b.segment"')
    p.add_argument("--explain", action="store_true", help="print the plan and what each party learns; run nothing")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--reveal-to", help="the one party that gets the result (default: both)")
    p.add_argument("--join", choices=("ecdh", "dealer"), default="ecdh", help="private join method")
    p.add_argument("--memory", help="memory budget per party, e.g. 2GiB: a query of two tables (aggregates or "
                                    "rows) runs in hash buckets, checkpointed per bucket")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--out", help=OUT_HELP + " (instead of --format)")
    client_args(p)
    p.set_defaults(fn=cmd_query)

    p = sub.add_parser("datasets", help="list a party's datasets and column policies (never rows)")
    p.add_argument("--party", help="a peer's name: ask your server to list that peer's datasets")
    client_args(p)
    p.set_defaults(fn=cmd_datasets)

    p = sub.add_parser("audit", help="print a party's audit log as a table")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--config", help="party TOML config (its workdir holds audit.jsonl)")
    group.add_argument("--file", help="an audit.jsonl file")
    p.set_defaults(fn=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("grpc").setLevel(logging.WARNING)
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, RuntimeError, TimeoutError, KeyError) as exc:
        print(error_line(exc), file=sys.stderr)
        return 2
    except Exception as exc:  # GaotieError and friends: one line, no traceback wall
        from mpc.runtime.errors import GaotieError
        if isinstance(exc, GaotieError):
            print(error_line(exc), file=sys.stderr)
            return 1
        raise


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints for a failure: the exception's message, or, for one
    without a message, what :func:`mpc.runtime.errors.describe` says (type and where)."""
    from mpc.runtime.errors import describe
    return f"gaotie: error: {str(exc) or describe(exc)}"


if __name__ == "__main__":
    sys.exit(main())
