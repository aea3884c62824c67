#!/usr/bin/env python3
"""Cold starts of every handler template.yaml names, each as a ratio to a minimal handler.

A cold start here is a fresh python3.13 process (`-S -B`, PYTHONPATH = one artifact only) that
imports the handler and runs its first invocation against moto and the Cliniko emulator on
127.0.0.1. The baseline is what any Powertools function pays: a minimal handler in its own
artifact (Powertools Logger, an `APIGatewayHttpResolver` with one route, one boto3 client created
at import), built from the same locked Powertools/boto3 distributions and compiled the same way
(unchecked-hash .pyc). Before every function's cold start the baseline starts cold too
(interleaved, so a busy machine slows both alike); each function's ratio is the median of its
runs' ratios to the baseline run just before each (a slow moment of a shared machine slows a
pair alike, and their ratio keeps little of it). Reported per function: import + first call and
the whole process (spawn to exit), in ms and as a ratio, the peak memory (the child's peak
resident memory, Linux's VmHWM) and the artifact's size. The deployed artifact is arm64; this
machine runs the same build for its own architecture (same staging, same requirements),
because arm64 wheels cannot load here.

    python scripts/bench_cold_start.py [--runs 7] [--no-build] [--json] [--profile DIR]
                                       [--instructions] [--against DIR]
                                       [--out FILE]

`--profile DIR` adds one round, not counted, whose cold starts run under cProfile: DIR gets
FUNCTION.prof each (read them with `python -m pstats` or snakeviz) and FUNCTION.txt, the
top of the cumulative list. `--instructions` adds one round, not counted in the timings, whose
cold starts run under valgrind's callgrind: each function's instructions executed (the import
alone; the import and first call, counted until its answer is written, without the
interpreter's teardown, which no Lambda caller waits for; and the whole process, the same
one) and their ratios to the baseline's. The
count moves little with the machine's load (1-3 % for the functions that read secrets on
threads, whose interleaving it changes), so it tells a lever's effect where the timings' noise
(up to 0.25x between runs here) would hide it; it leaves out time spent waiting on moto and the
emulator.
`--check timed|instructions` ends with every ratio over its target (1.15x for the intake API,
1.3x for the others) and exits 1 when there is one: `timed`, the medians' ratios (import + first
call, and the whole process); `instructions`, the counted ones (the import, the import and
first call, and the whole process), which also adds the counted round. A benchmark's
verdict, not a test of the default suite: the timed ratios move with this machine's load.
`--against DIR` times another build of the functions in the same rounds (DIR: its function
folder, `.aws-sam/build-<arch>/IntakeApiFunction` of an earlier commit's build, kept aside):
each round runs every handler from both, in alternating order, each after a baseline run of
its own, so a lever is measured before and after under the same load. The figures above stay
this build's; a second table gives both builds' medians and ratios side by side.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "functions")]

import boto3  # noqa: E402
import httpx  # noqa: E402
from cliniko_emulator import EmulatorControl, EmulatorServer  # noqa: E402
from local_run import defaults  # noqa: E402
from local_run.cold_start import run_cold  # noqa: E402
from local_run.resources import Provisioner  # noqa: E402
from local_run.runtime_python import find_runtime_python  # noqa: E402
from local_run.system import MotoServer  # noqa: E402
from local_run.template import FunctionSpec, SamApp  # noqa: E402

from build import HOST_ARCH, RUNTIME_LOCK, build_dir, compile_pyc  # noqa: E402

USER_AGENT = "Cold start bench (bench@example.com)"
API_KEY = "MS0xbenchkey000000000000000-au1"
JSON_SECRET = "bench-signing-secret"  # noqa: S105 - a made-up local value
# Contacts in the emulator: each round erases one for real.
SEEDED = 50
# The most each function's cold start may be, as a ratio to the baseline's (issue 16): the
# intake API's is lower because a form's sender waits on it.
TARGETS = {"IntakeApiFunction": 1.15}
DEFAULT_TARGET = 1.3
# What --check reads of each function's figures: the ratio's key and its name in a verdict.
CHECKED_RATIOS = {
    "timed": {"ratio_import_and_first_call": "import + first call", "ratio_process": "process"},
    "instructions": {
        "ratio_import": "import, instructions",
        "ratio_import_and_first_call": "import + first call, instructions",
        "ratio_process": "process, instructions",
    },
}


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
        # The emulator's first answer on the API loads its own code (some 190 ms here): paid
        # now, not by whichever cold start calls Cliniko first.
        httpx.get(
            self.emulator.base_url_template.format(shard="au1") + "/contacts",
            auth=(API_KEY, ""),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        ).raise_for_status()
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
        self.sources = sources = load_form_sources()
        for _where, secret in load_accounts().secret_references():
            provisioner.put_secret(secret, API_KEY)
        provisioner.put_secret(sources.sources["partner-json"].signing_secret, JSON_SECRET)
        self.environments = {
            name: {k: str(v) for k, v in provisioner.resolver.resolve(spec.environment).items()}
            for name, spec in self.app.functions().items()
        }
        # One real erasure a round: at the template's ErasureHourlyLimit the stack's ceiling
        # refused the eleventh (429); room for every seeded contact keeps its two round trips
        # in each cold start measured.
        self.environments["ErasureApiFunction"]["ERASURE_HOURLY_LIMIT"] = str(SEEDED)
        # The erasure's default key, when ClinikoApiKeySecretName names one (empty: the
        # accounts file's main-clinic, whose key is put with the file's).
        erasure_key = self.environments["ErasureApiFunction"]["CLINIKO_API_KEY_SECRET_NAME"]
        if erasure_key:
            provisioner.put_secret(erasure_key, API_KEY)
        local = {
            "endpoint_url": self.moto.url,
            "region_name": defaults.REGION,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        self.sqs = boto3.client("sqs", **local)
        self.dynamodb = boto3.client("dynamodb", **local)
        self.floor_queue_url = self.sqs.create_queue(QueueName="bench-floor")["QueueUrl"]

    def floor_environment(self) -> dict[str, str]:
        """Where the floor handler does the intake API's AWS work (the same resources)."""
        intake = self.environments["IntakeApiFunction"]
        return {
            "FLOOR_SECRETS": ",".join(
                (self.sources.sources["partner-json"].signing_secret, intake["PEPPER_SECRET_NAME"])
            ),
            "FLOOR_TABLE": intake["SUBMISSION_TABLE"],
            # A queue of its own: the worker's round takes the one message of the real queue.
            "FLOOR_QUEUE_URL": self.floor_queue_url,
        }

    def release_cleanup_locks(self) -> None:
        """Free the rule sets' locks, so the next round's cleanup starts a run again."""
        table = self.physical["CleanupRunsTable"].ref
        items = self.dynamodb.scan(TableName=table)["Items"]
        for item in items:
            if item["pk"]["S"].startswith("lock#"):
                self.dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})

    def forget_rate_budget(self) -> None:
        """Empty the key's shared rate budget. Every function here shares one key, and the
        rounds follow each other faster than Cliniko's 200 a minute (the change feed's share
        of it, 20 a minute, most of all): left as the previous cold starts booked it, a first
        call waits for its slot (the change feed's second poll some 550 ms), a wait of this
        bench's making that a scheduled or sporadic cold start in a deployment does not have."""
        table = self.physical["RateLimitTable"].ref
        for item in self.dynamodb.scan(TableName=table)["Items"]:
            self.dynamodb.delete_item(TableName=table, Key={"key_id": item["key_id"]})

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
# The floor under the intake API: the baseline plus the AWS work its first call cannot skip
# (the source's signing secret and the pepper from Secrets Manager, the body's first-seen
# record and the body in DynamoDB, the message to SQS), on one boto3 session, and nothing else.
# What the intake API takes above it is its own code: validation, mapping, configuration.
FLOOR_HANDLER = """\
import json
import os
import time
import uuid

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

logger = Logger(service="floor")
app = APIGatewayHttpResolver()
session = boto3.session.Session()
sqs = session.client("sqs")


@app.post("/forms/<source>")
def accept(source):
    secrets = session.client("secretsmanager")
    for name in os.environ["FLOOR_SECRETS"].split(","):
        secrets.get_secret_value(SecretId=name)
    dynamodb = session.client("dynamodb")
    table = os.environ["FLOOR_TABLE"]
    submission_id = uuid.uuid4().hex
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": "floor-first#" + submission_id}},
        UpdateExpression="SET received_at = if_not_exists(received_at, :now)",
        ExpressionAttributeValues={":now": {"S": str(time.time())}},
    )
    body = app.current_event.body or ""
    dynamodb.put_item(
        TableName=table, Item={"id": {"S": "floor-body#" + submission_id}, "body": {"S": body}}
    )
    sqs.send_message(QueueUrl=os.environ["FLOOR_QUEUE_URL"], MessageBody=submission_id)
    return {"submission_id": submission_id}


@logger.inject_lambda_context
def lambda_handler(event, context):
    return app.resolve(event, context)
"""
# The baseline plus importing what every function's own code stands on: pydantic (one model
# built), the generated client's models, httpx and Powertools' idempotency utility, and
# no code of ours. The libraries' own share of a cold start, before any of our code runs.
LIBRARIES_HANDLER = BASELINE_HANDLER.replace(
    "import boto3\n",
    """\
import boto3
import httpx
from cliniko_client.models import *  # every model: the package itself loads them on first use
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from pydantic import BaseModel


class Model(BaseModel):
    name: str
""",
)
LIBRARY_DISTRIBUTIONS = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_inspection",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "certifi",
    "idna",
)
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
FLOOR = dataclasses.replace(
    BASELINE, logical_id="IntakeFloorFunction", handler="floor_handler.lambda_handler"
)
LIBRARIES = dataclasses.replace(
    BASELINE, logical_id="LibrariesFunction", handler="libraries_handler.lambda_handler"
)
REFERENCE_IDS = frozenset(spec.logical_id for spec in (BASELINE, FLOOR, LIBRARIES))


