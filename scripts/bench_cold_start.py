#!/usr/bin/env python3
"""Size of the built artifact and cold starts of every handler template.yaml names.

A cold start here is a fresh python3.13 process (`-S -B`, PYTHONPATH = the artifact only) that
imports the handler and runs its first invocation against moto and the Cliniko emulator on
127.0.0.1. Each handler runs from the artifact as built (compiled, unchecked-hash .pyc) and
from a copy without any .pyc (what Lambda would pay on every cold start, since it cannot write
them). The deployed artifact is arm64; this machine runs the same build for its own
architecture (same staging, same requirements), because arm64 wheels cannot load here.

    python scripts/bench_cold_start.py [--runs 5] [--no-build] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "functions")]

import boto3  # noqa: E402
from cliniko_emulator import EmulatorControl, EmulatorServer  # noqa: E402
from local_run import defaults  # noqa: E402
from local_run.cold_start import run_cold  # noqa: E402
from local_run.resources import Provisioner  # noqa: E402
from local_run.runtime_python import find_runtime_python  # noqa: E402
from local_run.system import MotoServer  # noqa: E402
from local_run.template import SamApp  # noqa: E402

HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
USER_AGENT = "Cold start bench (bench@example.com)"
API_KEY = "MS0xbenchkey000000000000000-au1"
JSON_SECRET = "bench-signing-secret"  # noqa: S105 - a made-up local value


def build_dir(arch: str) -> Path:
    return ROOT / ".aws-sam" / ("build" if arch == "arm64" else f"build-{arch}")


def tree_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def zip_size(path: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "artifact.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(path.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(path))
        return target.stat().st_size


class Stack:
    """moto + emulator + the template's resources, and each function's environment."""

    def __init__(self) -> None:
        self.app = SamApp.load()
        self.moto = MotoServer().start()
        self.emulator = EmulatorServer(port=0).start()
        control = EmulatorControl(self.emulator.url)
        control.add_key(API_KEY)
        control.set_rate_limit(None)
        control.seed(3, shard="au1")
        self.seeded = [c["id"] for c in control.contacts()]
        control.close()
        from cliniko_automations.common.accounts import load_accounts
        from cliniko_automations.intake.config import load_form_sources

        parameters = self.app.parameters(
            {"ClinikoUserAgent": USER_AGENT, "AllowedOrigins": "https://clinic.example"}
        )
        provisioner = Provisioner(
            self.app,
            parameters,
            endpoint=self.moto.url,
            stack="bench",
            region=defaults.REGION,
            account=defaults.ACCOUNT_ID,
            secret_value=defaults.secret_value,
        )
        self.physical = provisioner.provision()
        sources = load_form_sources()
        for _where, secret in load_accounts().secret_references():
            provisioner.put_secret(secret, API_KEY)
        provisioner.put_secret(parameters["ClinikoApiKeySecretName"], API_KEY)
        provisioner.put_secret(sources.sources["partner-json"].signing_secret, JSON_SECRET)
        self.environments = {
            name: {k: str(v) for k, v in provisioner.resolver.resolve(spec.environment).items()}
            for name, spec in self.app.functions().items()
        }
        self.sqs = boto3.client(
            "sqs",
            endpoint_url=self.moto.url,
            region_name=defaults.REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106
        )

    def stop(self) -> None:
        self.emulator.stop()
        self.moto.stop()


def http_event(method: str, path: str, route: str, body: bytes = b"", headers=None, **extra):
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "bench.execute-api.eu-west-1.amazonaws.com", **headers},
        "requestContext": {
            "accountId": defaults.ACCOUNT_ID,
            "apiId": "bench",
            "domainName": "bench.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "bench",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.1",
                "userAgent": "bench",
            },
            "requestId": uuid.uuid4().hex[:14] + "=",
            "routeKey": route,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
        **extra,
    }
    if body:
        event["body"] = body.decode()
    return event


IAM = {
    "iam": {
        "accessKey": "AKIABENCH",
        "accountId": defaults.ACCOUNT_ID,
        "callerId": "AIDABENCH",
        "cognitoIdentity": None,
        "principalOrgId": None,
        "userArn": f"arn:aws:iam::{defaults.ACCOUNT_ID}:user/bench",
        "userId": "AIDABENCH",
    }
}


def run(python: str, artifact: Path, stack: Stack, function: str, event: Any) -> dict[str, Any]:
    environment = {
        "CLINIKO_BASE_URL": stack.emulator.base_url_template,
        **stack.environments[function],
    }
    started = time.perf_counter()
    out = run_cold(
        python, artifact, stack.app.functions()[function], event, environment, stack.moto.url
    )
    wall = time.perf_counter() - started
    if "error" in out:
        raise RuntimeError(f"{function} failed:\n{out['error']}")
    out["wall_seconds"] = wall
    return out


def one_round(python: str, artifact: Path, stack: Stack) -> dict[str, dict[str, Any]]:
    results = {}
    body = json.dumps(
        {"first_name": "Bench", "email": f"bench.{uuid.uuid4().hex[:8]}@example.com"}
    ).encode()
    stamp = str(int(time.time()))
    signature = hmac.new(JSON_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    event = http_event(
        "POST",
        "/forms/partner-json",
        "POST /forms/{source}",
        body,
        {
            "content-type": "application/json",
            "x-signature": f"t={stamp},v1={signature.hexdigest()}",
        },
        pathParameters={"source": "partner-json"},
    )
    results["IntakeApiFunction"] = out = run(python, artifact, stack, "IntakeApiFunction", event)
    assert out["result"]["statusCode"] == 202, out["result"]

    queue = stack.physical["SubmissionQueue"]
    (message,) = stack.sqs.receive_message(
        QueueUrl=queue.ref, MaxNumberOfMessages=1, AttributeNames=["All"], WaitTimeSeconds=2
    )["Messages"]
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue.attributes["Arn"],
        "awsRegion": defaults.REGION,
    }
    out = run(python, artifact, stack, "IntakeWorkerFunction", {"Records": [record]})
    assert out["result"] == {"batchItemFailures": []}, out["result"]
    stack.sqs.delete_message(QueueUrl=queue.ref, ReceiptHandle=message["ReceiptHandle"])
    results["IntakeWorkerFunction"] = out

    request = json.dumps(
        {
            "request_id": f"bench-{uuid.uuid4().hex[:10]}",
            "contact_id": stack.seeded[0],
            "reason": "cold start bench",
            "dry_run": True,
        }
    ).encode()
    event = http_event(
        "POST",
        "/erasure-requests",
        "POST /erasure-requests",
        request,
        {"content-type": "application/json"},
    )
    event["requestContext"]["authorizer"] = IAM
    out = run(python, artifact, stack, "ErasureApiFunction", event)
    assert out["result"]["statusCode"] == 200, out["result"]
    results["ErasureApiFunction"] = out

    scheduled = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": defaults.ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": defaults.REGION,
        "resources": [],
        "detail": {},
    }
    results["ErasureOverdueFunction"] = run(
        python, artifact, stack, "ErasureOverdueFunction", scheduled
    )
    # The cleanup's first step of a run (what its state machine invokes first).
    begin = {
        "action": "begin",
        "execution": "arn:aws:states:eu-west-1:123456789012:execution:cleanup:bench",
        "dry_run": None,
        "rules": None,
        "run_id": None,
    }
    out = run(python, artifact, stack, "CleanupFunction", begin)
    assert out["result"]["next"] == "step" and out["result"]["dry_run"] is True, out["result"]
    results["CleanupFunction"] = out
    return results


def without_pyc(artifact: Path, target: Path) -> Path:
    shutil.copytree(artifact, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts per handler and mode")
    parser.add_argument("--no-build", action="store_true", help="use the existing builds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    if not args.no_build:
        for arch in dict.fromkeys(["arm64", HOST_ARCH]):
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "build.py"), "--arch", arch],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    deployed = build_dir("arm64") / "IntakeApiFunction"
    size, files = tree_size(deployed)
    figures: dict[str, Any] = {
        "artifact": {
            "arch": "arm64",
            "unzipped_bytes": size,
            "files": files,
            "zipped_bytes": zip_size(deployed),
            "functions_sharing_it": len(SamApp.load().functions()),
        },
        "cold_start": {},
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    python = find_runtime_python()
    stack = Stack()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            modes = {
                "with_pyc": build_dir(HOST_ARCH) / "IntakeApiFunction",
                "without_pyc": without_pyc(
                    build_dir(HOST_ARCH) / "IntakeApiFunction", Path(tmp) / "nopyc"
                ),
            }
            samples: dict[str, dict[str, list[dict[str, Any]]]] = {m: {} for m in modes}
            for _ in range(args.runs):
                for mode, artifact in modes.items():
                    for function, out in one_round(python, artifact, stack).items():
                        samples[mode].setdefault(function, []).append(out)
    finally:
        stack.stop()
    for mode, by_function in samples.items():
        for function, outs in by_function.items():
            figures["cold_start"].setdefault(function, {})[mode] = {
                key: round(statistics.median(o[key] for o in outs) * 1000)
                for key in ("wall_seconds", "import_seconds", "invoke_seconds")
            }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    artifact = figures["artifact"]
    print(
        f"artifact (arm64, shared by {artifact['functions_sharing_it']} functions): "
        f"{artifact['unzipped_bytes'] / 1e6:.1f} MB unzipped, {artifact['files']} files, "
        f"{artifact['zipped_bytes'] / 1e6:.1f} MB zipped"
    )
    print(f"cold starts, median of {args.runs} fresh python3.13 processes ({figures['machine']}):")
    print(f"  {'function':<24} {'mode':<12} {'process':>8} {'import':>8} {'1st call':>9}")
    for function, modes_ in figures["cold_start"].items():
        for mode, ms in modes_.items():
            print(
                f"  {function:<24} {mode:<12} {ms['wall_seconds']:>6} ms {ms['import_seconds']:>5}"
                f" ms {ms['invoke_seconds']:>6} ms"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
