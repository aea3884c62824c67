#!/usr/bin/env python3
"""Cold starts of every handler template.yaml names, each as a ratio to a minimal handler.

A cold start here is a fresh python3.13 process (`-S -B`, PYTHONPATH = one artifact only) that
imports the handler and runs its first invocation against moto and the Cliniko emulator on
127.0.0.1. The baseline is what any Powertools function pays: a minimal handler in its own
artifact (Powertools Logger, an `APIGatewayHttpResolver` with one route, one boto3 client created
at import), built from the same locked Powertools/boto3 distributions and compiled the same way
(unchecked-hash .pyc). Before every function's cold start the baseline starts cold too
(interleaved, so a busy machine slows both alike); each function's ratio is its median over
the median of the baseline runs paired with it. Reported per function: import + first call and
the whole process (spawn to exit), in ms and as a ratio, the peak memory (the child's
ru_maxrss) and the artifact's size. The deployed artifact is arm64; this machine runs the same
build for its own architecture (same staging, same requirements), because arm64 wheels cannot
load here.

    python scripts/bench_cold_start.py [--runs 7] [--no-build] [--json]
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
from local_run.template import FunctionSpec, SamApp  # noqa: E402

from build import compile_pyc  # noqa: E402

HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
USER_AGENT = "Cold start bench (bench@example.com)"
API_KEY = "MS0xbenchkey000000000000000-au1"
JSON_SECRET = "bench-signing-secret"  # noqa: S105 - a made-up local value
# Contacts in the emulator: each round erases one for real.
SEEDED = 50


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
        control.seed(SEEDED, shard="au1")
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
        local = {
            "endpoint_url": self.moto.url,
            "region_name": defaults.REGION,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        self.sqs = boto3.client("sqs", **local)
        self.dynamodb = boto3.client("dynamodb", **local)

    def release_cleanup_locks(self) -> None:
        """Free the rule sets' locks, so the next round's cleanup starts a run again."""
        table = self.physical["CleanupRunsTable"].ref
        items = self.dynamodb.scan(TableName=table)["Items"]
        for item in items:
            if item["pk"]["S"].startswith("lock#"):
                self.dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})

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


BASELINE_HANDLER = """\
import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

logger = Logger(service="baseline")
app = APIGatewayHttpResolver()
sqs = boto3.client("sqs")


@app.post("/forms/<source>")
def accept(source):
    return {"accepted": source}


@logger.inject_lambda_context
def lambda_handler(event, context):
    return app.resolve(event, context)
"""
# The distributions the baseline handler imports (and theirs), copied from the built artifact.
BASELINE_DISTRIBUTIONS = (
    "aws_lambda_powertools",
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python_dateutil",
    "six",
    "typing_extensions",
)
BASELINE = FunctionSpec(
    logical_id="BaselineFunction",
    handler="baseline_handler.lambda_handler",
    timeout=10,
    memory=256,
    environment={},
    events={},
)


def baseline_artifact(built: Path, target: Path) -> Path:
    """The minimal handler plus the files of BASELINE_DISTRIBUTIONS (as their RECORDs list
    them) from `built`, compiled like the real artifact."""
    for name in BASELINE_DISTRIBUTIONS:
        (info,) = built.glob(f"{name}-*.dist-info")
        for line in (info / "RECORD").read_text().splitlines():
            relative = line.split(",", 1)[0]
            source = built / relative
            if relative.startswith("..") or relative.endswith(".pyc") or not source.is_file():
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / relative)
    (target / "baseline_handler.py").write_text(BASELINE_HANDLER)
    compile_pyc([target])
    return target


def run(
    python: str, artifact: Path, stack: Stack, function: str, event: Any, baseline: Path
) -> dict[str, Any]:
    """One cold start of `function`, right after one of the baseline (same event shape)."""
    base_event = http_event(
        "POST",
        "/forms/partner-json",
        "POST /forms/{source}",
        b"{}",
        {"content-type": "application/json"},
        pathParameters={"source": "partner-json"},
    )
    reference = timed(python, baseline, BASELINE, base_event, {}, stack.moto.url)
    assert reference["result"]["statusCode"] == 200, reference["result"]
    environment = {
        "CLINIKO_BASE_URL": stack.emulator.base_url_template,
        **stack.environments[function],
    }
    out = timed(
        python, artifact, stack.app.functions()[function], event, environment, stack.moto.url
    )
    out["baseline"] = reference
    return out


def timed(python: str, artifact: Path, spec: FunctionSpec, event: Any, environment, endpoint):
    started = time.perf_counter()
    out = run_cold(python, artifact, spec, event, environment, endpoint)
    out["wall_seconds"] = time.perf_counter() - started
    if "error" in out:
        raise RuntimeError(f"{spec.logical_id} failed:\n{out['error']}")
    out["first_seconds"] = out["import_seconds"] + out["invoke_seconds"]
    return out


def one_round(
    python: str, artifact: Path, stack: Stack, baseline: Path, contact: str
) -> dict[str, dict[str, Any]]:
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
    results["IntakeApiFunction"] = out = run(
        python, artifact, stack, "IntakeApiFunction", event, baseline
    )
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
    out = run(python, artifact, stack, "IntakeWorkerFunction", {"Records": [record]}, baseline)
    assert out["result"] == {"batchItemFailures": []}, out["result"]
    stack.sqs.delete_message(QueueUrl=queue.ref, ReceiptHandle=message["ReceiptHandle"])
    results["IntakeWorkerFunction"] = out

    request = json.dumps(
        {
            "request_id": f"bench-{uuid.uuid4().hex[:10]}",
            "contact_id": contact,
            "reason": "cold start bench",
            "dry_run": False,
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
    out = run(python, artifact, stack, "ErasureApiFunction", event, baseline)
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
        python, artifact, stack, "ErasureOverdueFunction", scheduled, baseline
    )
    # The cleanup's first step of a run (what its state machine invokes first).
    begin = {
        "action": "begin",
        "execution": "arn:aws:states:eu-west-1:123456789012:execution:cleanup:bench",
        "dry_run": None,
        "rules": None,
        "run_id": None,
    }
    out = run(python, artifact, stack, "CleanupFunction", begin, baseline)
    assert out["result"]["next"] == "step" and out["result"]["dry_run"] is True, out["result"]
    results["CleanupFunction"] = out
    stack.release_cleanup_locks()
    return results


def median_ms(outs: list[dict[str, Any]], key: str) -> int:
    return round(statistics.median(o[key] for o in outs) * 1000)


def summarise(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one function's cold starts and of the baseline runs paired with them."""
    base = [o["baseline"] for o in outs]
    figures: dict[str, Any] = {}
    for who, runs in (("function", outs), ("baseline", base)):
        figures[who] = {
            "import_ms": median_ms(runs, "import_seconds"),
            "first_call_ms": median_ms(runs, "invoke_seconds"),
            "import_and_first_call_ms": median_ms(runs, "first_seconds"),
            "process_ms": median_ms(runs, "wall_seconds"),
            "max_rss_mib": round(statistics.median(o["max_rss_kib"] for o in runs) / 1024, 1),
        }
    for key in ("import_and_first_call_ms", "process_ms", "max_rss_mib"):
        figures[f"ratio_{key.removesuffix('_ms').removesuffix('_mib')}"] = round(
            figures["function"][key] / figures["baseline"][key], 2
        )
    return figures


