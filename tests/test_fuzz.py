"""The GraphQL fuzzer (schemathesis) against a running service (docs/testing.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

import httpx

from deploy.local.ports import free_port
from tests.conftest import worker_env
from tests.live.conftest import ROOT, _wait_ready

FUZZ_SECONDS = int(os.environ.get("CHIRP_FUZZ_SECONDS", "120"))


def test_schemathesis_finds_no_server_error(stack, tmp_path):
    port = free_port()
    env = worker_env(stack, CHIRP_READ_RATE_PER_MINUTE="100000")
    log = open(tmp_path / "api.log", "w+")  # noqa: SIM115 - read after the process ends
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:create_app", "--factory", "--port", str(port),
         "--log-level", "warning"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, api)
        r = httpx.post(base + "/graphql", json={"query": 'mutation{signUp(handle:"fuzzer",'
                                                         'password:"password123"){token}}'})
        token = r.json()["data"]["signUp"]["token"]
        with tempfile.TemporaryDirectory() as reports:
            run = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", base + "/graphql",
                 "--checks", "no_internal_error", "--max-time", str(FUZZ_SECONDS),
                 "--exclude-name", "Mutation.logOut",  # keep the fuzzer signed in
                 "--header", f"Authorization: Bearer {token}", "--seed", "12",
                 "--report-dir", reports, "--no-color"],
                cwd=ROOT, capture_output=True, text=True, timeout=FUZZ_SECONDS + 300,
                env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_checks",
                     "PYTHONPATH": str(ROOT)})
    finally:
        api.terminate()
        api.wait(15)
    log.seek(0)
    logged = log.read()
    summary = run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0, summary + run.stderr[-2000:]
    assert "unexpected error" not in logged, logged[-5000:]
    tested = re.search(r"(\d+) generated", summary)
    assert tested and int(tested.group(1)) > 100, summary