class References(NamedTuple):
    """The artifacts of the reference handlers: the baseline (and the intake's floor), and
    the baseline with the functions' libraries."""

    baseline: Path
    libraries: Path


def copy_distributions(built: Path, target: Path, names: Sequence[str]) -> None:
    """The files of distributions `names`, as their RECORDs list them, from `built`."""
    for name in names:
        (info,) = built.glob(f"{name}-*.dist-info")
        for line in (info / "RECORD").read_text().splitlines():
            relative = line.split(",", 1)[0]
            source = built / relative
            if relative.startswith("..") or relative.endswith(".pyc") or not source.is_file():
                continue
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / relative)


def baseline_artifact(built: Path, target: Path) -> Path:
    """The minimal handler (and the floor's) plus the files of BASELINE_DISTRIBUTIONS from
    `built`, compiled like the real artifact."""
    copy_distributions(built, target, BASELINE_DISTRIBUTIONS)
    restore_botocore_models(target)
    (target / "baseline_handler.py").write_text(BASELINE_HANDLER)
    (target / "floor_handler.py").write_text(FLOOR_HANDLER)
    compile_pyc([target])
    return target


def libraries_artifact(built: Path, baseline: Path, target: Path) -> Path:
    """The baseline's artifact plus the libraries the functions import (LIBRARIES_HANDLER)."""
    shutil.copytree(baseline, target)
    copy_distributions(built, target, LIBRARY_DISTRIBUTIONS)
    shutil.copytree(built / "cliniko_client", target / "cliniko_client")
    (target / "libraries_handler.py").write_text(LIBRARIES_HANDLER)
    compile_pyc([target])
    return target


