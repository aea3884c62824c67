"""The built artifact: what is in it, and a smoke test of every handler that template.yaml
names, imported from the artifact alone in a fresh python3.13 and invoked with a sample event
against moto and the emulator."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import marshal
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
from local_run import defaults
from local_run.cold_start import run_cold
from local_run.resources import Provisioner
from local_run.template import SamApp

from tests.fixtures.apigw import form_post_event, http_api_event

from .conftest import HOST_ARCH, ROOT, build_script
from .iam_calls import calls_not_allowed

# The first test here pays for the session's two `sam build`s (minutes on a loaded machine).
pytestmark = [pytest.mark.sam, pytest.mark.timeout(1200)]

APP = SamApp.load()
CALL_TRACER = ROOT / "scripts" / "local_run" / "call_tracer.py"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


def code_dir(build: Path, function: str = "IntakeApiFunction") -> Path:
    return build / function


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# How the functions' code names an AWS service: `aws.client("sqs")`, boto3's own clients and
# resources, and Powertools' providers and persistence layers, which make their own clients.
SERVICE_USES = (
    re.compile(r"""\.(?:client|resource)\(\s*["']([a-z0-9-]+)["']"""),
    re.compile(r"\b(SecretsProvider|DynamoDBPersistenceLayer|SSMProvider|AppConfigProvider)\("),
)
POWERTOOLS_SERVICES = {
    "SecretsProvider": "secretsmanager",
    "DynamoDBPersistenceLayer": "dynamodb",
    "SSMProvider": "ssm",
    "AppConfigProvider": "appconfigdata",
}


def services_the_code_uses() -> set[str]:
    found = set()
    for path in (ROOT / "functions" / "cliniko_automations").rglob("*.py"):
        text = path.read_text()
        found.update(SERVICE_USES[0].findall(text))
        found.update(POWERTOOLS_SERVICES[name] for name in SERVICE_USES[1].findall(text))
    return found


def test_the_artifact_keeps_the_botocore_model_of_every_service_the_code_uses():
    used = services_the_code_uses()
    assert {"dynamodb", "events", "secretsmanager", "sqs"} <= used  # the scan finds them
    assert used <= set(build_script().BOTOCORE_SERVICES)


def test_every_function_gets_the_same_code(built):
    build = built["arm64"]
    names = sorted(p.name for p in build.iterdir() if p.is_dir())
    assert names == sorted(APP.functions())
    sizes = {name: tree_size(build / name) for name in names}
    assert len(set(sizes.values())) == 1, sizes


def test_native_code_is_for_the_deployed_architecture(built):
    libraries = list(code_dir(built["arm64"]).rglob("*.so"))
    assert any("pydantic_core" in str(p) for p in libraries)
    assert {build_script().elf_arch(p) for p in libraries} == {"arm64"}
    assert all("cpython-313" in p.name or "abi3" in p.name for p in libraries)


def test_host_build_has_the_same_distributions(built):
    def distributions(directory: Path) -> set[str]:
        return {p.name for p in directory.glob("*.dist-info")}

    assert distributions(code_dir(built["arm64"])) == distributions(code_dir(built[HOST_ARCH]))


def test_code_is_compiled_for_python313_with_unchecked_hashes(built):
    package = code_dir(built["arm64"]) / "cliniko_automations"
    sources = list(package.rglob("*.py"))
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert compiled.exists(), source
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, compiled  # hash-based, source never checked
    # The dataclasses' code, compiled by the same python3.13 (common/dataclass_code.py).
    shipped = (package / "common" / "dataclass_code.marshal").read_bytes()
    magic, dataclass_code = marshal.loads(shipped)  # noqa: S302 - our own build's file
    assert magic == compiled.read_bytes()[:4]
    assert len(dataclass_code) > 100
    # The same as the host's, though pydantic_core is built for arm64 here: the build recorded
    # with this machine's wheel of it.
    host = code_dir(built[HOST_ARCH]) / "cliniko_automations" / "common" / "dataclass_code.marshal"
    _, host_code = marshal.loads(host.read_bytes())  # noqa: S302 - our own build's file
    assert set(dataclass_code) == set(host_code)


def test_each_artifact_gets_the_pyc_of_its_own_sources(tmp_path, runtime_python):
    # The build compiles once and copies the .pyc into artifacts whose sources are the same
    # bytes; one whose sources differ is compiled on its own. The .pyc are unchecked: Python
    # runs them whatever the source says, so each artifact's answer tells which one it got.
    artifacts = {"a": "1", "same": "1", "different": "2"}
    for name, value in artifacts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "answer.py").write_text(f"VALUE = {value}\n")
    build_script().compile_pyc([tmp_path / name for name in artifacts])
    for name in artifacts:
        (tmp_path / name / "answer.py").write_text("VALUE = 'the source, read again'\n")
    code = "import answer; print(answer.VALUE)"
    got = {
        name: run_in_artifact(runtime_python, tmp_path / name, code).strip() for name in artifacts
    }
    assert got == artifacts