def artifact_figures(directory: Path) -> dict[str, int]:
    size, files = tree_size(directory)
    return {"unzipped_bytes": size, "files": files, "zipped_bytes": zip_size(directory)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold starts per handler")
    parser.add_argument("--no-build", action="store_true", help="use the existing builds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.runs > SEEDED:
        parser.error(f"--runs: at most {SEEDED} (one real erasure per round)")

    if not args.no_build:
        for arch in dict.fromkeys(["arm64", HOST_ARCH]):
            subprocess.run(
                [sys.executable, str(ROOT / "scripts" / "build.py"), "--arch", arch],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    deployed = build_dir("arm64") / "IntakeApiFunction"
    python = find_runtime_python()
    figures: dict[str, Any] = {
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "cold_start": {},
    }
    stack = Stack()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            artifact = build_dir(HOST_ARCH) / "IntakeApiFunction"
            baseline = baseline_artifact(artifact, Path(tmp) / "baseline")
            figures["artifact"] = {
                "function": {
                    "arch": "arm64" if deployed.is_dir() else HOST_ARCH,
                    "functions_sharing_it": len(stack.app.functions()),
                    **artifact_figures(deployed if deployed.is_dir() else artifact),
                },
                "baseline": {"arch": HOST_ARCH, **artifact_figures(baseline)},
            }
            samples: dict[str, list[dict[str, Any]]] = {}
            for index in range(args.runs):
                contact = stack.seeded[index]
                for function, out in one_round(python, artifact, stack, baseline, contact).items():
                    samples.setdefault(function, []).append(out)
    finally:
        stack.stop()
    for function, outs in samples.items():
        figures["cold_start"][function] = summarise(outs)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print_table(figures)
    return 0


def print_table(figures: dict[str, Any]) -> None:
    for who, artifact in figures["artifact"].items():
        print(
            f"{who} artifact ({artifact['arch']}): {artifact['unzipped_bytes'] / 1e6:.1f} MB"
            f" unzipped, {artifact['files']} files, {artifact['zipped_bytes'] / 1e6:.1f} MB zipped"
        )
    print(
        f"cold starts, median of {figures['runs']} fresh python3.13 processes, each after one of"
        f" the baseline ({figures['machine']}):"
    )
    print(
        f"  {'function':<24} {'import + 1st call':>22} {'ratio':>6} {'process':>17}"
        f" {'ratio':>6} {'peak MiB':>13}"
    )
    for function, row in figures["cold_start"].items():
        f, b = row["function"], row["baseline"]
        first = f"{f['import_ms']} + {f['first_call_ms']} ms"
        print(
            f"  {function:<24} {first:>22} {row['ratio_import_and_first_call']:>5.2f}x"
            f" {f['process_ms']:>6} (b {b['process_ms']:>4}) ms {row['ratio_process']:>5.2f}x"
            f" {f['max_rss_mib']:>5} (b {b['max_rss_mib']:>4})"
        )
    rows = list(figures["cold_start"].values())
    base_first = statistics.median(r["baseline"]["import_and_first_call_ms"] for r in rows)
    base_process = statistics.median(r["baseline"]["process_ms"] for r in rows)
    print(
        f"  baseline (median over all): import + 1st call {base_first:.0f} ms,"
        f" process {base_process:.0f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