def reference_artifacts(built: Path, directory: Path) -> References:
    """Both references' artifacts, made in `directory` from the functions' `built` one."""
    baseline = baseline_artifact(built, directory / "baseline")
    return References(baseline, libraries_artifact(built, baseline, directory / "libraries"))


def restore_botocore_models(target: Path) -> None:
    """Every botocore service model, as a stock artifact has them: build.py prunes those the
    functions never load, and that saving is the functions', not the baseline's. From the
    botocore wheel the runtime lock pins (its hashes checked by pip)."""
    pinned = re.search(
        r"^botocore==\S+(?: \\\n\s+--hash=\S+)+", RUNTIME_LOCK.read_text(), flags=re.MULTILINE
    )
    if pinned is None:
        raise SystemExit(f"{RUNTIME_LOCK.name} pins no botocore")
    with tempfile.TemporaryDirectory() as tmp:
        requirement = Path(tmp) / "botocore.txt"
        requirement.write_text(pinned.group(0) + "\n")
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--only-binary=:all:", "--dest", tmp, "--requirement", str(requirement)),
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("botocore-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(
                target, [name for name in archive.namelist() if name.startswith("botocore/data/")]
            )


class Timed:
    """Measures a cold start by the clock (the counted rounds); with `profile_dir`, each
    function's (not the references') under cProfile too, its profile written there."""

    def __init__(self, python: str, endpoint: str, profile_dir: Path | None = None) -> None:
        self.python, self.endpoint, self.profile_dir = python, endpoint, profile_dir

    def __call__(self, artifact: Path, spec: FunctionSpec, event: Any, environment) -> dict:
        profile = None
        if self.profile_dir is not None and spec.logical_id not in REFERENCE_IDS:
            profile = self.profile_dir / f"{spec.logical_id}.prof"
        started = time.perf_counter()
        out = run_cold(
            self.python, artifact, spec, event, environment, self.endpoint, profile=profile
        )
        out["wall_seconds"] = time.perf_counter() - started
        if "error" in out:
            raise RuntimeError(f"{spec.logical_id} failed:\n{out['error']}")
        out["first_seconds"] = out["import_seconds"] + out["invoke_seconds"]
        if profile is not None:
            write_profile_summary(profile)
        return out