def test_artifact_holds_code_and_config_but_no_tests(built):
    directory = code_dir(built["arm64"])
    assert (directory / "cliniko_automations" / "intake" / "form_sources.yaml").exists()
    assert (directory / "cliniko_automations" / "common" / "cliniko_accounts.yaml").exists()
    assert (directory / "cliniko_client" / "__init__.py").exists()
    # Each with its data as JSON, read at a cold start, stamped checked by the build.
    for part in build_script().CHECKED_CONFIGURATION:
        shipped = directory / "cliniko_automations" / part
        stamped = json.loads(shipped.with_suffix(".json").read_text())
        assert stamped["yaml_sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
        assert stamped["checked"] is True
    assert not list((directory / "cliniko_automations").rglob("test_*.py"))
    assert (directory / "pycountry" / "databases").is_dir()
    assert not (directory / "pycountry" / "locales").exists()
    models = {p.name for p in (directory / "botocore" / "data").iterdir() if p.is_dir()}
    assert models == set(build_script().BOTOCORE_SERVICES)
    assert (directory / "botocore" / "data" / "endpoints.json").is_file()
    requirements = (ROOT / "build" / "staged" / "requirements.txt").read_text().splitlines()
    assert all(" @ " not in line and not line.startswith((".", "/")) for line in requirements)
    assert tree_size(directory) < LAMBDA_UNZIPPED_LIMIT


# What a handler's import must not load: each loads on first use, on the paths that need it
# (the cold-start levers of README's "Checks"). argparse serves the configuration modules'
# command lines alone; the cleanup's handler serves its begin step, which calls no Cliniko.
NOT_AT_IMPORT = {
    "IntakeApiFunction": (
        "httpx",
        "yaml",
        "pycountry",
        "argparse",
        # Its field rules spell out the contact's fields: no generated model.
        "cliniko_client",
        "pydantic",
        "pydantic_core",
    ),
    "IntakeWorkerFunction": ("yaml", "argparse", "pydantic", "pydantic_core"),
    "CleanupFunction": ("httpx", "yaml", "argparse", "cliniko_client"),
    # Its settings, webhook subscribers and Cliniko settings are plain dataclasses.
    "ChangeFeedFunction": ("yaml", "argparse", "pydantic"),
    # The chain check serves the command line's `verify` alone.
    "ErasureApiFunction": (
        "yaml",
        "argparse",
        "pydantic",
        "pydantic_core",
        "cliniko_automations.erasure.chain_check",
    ),
    "ErasureOverdueFunction": (
        "httpx",
        "yaml",
        "argparse",
        "cliniko_client",
        "pydantic",
        "cliniko_automations.erasure.chain_check",
        # It reads the Cliniko settings and calls no Cliniko: no pacing.
        "cliniko_automations.cliniko.shared_pacing",
    ),
}


def run_in_artifact(runtime_python: str, directory: Path, code: str, **env: str) -> str:
    """What `code` prints, run by the runtime's python with the artifact alone on its path."""
    return subprocess.run(  # noqa: S603 - the runtime's python, our own artifact
        [runtime_python, "-S", "-B", "-c", code],
        env={"PYTHONPATH": str(directory), "AWS_DEFAULT_REGION": defaults.REGION, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.parametrize("function", sorted(NOT_AT_IMPORT))
def test_a_handler_imports_only_what_its_cold_start_needs(built, runtime_python, function):
    handler = APP.functions()[function].handler.rpartition(".")[0]
    listing = run_in_artifact(
        runtime_python,
        code_dir(built[HOST_ARCH]),
        f"import sys, {handler}; print(*sorted(sys.modules))",
    )
    loaded = set(listing.split())
    assert handler in loaded
    for name in NOT_AT_IMPORT[function]:
        assert not {m for m in loaded if m == name or m.startswith(f"{name}.")}, name


# What the artifact's shared TLS context holds once made: roots loaded, certificate and host
# name checked.
TLS_CONTEXT_FIGURES = (
    "import json, ssl; from cliniko_automations.common.tls import tls_context; c = tls_context();"
    " print(json.dumps([c.cert_store_stats()['x509_ca'], c.verify_mode == ssl.CERT_REQUIRED,"
    " c.check_hostname]))"
)


def tls_context_figures(runtime_python: str, directory: Path, **env: str) -> list[object]:
    return json.loads(run_in_artifact(runtime_python, directory, TLS_CONTEXT_FIGURES, **env))


def test_the_tls_context_reads_the_shipped_ca_folder_not_the_whole_bundle(built, runtime_python):
    # The folder's naming is held by real handshakes in test_ca_directory.py; here, that every
    # function's artifact has it whole and that its TLS context loads no root before a
    # handshake asks for one (from the source tree it loads them all).
    for function in APP.functions():
        directory = code_dir(built[HOST_ARCH], function)
        bundle = directory / "certifi" / "cacert.pem"
        roots = bundle.read_text(encoding="utf-8").count("BEGIN CERTIFICATE")
        folder = directory / "cliniko_automations" / "common" / "ca_certificates"
        assert len(list(folder.iterdir())) == roots > 100, function
        assert tls_context_figures(runtime_python, directory) == [0, True, True], function
    # An operator's SSL_CERT_FILE (a proxy's CA, say) still wins, as it does for httpx.
    chosen = tls_context_figures(runtime_python, directory, SSL_CERT_FILE=str(bundle))
    assert chosen == [roots, True, True]


# -- the smoke test ------------------------------------------------------------------------


def _sign(secret: str, body: bytes) -> str:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


@pytest.fixture
def stack(aws, cliniko, tmp_path):
    """The template's queues, tables and secrets in moto; the functions' environments."""
    from cliniko_automations.common.accounts import load_accounts
    from cliniko_automations.intake.config import load_form_sources

    # The webhook stack's dead-letter queue, so the erasure's first call reads it too.
    sqs = boto3.client("sqs", region_name="eu-west-1")
    webhook_letters = sqs.create_queue(QueueName="smoke-webhook-dead-letters")["QueueUrl"]
    sqs.send_message(QueueUrl=webhook_letters, MessageBody="not a delivery: kept")
    parameters = APP.parameters(
        {
            "ClinikoUserAgent": cliniko.user_agent,
            "AllowedOrigins": "https://clinic.example",
            "WebhookDeadLetterQueueArn": sqs.get_queue_attributes(
                QueueUrl=webhook_letters, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"],
        }
    )
    provisioner = Provisioner(
        APP,
        parameters,
        endpoint=aws,
        stack="smoke",
        region="eu-west-1",
        account=defaults.ACCOUNT_ID,
        secret_value=defaults.secret_value,
    )
    physical = provisioner.provision()
    sources = load_form_sources()
    secrets = {name: cliniko.api_key for _where, name in load_accounts().secret_references()}
    # The erasure's default key, when ClinikoApiKeySecretName names one (empty: the accounts
    # file's main-clinic, among the secrets above).
    erasure = provisioner.resolver.resolve(APP.functions()["ErasureApiFunction"].environment)
    if erasure["CLINIKO_API_KEY_SECRET_NAME"]:
        secrets[erasure["CLINIKO_API_KEY_SECRET_NAME"]] = cliniko.api_key
    json_secret = sources.sources["partner-json"].signing_secret
    secrets[json_secret] = "smoke-signing-secret"
    for name, value in secrets.items():
        provisioner.put_secret(name, value)
    environments = {
        name: {
            key: str(value) for key, value in provisioner.resolver.resolve(spec.environment).items()
        }
        for name, spec in APP.functions().items()
    }
    return {
        "physical": physical,
        "environments": environments,
        "signing_secret": "smoke-signing-secret",
        "endpoint": aws,
        "cliniko": cliniko,
        "traces": tmp_path,
        "calls": {},
        "resolver": provisioner.resolver,
    }


def invoke(runtime_python: str, artifact: Path, stack: dict, function: str, event: Any):
    """The handler's answer to its first call; every AWS call and Cliniko request it made
    (local_run/call_tracer.py) in `stack["calls"][function]`."""
    environment = {
        "CLINIKO_BASE_URL": stack["cliniko"].base_url_template,
        **stack["environments"][function],
        "CALL_TRACE_FILE": str(stack["traces"] / f"{function}.json"),
    }
    spec = APP.functions()[function]
    out = run_cold(
        runtime_python,
        artifact,
        spec,
        event,
        environment,
        stack["endpoint"],
        wrapper=(runtime_python, "-S", "-B", str(CALL_TRACER)),
    )
    stack["calls"][function] = json.loads(Path(environment["CALL_TRACE_FILE"]).read_text())
    # Every AWS call it made, allowed by its role in the template (moto checks no IAM).
    assert calls_not_allowed(stack["resolver"], function, stack["calls"][function]) == []
    assert "error" not in out, out["error"]
    assert out["python"].startswith("3.13")
    assert Path(out["module_file"]).is_relative_to(artifact)
    assert out["outside_modules"] == []
    # The shipped code in use, and every dataclass its cold start made ran the code the build
    # compiled: none compiled here.
    assert out["dataclass_sources_compiled"] == 0, function
    assert not set(out["packages"]) & set(NOT_ON_FIRST_CALL.get(function, ())), function
    return out["result"]


# What a handler's first call (a real one, below) must not load either: pydantic validates
# configuration files at build time, and the cleanup's rules where they are read; httpx
# sends over urllib3, which boto3 has loaded, not httpcore (common/http_transport.py).
NOT_ON_FIRST_CALL = {
    function: ("httpcore", "h11")
    + (() if function == "CleanupFunction" else ("pydantic", "pydantic_core"))
    for function in APP.functions()
}


def calls_of(stack: dict, function: str, what: str, resource: str = "") -> list[str]:
    """The threads `function`'s first call made `what` on (a resource containing `resource`)."""
    return [
        call["thread"]
        for call in stack["calls"][function]
        if call["what"] == what and resource in (call["resource"] or "")
    ]


def test_every_handler_imports_and_runs_from_the_artifact(built, runtime_python, stack):
    artifact = code_dir(built[HOST_ARCH])
    cliniko = stack["cliniko"]
    sqs = boto3.client("sqs", region_name="eu-west-1")
    invoked = set()

    # Intake API: a signed JSON delivery is queued and answered 202.
    body = json.dumps(
        {
            "first_name": "Smoke",
            "last_name": "Test",
            "email": "smoke.test@example.com",
            "country": "New Zealand",  # pycountry's lookup, without its pruned translations
        }
    ).encode()
    event = form_post_event(
        "partner-json",
        body,
        {"content-type": "application/json", "x-signature": _sign(stack["signing_secret"], body)},
    )
    answer = invoke(runtime_python, artifact, stack, "IntakeApiFunction", event)
    invoked.add("IntakeApiFunction")
    assert answer["statusCode"] == 202, answer
    # The pepper was read during init, on a thread of its own; the source's secret on the call.
    read = "secretsmanager.GetSecretValue"
    assert calls_of(stack, "IntakeApiFunction", read, "pepper") == ["secret-prefetch"]
    assert calls_of(stack, "IntakeApiFunction", read, "signing-secret") == ["MainThread"]
    queue_url = stack["physical"]["SubmissionQueue"].ref
    messages = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )["Messages"]
    assert len(messages) == 1

    # Intake worker: the queued submission becomes a contact; no item fails.
    record = {
        "messageId": messages[0]["MessageId"],
        "receiptHandle": messages[0]["ReceiptHandle"],
        "body": messages[0]["Body"],
        "attributes": messages[0]["Attributes"],
        "messageAttributes": {},
        "md5OfBody": messages[0]["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": stack["physical"]["SubmissionQueue"].attributes["Arn"],
        "awsRegion": "eu-west-1",
    }
    answer = invoke(runtime_python, artifact, stack, "IntakeWorkerFunction", {"Records": [record]})
    invoked.add("IntakeWorkerFunction")
    assert answer == {"batchItemFailures": []}
    (contact,) = cliniko.control.contacts()
    assert contact["email"] == "smoke.test@example.com"
    assert contact["country_code"] == "NZ"
    # Every account's key read during init. (How many bookings its requests took depends on
    # this machine's speed, a slot lapsing when late: test_worker_core.py counts them on a
    # fake clock.)
    keys = calls_of(stack, "IntakeWorkerFunction", read)
    assert keys and set(keys) == {"secret-prefetch"}
    assert [
        c["what"].split()[0]
        for c in stack["calls"]["IntakeWorkerFunction"]
        if c["kind"] == "cliniko"
    ] == ["GET", "POST"]

    # Erasure API (IAM-authorised): the contact is scrubbed and archived, then readable.
    request_id = f"smoke-{uuid.uuid4().hex[:8]}"
    iam = {
        "iam": {
            "accessKey": "AKIASMOKE",
            "accountId": defaults.ACCOUNT_ID,
            "callerId": "AIDASMOKE",
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{defaults.ACCOUNT_ID}:user/smoke",
            "userId": "AIDASMOKE",
            "cognitoIdentity": None,
        }
    }
    post = http_api_event(
        "POST",
        "/erasure-requests",
        json.dumps(
            {"request_id": request_id, "contact_id": contact["id"], "reason": "smoke test"}
        ).encode(),
        {"content-type": "application/json"},
        route_key="POST /erasure-requests",
    )
    post["requestContext"]["authorizer"] = iam
    answer = invoke(runtime_python, artifact, stack, "ErasureApiFunction", post)
    invoked.add("ErasureApiFunction")
    assert answer["statusCode"] == 200, answer
    (erased,) = cliniko.control.contacts()
    assert erased["archived_at"] and not erased.get("email")
    # The pepper and every account's key read during init, each once.
    from cliniko_automations.common.accounts import load_accounts

    assert calls_of(stack, "ErasureApiFunction", read) == ["secret-prefetch"] * (
        1 + len(load_accounts().accounts)
    )
    # It read the webhook stack's dead letters too (the one there is not its contact's).
    assert calls_of(stack, "ErasureApiFunction", "sqs.ReceiveMessage", "webhook-dead-letters")
    get = http_api_event(
        "GET",
        f"/erasure-requests/{request_id}",
        route_key="GET /erasure-requests/{id}",
        path_parameters={"id": request_id},
    )
    get["requestContext"]["authorizer"] = iam
    answer = invoke(runtime_python, artifact, stack, "ErasureApiFunction", get)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["request_id"] == request_id

    # Overdue check (scheduled): nothing is overdue yet.
    scheduled = defaults.scheduled_event()
    answer = invoke(runtime_python, artifact, stack, "ErasureOverdueFunction", scheduled)
    invoked.add("ErasureOverdueFunction")
    assert answer["overdue"] == 0

    # Cleanup (the state machine's steps): a dry run of the shipped rules, which pages the
    # ledger's active index and keeps its lock and report in the runs table.
    begin = {
        "action": "begin",
        "execution": "arn:aws:states:eu-west-1:123456789012:execution:cleanup:packaged",
        "dry_run": None,
        "rules": None,
        "run_id": None,
    }
    answer = invoke(runtime_python, artifact, stack, "CleanupFunction", begin)
    invoked.add("CleanupFunction")
    assert answer["next"] == "step" and answer["dry_run"] is True, answer
    step = {"action": "step", "run_id": answer["run_id"], "iterations": 0}
    answer = invoke(runtime_python, artifact, stack, "CleanupFunction", step)
    assert answer["next"] == "done" and answer["archived"] == 0, answer

    # Change feed (scheduled): each account's first poll, published to the template's bus.
    answer = invoke(runtime_python, artifact, stack, "ChangeFeedFunction", scheduled)
    invoked.add("ChangeFeedFunction")
    assert answer["accounts"]
    assert all(a["complete"] and a["error"] is None for a in answer["accounts"]), answer
    # Its secrets read during init; the accounts polled side by side, each cursor read once.
    accounts = len(answer["accounts"])
    feed = stack["calls"]["ChangeFeedFunction"]
    assert set(calls_of(stack, "ChangeFeedFunction", read)) == {"secret-prefetch"}
    assert len({c["thread"] for c in feed if c["kind"] == "cliniko"}) == accounts > 1
    assert len(calls_of(stack, "ChangeFeedFunction", "dynamodb.GetItem", "ChangeFeed")) == accounts

    assert invoked == set(APP.functions())


def test_the_call_check_refuses_what_a_role_does_not_allow(stack):
    resolver = stack["resolver"]
    audit = resolver.physical["ErasureAuditTable"].ref
    ledger = resolver.physical["LedgerTable"].ref
    calls = [
        {"kind": "aws", "what": "dynamodb.Scan", "resource": audit},
        {"kind": "aws", "what": "dynamodb.PutItem", "resource": audit},
        {"kind": "aws", "what": "dynamodb.Query", "resource": f"{ledger}/index/ActiveByAccount"},
        {"kind": "aws", "what": "secretsmanager.GetSecretValue", "resource": "elsewhere/key"},
        {"kind": "cliniko", "what": "GET /contacts", "resource": None},
    ]
    region, account = resolver.pseudo["AWS::Region"], resolver.pseudo["AWS::AccountId"]

    assert calls_not_allowed(resolver, "ErasureOverdueFunction", calls) == [
        f"dynamodb:PutItem on arn:aws:dynamodb:{region}:{account}:table/{audit}",
        f"dynamodb:Query on arn:aws:dynamodb:{region}:{account}:table/{ledger}/index/"
        "ActiveByAccount",
        f"secretsmanager:GetSecretValue on arn:aws:secretsmanager:{region}:{account}:secret:"
        "elsewhere/key-AbCdEf",
    ]
    # The cleanup may query the ledger's index; the worker may not.
    index_query = calls[2:3]
    assert calls_not_allowed(resolver, "CleanupFunction", index_query) == []
    assert calls_not_allowed(resolver, "IntakeWorkerFunction", index_query) != []
    # A Deny wins over an Allow: the intake API may read secrets under the prefix (its form
    # sources'), not a Cliniko key there.
    key = {"kind": "aws", "what": "secretsmanager.GetSecretValue"}
    form = {**key, "resource": "cliniko-automations/forms/referral/signing-secret"}
    cliniko_key = {**key, "resource": "cliniko-automations/accounts/main-clinic/api-key"}
    assert calls_not_allowed(resolver, "IntakeApiFunction", [form]) == []
    assert calls_not_allowed(resolver, "IntakeApiFunction", [cliniko_key]) == [
        f"secretsmanager:GetSecretValue on arn:aws:secretsmanager:{region}:{account}:secret:"
        "cliniko-automations/accounts/main-clinic/api-key-AbCdEf"
    ]


def test_base64_body_reaches_the_api_handler_from_the_artifact(built, runtime_python, stack):
    # HTTP APIs hand non-JSON bodies over base64-encoded: the artifact's handler decodes first.
    body = json.dumps({"first_name": "Basil", "email": "basil@example.com"}).encode()
    event = form_post_event(
        "partner-json",
        body,
        {"content-type": "application/json", "x-signature": _sign(stack["signing_secret"], body)},
        base64=True,
    )
    artifact = code_dir(built[HOST_ARCH])
    answer = invoke(runtime_python, artifact, stack, "IntakeApiFunction", event)
    assert answer["statusCode"] == 202, answer
    unsigned = form_post_event(
        "partner-json", body, {"content-type": "application/json"}, base64=True
    )
    answer = invoke(runtime_python, artifact, stack, "IntakeApiFunction", unsigned)
    assert answer["statusCode"] == 401
    assert base64.b64decode(event["body"]) == body


def test_staging_checks_the_configuration(tmp_path, capsys):
    build = build_script()
    package = tmp_path / "cliniko_automations"
    for part in build.CHECKED_CONFIGURATION:
        (package / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "functions/cliniko_automations" / part, package / part)
    build.check_configuration(tmp_path, build.template_parameter_default("SecretsPrefix"))
    with pytest.raises(SystemExit, match="form-source configuration is invalid"):
        build.check_configuration(tmp_path, "elsewhere/")
    assert "is outside SecretsPrefix 'elsewhere/'" in capsys.readouterr().err
    rules = package / "cleanup/cleanup_rules.yaml"
    rules.write_text(rules.read_text().replace("account: main-clinic", "account: no-such-clinic"))
    with pytest.raises(SystemExit, match="cleanup rules are invalid"):
        build.check_configuration(tmp_path, build.template_parameter_default("SecretsPrefix"))
    assert "'no-such-clinic' is not in the Cliniko accounts file" in capsys.readouterr().err
    rules.write_text(rules.read_text().replace("account: no-such-clinic", "account: main-clinic"))
    webhooks = package / "changefeed/webhooks.yaml"
    webhooks.write_text("subscribers:\n  - {name: Bad Name}\n")
    with pytest.raises(SystemExit, match="webhook subscribers are invalid"):
        build.check_configuration(tmp_path, build.template_parameter_default("SecretsPrefix"))
    assert "subscribers.0.name" in capsys.readouterr().err


def test_staging_holds_every_file_to_the_secrets_prefix_deployed(tmp_path):
    # A stack deployed with its own SecretsPrefix names every secret under it: the accounts,
    # the form sources and the webhook subscribers are all checked against that prefix.
    build = build_script()
    package = tmp_path / "cliniko_automations"
    for part in build.CHECKED_CONFIGURATION:
        (package / part).parent.mkdir(parents=True, exist_ok=True)
        text = (ROOT / "functions/cliniko_automations" / part).read_text()
        (package / part).write_text(text.replace("cliniko-automations/", "clinic-b/"))
    (package / "changefeed/webhooks.yaml").write_text(
        "subscribers:\n"
        "  - {name: crm-sync, url: 'https://hooks.example.com/in', events: [contact.created],\n"
        "     secret: clinic-b/webhooks/crm-sync}\n"
    )
    build.check_configuration(tmp_path, "clinic-b/")


def test_staging_names_the_form_sources_file_a_person_edits(tmp_path, monkeypatch, capsys):
    build = build_script()
    functions = tmp_path / "functions"
    package = functions / "cliniko_automations"
    for part in build.CHECKED_CONFIGURATION:
        (package / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "functions/cliniko_automations" / part, package / part)
    edited = package / "intake/form_sources.yaml"
    edited.write_text(edited.read_text().replace("provider: tally", "provider: talley"))
    monkeypatch.setattr(build, "PACKAGES", ((package, "cliniko_automations"),))
    staged = tmp_path / "build" / "staged"
    with pytest.raises(SystemExit, match="form-source configuration is invalid"):
        build.stage(staged)
    err = capsys.readouterr().err
    assert err.startswith(f"{edited}: invalid form-source configuration")
    assert "staged" not in err
    assert not staged.exists()  # stopped before copying anything
