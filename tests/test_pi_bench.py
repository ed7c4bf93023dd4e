"""make pi-bench's script end to end against a real OpenSSH server on 127.0.0.1 started here."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
PROBLEMS = [{"id": "a", "nl": "Reverse the string s."}, {"id": "b", "nl": "Return the sum of a and b."}]

pytestmark = pytest.mark.skipif(
    SSHD is None or shutil.which("ssh") is None or shutil.which("scp") is None or shutil.which("ssh-keygen") is None,
    reason="OpenSSH server/client not installed (Debian: apt-get install -y openssh-server openssh-client)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on 127.0.0.1 that accepts one fresh key for the current user: (user@host, ssh options)."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)], check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    os.chmod(keys / "authorized_keys", 0o600)
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
                      f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPasswordAuthentication no\n"
                      "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
                      f"PidFile {tmp_path / 'sshd.pid'}\nSubsystem sftp internal-sftp\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    options = (f"-o Port={port} -i {keys / 'client'} -o StrictHostKeyChecking=no "
               f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o IdentitiesOnly=yes")
    target = f"{getpass.getuser()}@127.0.0.1"
    deadline = time.monotonic() + 20
    while True:
        probe = subprocess.run(["ssh", "-o", "BatchMode=yes", *options.split(), target, "true"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"sshd could not be started here: {proc.stderr.read()[-300:] or probe.stderr[-300:]}")
        time.sleep(0.2)
    try:
        yield target, options
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_pi_bench_over_real_ssh(sshd, tiny_student_dir, tmp_path):
    from pdc.export import export

    target, options = sshd
    export(tiny_student_dir, str(tmp_path / "export"), quantize=True, parity_n=0)
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    python = f"PYTHONPATH={os.path.join(ROOT, 'src')} {sys.executable} -m pdc"
    env = {**os.environ, "SSH_OPTS": options, "PDC": f"{sys.executable} -m pdc",
           "PYTHONPATH": os.path.join(ROOT, "src"), "PI_PDC": "NO_COLOR=1 " + python,
           "PI_DIR": str(tmp_path / "remote-home"), "BENCH_OPTS": "--max-new-tokens 4 --threads 1"}
    out = tmp_path / "out"
    venv = os.path.dirname(os.path.dirname(sys.executable))
    # -o: never (re)install the environment the tests run in
    result = subprocess.run(["make", "-s", "-C", ROOT, "-o", os.path.join(venv, ".installed"), "pi-bench", f"PI={target}", f"MODEL={tmp_path / 'export' / 'int8'}",
                             f"PROBLEMS={problems}", f"OUT={out}", f"VENV={venv}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "remote-home")) == ["model", "problems.jsonl", "remote.jsonl"]
    assert sorted(os.listdir(tmp_path / "remote-home" / "model")) == sorted(os.listdir(tmp_path / "export" / "int8"))
    local = [json.loads(line) for line in (out / "local.jsonl").read_text().splitlines()]
    remote = [json.loads(line) for line in (out / "remote.jsonl").read_text().splitlines()]
    assert [r["id"] for r in remote[:-1]] == ["a", "b"] == [r["id"] for r in local[:-1]]
    assert remote[-1]["summary"] is True and remote[-1]["backend"] == "onnx" and remote[-1]["precision"] == "int8"
    assert remote[-1]["model"] == "model" and "torch" not in remote[-1]["machine"]  # the edge runtime
    summaries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["host"] for s in summaries] == ["local", target]
    assert summaries == [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]


def test_pi_bench_refuses_a_model_that_is_not_an_export(tmp_path):
    result = subprocess.run(["bash", os.path.join(ROOT, "shell", "pi-bench.sh"), "nobody@127.0.0.1", str(tmp_path),
                             str(tmp_path / "p.jsonl"), str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 1 and "no *.onnx files" in result.stderr