class FromArtifact:
    """A measure that runs the functions (not the references) from another build (`--against`)."""

    def __init__(self, measure: Timed, artifact: Path) -> None:
        self.measure, self.artifact = measure, artifact

    def __call__(self, artifact: Path, spec: FunctionSpec, event: Any, environment) -> dict:
        if spec.logical_id not in REFERENCE_IDS:
            artifact = self.artifact
        return self.measure(artifact, spec, event, environment)


class Counted:
    """Measures a cold start by the instructions it executes, as valgrind's callgrind counts
    them: the whole process, its count dumped once the first call's answer is written (the
    runner calls `getsid` then, a marker nothing else calls: `--dump-before=getsid`), so the one
    process gives both the import and first call without the interpreter's teardown (what a
    caller waits for: Lambda keeps the process for the next event) and the whole; and a second
    process that only imports the handler. Not a third process for the first call: the event
    would be handled a second time, and a second delivery of a submission or of an erasure
    request is answered from what the first left (the worker's done record, the request's
    stored answer), counting a replay's work for the first call's. Unlike time, the
    count moves little with the machine's load: the same code and inputs give the same figure
    to within a few percent (the hash seed is fixed; the interleaving of threads is not), so a
    reference handler is counted once per run, not before every function. It counts this
    process's work only, not the time spent waiting for moto or the emulator."""

    MARKER = "getsid"

    def __init__(self, python: str, endpoint: str) -> None:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind (Debian's package valgrind)")
        self.python, self.endpoint = python, endpoint
        self.references: dict[str, dict[str, Any]] = {}

    def __call__(self, artifact: Path, spec: FunctionSpec, event: Any, environment) -> dict:
        if spec.logical_id in self.references:
            return self.references[spec.logical_id]
        out = self.count(artifact, spec, event, environment)
        imported = self.count(artifact, spec, event, environment, import_only=True)
        out["import_instructions"] = imported["instructions"]
        if spec.logical_id in REFERENCE_IDS:
            self.references[spec.logical_id] = out
        return out

    def count(self, artifact, spec, event, environment, *, import_only: bool = False) -> dict:
        """The process's instructions; invoked (not `import_only`), those until its answer
        was written too (`served_instructions`)."""
        with tempfile.TemporaryDirectory() as tmp:
            counts = Path(tmp) / "callgrind.out"
            wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}"]
            if not import_only:
                wrapper.insert(2, f"--dump-before={self.MARKER}")
            out = run_cold(
                self.python,
                artifact,
                spec,
                event,
                {**environment, "PYTHONHASHSEED": "0"},
                self.endpoint,
                import_only=import_only,
                wrapper=tuple(wrapper),
            )
            if "error" in out:
                raise RuntimeError(f"{spec.logical_id} failed:\n{out['error']}")
            dumped = sorted(counts.parent.glob(f"{counts.name}.*"))
            rest = total_instructions(counts)
            if import_only:
                out["instructions"] = rest
                return out
            # One dump, at the marker: none, and the answer was never written; more, and
            # something else called it (the split would be wrong).
            if [path.name for path in dumped] != [f"{counts.name}.1"]:
                raise RuntimeError(
                    f"{spec.logical_id}: {len(dumped)} counts dumped at {self.MARKER}, not 1"
                )
            served = total_instructions(dumped[0])
        out["served_instructions"] = served
        out["instructions"] = served + rest
        return out


def total_instructions(counts: Path) -> int:
    """The instructions of a callgrind output file (one part of a process's)."""
    (total,) = re.findall(r"^totals: (\d+)$", counts.read_text(), flags=re.MULTILINE)
    return int(total)


