"""The gaotie CLI as a user runs it: subprocesses, exit codes, one-line errors."""

import socket
import subprocess
import sys

import pytest

from mpc.cluster import write_toml


def gaotie(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "mpc.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_demo_runs_end_to_end():
    out = gaotie("demo")
    assert out.returncode == 0, out.stderr
    assert "bank learned" in out.stdout and "retailer learned" in out.stdout
    assert "demo.secure_sum" in out.stdout


def test_certs_makes_a_deployment(tmp_path):
    out = gaotie("certs", "--out", str(tmp_path), "--party", "bank", "--party", "retailer",
                 "--host", "bank=bank.example.com")
    assert out.returncode == 0, out.stderr
    for name in ("ca.pem", "ca.key", "bank.pem", "bank.key", "retailer.pem", "retailer.key"):
        assert (tmp_path / name).exists()
    assert oct((tmp_path / "bank.key").stat().st_mode)[-3:] == "600"
    from cryptography import x509
    cert = x509.load_pem_x509_certificate((tmp_path / "bank.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "bank" in names and "bank.example.com" in names


def test_certs_rejects_duplicate_parties(tmp_path):
    out = gaotie("certs", "--out", str(tmp_path), "--party", "a", "--party", "a")
    assert out.returncode == 2 and "duplicate" in out.stderr and "Traceback" not in out.stderr


LOOP = {"party": "a", "listen": "127.0.0.1:1", "insecure": True}


@pytest.mark.parametrize("config, message", [
    ({"listen": "127.0.0.1:1"}, "missing key 'party'"),
    ({"party": "a", "listen": "nowhere"}, "not a host:port address"),
    ({**LOOP, "peers": {"a": "127.0.0.1:2"}}, "its own peer"),
    ({"party": "a", "listen": "127.0.0.1:1", "tls": {"ca": "x.pem", "cert": "y.pem", "key": "z.key"}},
     "key 'tls.ca': file"),
    ({**LOOP, "datasets": {"t": {"path": "t.csv", "columns": {"x": "public"}}}}, "policy 'public' is not one of"),
    ({**LOOP, "limits": {"job_timeout": "soon"}}, "must be float"),
    # TLS is required; plaintext only when asked for, and only on loopback
    ({"party": "a", "listen": "127.0.0.1:1"}, "missing table [tls]"),
    ({**LOOP, "listen": "0.0.0.0:1"}, "key 'insecure': plaintext is allowed only on a loopback listen address"),
    ({**LOOP, "peers": {"b": "10.0.0.2:1"}}, "key 'peers.b': with insecure = true every peer must be on loopback"),
    ({"party": "a", "listen": "127.0.0.1:1", "tls": {"enabled": False}}, "unknown key 'tls.enabled'"),
    ({**LOOP, "allowed_requesters": ["dealer"]}, "key 'allowed_requesters': 'dealer' is a helper"),
])
def test_serve_bad_config_is_one_clear_line(tmp_path, config, message):
    path = tmp_path / "party.toml"
    write_toml(path, config)
    out = gaotie("serve", "--config", str(path), timeout=30)
    assert out.returncode == 2
    assert str(path) in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_serve_unreadable_config(tmp_path):
    out = gaotie("serve", "--config", str(tmp_path / "missing.toml"), timeout=30)
    assert out.returncode == 2 and "missing.toml" in out.stderr and "cannot read" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("party = \n")
    out = gaotie("serve", "--config", str(bad), timeout=30)
    assert out.returncode == 2 and "invalid TOML" in out.stderr


def test_serve_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        path = tmp_path / "party.toml"
        write_toml(path, {**LOOP, "listen": f"127.0.0.1:{port}"})
        out = gaotie("serve", "--config", str(path), timeout=30)
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_job_file_and_datasets_and_audit(tls_cluster, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text('protocol = "demo.secure_sum"\n[params]\n'
                   'columns = ["bank.accounts.income", "retailer.purchases.spend"]\n')
    files = tls_cluster.tls_files["bank"]
    conn = ["--server", tls_cluster.addresses["bank"], "--ca", str(files.ca), "--cert", str(files.cert),
            "--key", str(files.key), "--server-name", "bank"]
    out = gaotie("run", str(job), *conn)
    assert out.returncode == 0, out.stderr
    expected = tls_cluster.frames["bank"].income.sum() + tls_cluster.frames["retailer"].spend.sum()
    assert float(out.stdout.strip()) == pytest.approx(expected, rel=1e-9)
    out = gaotie("datasets", *conn)
    assert out.returncode == 0 and "bank.accounts" in out.stdout and "aggregate" in out.stdout
    out = gaotie("datasets", "--party", "retailer", *conn)
    assert out.returncode == 0 and "retailer.purchases" in out.stdout
    out = gaotie("audit", "--config", str(tls_cluster.configs["bank"]))
    assert out.returncode == 0 and "demo.secure_sum" in out.stdout and "done" in out.stdout
    out = gaotie("submit", str(job), *conn)
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    import json
    import time
    for _ in range(100):
        status = json.loads(gaotie("status", job_id, *conn).stdout.splitlines()[0])
        if status["state"] == "done":
            break
        time.sleep(0.2)
    assert status["state"] == "done" and status["protocol"] == "demo.secure_sum"
    out = gaotie("status", job_id, "--result", *conn)
    assert float(out.stdout.splitlines()[1]) == pytest.approx(expected, rel=1e-9)
    out = gaotie("run", str(tmp_path / "nope.toml"), *conn)
    assert out.returncode == 2 and "nope.toml" in out.stderr


def test_an_error_without_a_message_still_says_what_failed():
    from mpc.cli import error_line

    assert error_line(ValueError("bad port 'x'")) == "gaotie: error: bad port 'x'"
    try:
        raise TimeoutError()
    except TimeoutError as exc:
        line = error_line(exc)
    assert line.startswith("gaotie: error: TimeoutError (no message) at ") and "test_cli.py" in line