def run(
    measure: Timed | Counted | FromArtifact,
    artifact: Path,
    stack: Stack,
    function: str,
    event: Any,
    references: References,
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
    reference = measure(references.baseline, BASELINE, base_event, {})
    assert reference["result"]["statusCode"] == 200, reference["result"]
    environment = {
        "CLINIKO_BASE_URL": stack.emulator.base_url_template,
        **stack.environments[function],
    }
    stack.forget_rate_budget()
    out = measure(artifact, stack.app.functions()[function], event, environment)
    out["baseline"] = reference
    if function == "IntakeApiFunction":
        # The references, in the same interleaved round: the intake's floor, then the libraries.
        floor = measure(references.baseline, FLOOR, event, stack.floor_environment())
        assert floor["result"]["statusCode"] == 200, floor["result"]
        out["floor"] = floor
        libraries = measure(references.libraries, LIBRARIES, base_event, {})
        assert libraries["result"]["statusCode"] == 200, libraries["result"]
        out["libraries"] = libraries
    return out


def write_profile_summary(profile: Path, lines: int = 60) -> None:
    text = io.StringIO()
    stats = pstats.Stats(str(profile), stream=text)
    stats.sort_stats("cumulative").print_stats(lines)
    profile.with_suffix(".txt").write_text(text.getvalue())


def one_round(
    measure: Timed | Counted | FromArtifact,
    artifact: Path,
    stack: Stack,
    references: References,
    contact: str,
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
        measure, artifact, stack, "IntakeApiFunction", event, references
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
    out = run(measure, artifact, stack, "IntakeWorkerFunction", {"Records": [record]}, references)
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
    out = run(measure, artifact, stack, "ErasureApiFunction", event, references)
    assert out["result"]["statusCode"] == 200, out["result"]
    results["ErasureApiFunction"] = out

    scheduled = defaults.scheduled_event()
    results["ErasureOverdueFunction"] = run(
        measure, artifact, stack, "ErasureOverdueFunction", scheduled, references
    )
    # The cleanup's first step of a run (what its state machine invokes first), each round in
    # an execution of its own, as each scheduled start is: the run's id is derived from it.
    begin = {
        "action": "begin",
        "execution": f"arn:aws:states:eu-west-1:123456789012:execution:cleanup:{uuid.uuid4()}",
        "dry_run": None,
        "rules": None,
        "run_id": None,
    }
    out = run(measure, artifact, stack, "CleanupFunction", begin, references)
    assert out["result"]["next"] == "step" and out["result"]["dry_run"] is True, out["result"]
    results["CleanupFunction"] = out
    stack.release_cleanup_locks()
    # The change feed's scheduled poll: every account, one page of contacts each.
    out = run(measure, artifact, stack, "ChangeFeedFunction", scheduled, references)
    assert "error" not in out["result"], out["result"]
    results["ChangeFeedFunction"] = out
    return results


def median_ms(outs: list[dict[str, Any]], key: str) -> int:
    return round(statistics.median(o[key] for o in outs) * 1000)


def summarise(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of one function's cold starts and of the baseline runs paired with them, and
    the medians of the pairs' ratios."""
    base = [o["baseline"] for o in outs]
    figures: dict[str, Any] = {}
    groups = [("function", outs), ("baseline", base)]
    for reference in ("floor", "libraries"):
        if all(reference in o for o in outs):
            groups.append((reference, [o[reference] for o in outs]))
    for who, runs in groups:
        figures[who] = {
            "import_ms": median_ms(runs, "import_seconds"),
            "first_call_ms": median_ms(runs, "invoke_seconds"),
            "import_and_first_call_ms": median_ms(runs, "first_seconds"),
            "process_ms": median_ms(runs, "wall_seconds"),
            "max_rss_mib": round(statistics.median(o["max_rss_kib"] for o in runs) / 1024, 1),
        }
    for key, sample in (
        ("import_and_first_call", "first_seconds"),
        ("process", "wall_seconds"),
        ("max_rss", "max_rss_kib"),
    ):
        for who, runs in groups:
            if who == "baseline":
                continue
            prefix = "" if who == "function" else f"{who}_"
            figures[f"{prefix}ratio_{key}"] = round(
                statistics.median(r[sample] / b[sample] for r, b in zip(runs, base, strict=True)),
                2,
            )
    return figures


def summarise_counts(out: dict[str, Any]) -> dict[str, Any]:
    """One function's instructions (and its references'), in millions, and the ratios to the
    baseline's: the import alone, the import and first call (no teardown), and the whole
    process (import, first call, exit)."""
    base = out["baseline"]
    figures: dict[str, Any] = {"baseline": in_millions(base)}
    for who in ("function", "floor", "libraries"):
        counted = out if who == "function" else out.get(who)
        if counted is None:
            continue
        prefix = "" if who == "function" else f"{who}_"
        figures[who] = in_millions(counted)
        for ratio, key in (
            ("import", "import_instructions"),
            ("import_and_first_call", "served_instructions"),
            ("process", "instructions"),
        ):
            figures[f"{prefix}ratio_{ratio}"] = round(counted[key] / base[key], 2)
    return figures


def in_millions(counted: dict[str, Any]) -> dict[str, float]:
    whole, imported = counted["instructions"], counted["import_instructions"]
    served = counted["served_instructions"]
    return {
        "import_minstr": round(imported / 1e6, 1),
        # Both with a teardown: the import-only process ends with one too.
        "first_call_minstr": round((whole - imported) / 1e6, 1),
        "import_and_first_call_minstr": round(served / 1e6, 1),
        "teardown_minstr": round((whole - served) / 1e6, 1),
        "process_minstr": round(whole / 1e6, 1),
    }


def artifact_figures(directory: Path) -> dict[str, int]:
    size, files = tree_size(directory)
    return {"unzipped_bytes": size, "files": files, "zipped_bytes": zip_size(directory)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold starts per handler")
    parser.add_argument("--no-build", action="store_true", help="use the existing builds")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    # No default: a run written over results/ by default replaced a committed record with a
    # profiling round's figures, twice.
    parser.add_argument("--out", type=Path, help="also write the figures there, as JSON")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="add a profiled round, its profiles in DIR"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="add a round counted in instructions (valgrind; some 15 minutes)",
    )
    parser.add_argument(
        "--against",
        type=Path,
        metavar="DIR",
        help="another build's function folder, timed in the same rounds, interleaved",
    )
    parser.add_argument(
        "--check",
        choices=("timed", "instructions"),
        help="exit 1 when a function's ratios exceed its target (1.15x intake API, 1.3x others)",
    )
    args = parser.parse_args(argv)
    if args.check == "instructions":
        args.instructions = True
    builds = 2 if args.against else 1
    if args.runs * builds + 2 > SEEDED:
        parser.error(f"--runs: at most {(SEEDED - 2) // builds} (one real erasure per round)")
    if args.against and not (args.against / "cliniko_automations").is_dir():
        parser.error(f"--against: {args.against} holds no built function")

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
            references = reference_artifacts(artifact, Path(tmp))
            figures["artifact"] = {
                "function": {
                    "arch": "arm64" if deployed.is_dir() else HOST_ARCH,
                    "functions_sharing_it": len(stack.app.functions()),
                    **artifact_figures(deployed if deployed.is_dir() else artifact),
                },
                "baseline": {"arch": HOST_ARCH, **artifact_figures(references.baseline)},
            }
            samples: dict[str, list[dict[str, Any]]] = {}
            against: dict[str, list[dict[str, Any]]] = {}
            timed = Timed(python, stack.moto.url)
            contacts = iter(stack.seeded)
            for index in range(args.runs):
                rounds = [(timed, samples)]
                if args.against:
                    rounds.append((FromArtifact(timed, args.against), against))
                    if index % 2:
                        rounds.reverse()  # each build goes first in every other round
                for measure, into in rounds:
                    results = one_round(measure, artifact, stack, references, next(contacts))
                    for function, out in results.items():
                        into.setdefault(function, []).append(out)
            spare = contacts
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiled = Timed(python, stack.moto.url, args.profile)
                one_round(profiled, artifact, stack, references, next(spare))
            if args.instructions:
                counted = one_round(
                    Counted(python, stack.moto.url), artifact, stack, references, next(spare)
                )
                figures["instructions"] = {
                    function: summarise_counts(out) for function, out in counted.items()
                }
    finally:
        stack.stop()
    for function, outs in samples.items():
        figures["cold_start"][function] = summarise(outs)
    if args.against:
        figures["against"] = {
            "artifact": str(args.against),
            "cold_start": {function: summarise(outs) for function, outs in against.items()},
        }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        print_table(figures)
    if args.check is None:
        return 0
    over = over_target(figures, args.check)
    for line in over:
        print(f"over its target: {line}")
    if not over:
        print(f"every function within its target ({args.check})")
    return 1 if over else 0


def over_target(figures: dict[str, Any], measure: str) -> list[str]:
    """Each function's ratio above its target, as a line: `timed` reads the medians' ratios
    (import + first call, and the whole process), `instructions` the counted ones."""
    rows = figures["cold_start" if measure == "timed" else "instructions"]
    names = CHECKED_RATIOS[measure]
    over = []
    for function, row in rows.items():
        target = TARGETS.get(function, DEFAULT_TARGET)
        for key, name in names.items():
            if row[key] > target:
                over.append(f"{function} {name} {row[key]:.2f}x > {target:.2f}x")
    return over


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
    meanings = {
        "floor": "the baseline + the intake API's AWS calls",
        "libraries": "the baseline + importing pydantic, the generated models, httpx, idempotency",
    }
    for row in figures["cold_start"].values():
        for reference, meaning in meanings.items():
            if reference not in row:
                continue
            f = row[reference]
            first = f"{f['import_ms']} + {f['first_call_ms']} ms"
            print(
                f"  {reference:<24} {first:>22}"
                f" {row[f'{reference}_ratio_import_and_first_call']:>5.2f}x {f['process_ms']:>6}"
                f" {'':>8} ms {row[f'{reference}_ratio_process']:>5.2f}x {f['max_rss_mib']:>5}"
                f"  ({meaning})"
            )
    if "instructions" in figures:
        print_counts(figures["instructions"])
    if "against" in figures:
        print_against(figures)
    rows = list(figures["cold_start"].values())
    base_first = statistics.median(r["baseline"]["import_and_first_call_ms"] for r in rows)
    base_process = statistics.median(r["baseline"]["process_ms"] for r in rows)
    print(
        f"  baseline (median over all): import + 1st call {base_first:.0f} ms,"
        f" process {base_process:.0f} ms"
    )


def print_against(figures: dict[str, Any]) -> None:
    """This build and the `--against` build, timed in the same rounds."""
    print(f"this build and {figures['against']['artifact']}, in the same rounds (medians):")
    print(
        f"  {'function':<24} {'this: import + 1st call':>24} {'ratio':>6}"
        f" {'against: import + 1st call':>27} {'ratio':>6}"
    )
    for function, row in figures["cold_start"].items():
        other = figures["against"]["cold_start"][function]
        mine, theirs = row["function"], other["function"]
        print(
            f"  {function:<24} {mine['import_ms']:>13} + {mine['first_call_ms']:>4} ms"
            f" {row['ratio_import_and_first_call']:>5.2f}x"
            f" {theirs['import_ms']:>16} + {theirs['first_call_ms']:>4} ms"
            f" {other['ratio_import_and_first_call']:>5.2f}x"
        )


def print_counts(counts: dict[str, Any]) -> None:
    """The instruction round's table: millions of instructions, and ratios to the baseline
    (the import; the import and first call, what a caller waits for; the whole process, its
    teardown included)."""
    print("instructions executed (callgrind, one cold start each, millions):")
    print(
        f"  {'function':<24} {'import':>8} {'ratio':>6} {'+1st call':>10} {'ratio':>6}"
        f" {'process':>9} {'ratio':>6}"
    )
    kinds = ("import", "import_and_first_call", "process")
    rows: list[tuple[str, dict[str, Any], list[float]]] = []
    for function, row in counts.items():
        rows.append((function, row["function"], [row[f"ratio_{k}"] for k in kinds]))
        for reference in ("floor", "libraries"):
            if reference in row:
                ratios = [row[f"{reference}_ratio_{k}"] for k in kinds]
                rows.append((reference, row[reference], ratios))
    base = next(iter(counts.values()))["baseline"]
    rows.append(("baseline", base, [1.0, 1.0, 1.0]))
    for name, f, (ratio_import, ratio_served, ratio_process) in rows:
        print(
            f"  {name:<24} {f['import_minstr']:>8.0f} {ratio_import:>5.2f}x"
            f" {f['import_and_first_call_minstr']:>10.0f} {ratio_served:>5.2f}x"
            f" {f['process_minstr']:>9.0f} {ratio_process:>5.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
