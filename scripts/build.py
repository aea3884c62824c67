#!/usr/bin/env python3
"""Build the Lambda artifact: stage the code, run `sam build`, compile `.pyc` for python3.13.

`sam build` installs a CodeUri's requirements.txt but cannot install local path requirements
(our generated client is one), so this script stages one directory for every function:

    build/staged/cliniko_automations/   deployed code (no tests, no caches)
    build/staged/cliniko_client/        the generated Cliniko client
    build/staged/requirements.txt       the runtime dependencies of both: locks/runtime.txt
                                        (exact versions with hashes; scripts/lock.py writes it)

then runs `sam build` (SAM CLI from .venv-sam, made by scripts/bootstrap) and compiles every
module of the built artifact for python3.13 with unchecked-hash invalidation: Lambda's file
system is read-only, so without shipped `.pyc` files every cold start compiles everything again.
The methods `dataclasses` writes for each class are compiled then too, by the same python3.13
(scripts/record_dataclass_code.py; cliniko_automations/common/dataclass_code.py says why).

    python scripts/build.py              stage, sam build, compile
    python scripts/build.py --stage-only stage only
    python scripts/build.py --no-compile skip the .pyc step
    python scripts/build.py --arch x86_64 the same artifact for x86_64 (.aws-sam/build-x86_64)

Staging first validates cliniko_accounts.yaml and form_sources.yaml (the files in functions/,
so a mistake names the file to edit), including that every secret they name sits under the
SecretsPrefix the functions may read (template.yaml's default, or --secrets-prefix), and
cleanup_rules.yaml against the accounts, and webhooks.yaml: a broken configuration fails the
build with its problems, not the first submission or scheduled run. Every YAML configuration
file is then shipped with its data as JSON next to it (`form_sources.json`), which the
functions read at a cold start instead of parsing YAML; the JSON of a file validated here says
so, and the functions build their configuration from it without validating it again. After
`sam build`, each artifact's botocore data is cut to what its clients read, and certifi's CA
bundle is shipped again as an OpenSSL hashed folder (`ship_ca_directory`) that the functions'
TLS context reads root by root. The runtime's python3.13 is found by local_run.runtime_python.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("build.py")

import argparse
import functools
import gzip
import json
import os
import platform
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGED = ROOT / "build" / "staged"
SAM_DIR = ROOT / ".aws-sam"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
TEMPLATE = ROOT / "template.yaml"
# This machine, and what an ELF file is built for, by the names Lambda gives architectures.
HOST_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
ELF_ARCHES = {62: "x86_64", 183: "arm64"}  # the header's e_machine


def elf_arch(path: Path) -> str | None:
    """What the ELF file at `path` runs on ("other" for an architecture Lambda has not), or
    None when it is no ELF file."""
    with path.open("rb") as elf:
        header = elf.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return ELF_ARCHES.get(int.from_bytes(header[18:20], "little"), "other")


# What template.yaml deploys; --arch x86_64 builds the same artifact for this machine so the
# packaging smoke test can import it (an aarch64 pydantic-core cannot load on x86_64).
DEPLOYED_ARCH = "arm64"

# (source directory, name inside the staged directory)
PACKAGES = (
    (ROOT / "functions" / "cliniko_automations", "cliniko_automations"),
    (ROOT / "generated_client" / "cliniko_client", "cliniko_client"),
)
# The runtime dependencies of both packages, every version pinned with its hashes, resolved for
# the Lambda runtime (python3.13 on Linux) by scripts/lock.py.
RUNTIME_LOCK = ROOT / "locks" / "runtime.txt"
# Never deployed: tests, caches, and anything a developer's tools leave behind.
IGNORED = shutil.ignore_patterns(
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "tests",
    "test_*.py",
    "conftest.py",
    ".pytest_cache",
    "*.egg-info",
)


def template_parameter_default(name: str) -> str:
    from local_run.template import load

    return str(load(TEMPLATE)["Parameters"][name]["Default"])


# The configuration files check_configuration validates, under the package: their JSON is
# stamped checked, so the functions build their configuration from it without validating.
CHECKED_CONFIGURATION = (
    "common/cliniko_accounts.yaml",
    "intake/form_sources.yaml",
    "cleanup/cleanup_rules.yaml",
    "changefeed/webhooks.yaml",
)


def check_configuration(directory: Path, secrets_prefix: str) -> None:
    """The Cliniko accounts and form sources (secrets under the prefix, each source's account),
    the cleanup rules (their accounts) and the webhook subscribers (their accounts, their secrets
    under the prefix) of the cliniko_automations package in `directory`."""
    from cliniko_automations.changefeed import subscribers
    from cliniko_automations.cleanup import config as cleanup_config
    from cliniko_automations.intake import config as intake_config

    package = directory / "cliniko_automations"
    accounts, sources, rules, webhooks = (str(package / name) for name in CHECKED_CONFIGURATION)
    against = ["--accounts", accounts, "--secrets-prefix", secrets_prefix]
    if intake_config.main(["--check", sources, *against]) != 0:
        raise SystemExit("build stopped: the form-source configuration is invalid")
    if cleanup_config.main(["--check", rules, "--accounts", accounts]) != 0:
        raise SystemExit("build stopped: the cleanup rules are invalid")
    if subscribers.main(["--check", webhooks, *against]) != 0:
        raise SystemExit("build stopped: the webhook subscribers are invalid")


def compile_configuration(package: Path) -> None:
    """Ship every configuration file's data as JSON next to it (common/config_file): the
    functions then read JSON at a cold start instead of parsing YAML. Call only after
    check_configuration: the JSON of the files it checks says so."""
    from cliniko_automations.common.config_file import compile_config_file

    checked = {package / name for name in CHECKED_CONFIGURATION}
    for path in sorted(package.rglob("*.yaml")):
        compile_config_file(path, checked=path in checked)


def check_parameter(name: str, value: str) -> None:
    """Refuse a value the template's parameter would refuse at deploy (its AllowedPattern)."""
    from local_run.template import load

    pattern = load(TEMPLATE)["Parameters"][name].get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise SystemExit(
            f"build stopped: {name} {value!r} does not match {pattern} (template.yaml)"
        )


def stage(staged: Path = STAGED, secrets_prefix: str | None = None) -> Path:
    # The files in functions/ (not their staged copies): a mistake names the file to edit.
    deployed = PACKAGES[0][0].parent
    if secrets_prefix is not None:
        check_parameter("SecretsPrefix", secrets_prefix)
    check_configuration(deployed, secrets_prefix or template_parameter_default("SecretsPrefix"))
    if staged.exists():
        shutil.rmtree(staged)
    staged.mkdir(parents=True)
    for source, name in PACKAGES:
        if not (source / "__init__.py").is_file():
            raise SystemExit(f"missing package: {source.relative_to(ROOT)}")
        shutil.copytree(source, staged / name, ignore=IGNORED)
    compile_configuration(staged / PACKAGES[0][1])
    # sam build's pip checks the hashes of what it downloads from it; it then fetches the arm64
    # builds of native wheels by name and exact version, so check_against_lock checks the result.
    shutil.copyfile(RUNTIME_LOCK, staged / "requirements.txt")
    return staged


@functools.cache
def runtime_python() -> str:
    """The Lambda runtime's python3.13, or the build stops saying how to install it (looked up
    once: each lookup starts a python3.13 to ask its version)."""
    from local_run.runtime_python import RuntimePythonMissing, find_runtime_python

    try:
        return find_runtime_python()
    except RuntimePythonMissing as exc:
        raise SystemExit(f"build stopped: {exc}") from None


def sam_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    # The SAM CLI's own venv must not leak into the pip it runs for the runtime.
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.endswith("/.venv/bin")]
    # sam build looks the runtime up as `python3.13` on PATH: the one found comes first.
    env["PATH"] = os.pathsep.join([str(Path(runtime_python()).parent), *path])
    return env


# Installed by a dependency but never used by our code, removed from the built artifact:
# pycountry's gettext translations of country names (22 MB, a third of the artifact); country
# lookups read pycountry/databases, which stays.
PRUNED = ("pycountry/locales",)
# The AWS services whose botocore models the functions load: their clients (`aws.client(...)`)
# and Powertools' secrets provider and idempotency table; sts for credentials a deployment may
# assume. botocore ships about 440 models (28 MB of a 38 MB artifact), and every client's
# creation lists them all, twice (the service and its endpoint rules): about 25 ms each at a
# cold start. tests/infrastructure/template/test_packaging.py checks the list against the code.
BOTOCORE_SERVICES = ("dynamodb", "events", "secretsmanager", "sqs", "sts")


# Text for people (botocore writes docstrings from it, lazily), never read to make a call.
BOTOCORE_DOC_KEYS = ("documentation", "documentationUrl")


def prune(directories: list[Path]) -> None:
    for directory in directories:
        for relative in PRUNED:
            target = directory / relative
            if target.exists():
                shutil.rmtree(target)
        models = directory / "botocore" / "data"
        if models.is_dir():
            slim_botocore_data(models)


def slim_botocore_data(models: Path) -> None:
    """botocore's data folder cut to what the functions' clients read at a cold start.

    - Only the models of BOTOCORE_SERVICES.
    - endpoints.json (1.3 MB, every service's endpoints in every partition, parsed by every
      process's first client: 10-30 ms) keeps only those services' entries; partitions and
      their regions stay whole.
    - Each kept service-2.json (gzipped in the wheel: a process decompresses and parses it when
      it makes that client) is written plain, without its documentation strings: DynamoDB's
      556 kB becomes 113 kB, its load 2 ms instead of 8.
    """
    for service in models.iterdir():
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)
    prefixes = set()
    # Plain ones too: a second cut of the same folder finds them so.
    for model_file in sorted(models.glob("*/*/service-2.json*")):
        with (gzip.open if model_file.suffix == ".gz" else open)(model_file, "rb") as handle:
            model = json.load(handle)
        prefixes.add(model["metadata"]["endpointPrefix"])
        model_file.unlink()
        write_json(model_file.parent / "service-2.json", without_documentation(model))
    endpoints_file = models / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: entry for name, entry in partition["services"].items() if name in prefixes
        }
    write_json(endpoints_file, endpoints)


def without_documentation(value: object) -> object:
    """`value` with every documentation string dropped. Only strings: a shape may have a member
    named "documentation", whose definition is a mapping and stays."""
    if isinstance(value, dict):
        return {
            key: without_documentation(item)
            for key, item in value.items()
            if not (key in BOTOCORE_DOC_KEYS and isinstance(item, str))
        }
    if isinstance(value, list):
        return [without_documentation(item) for item in value]
    return value


PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+?-----END CERTIFICATE-----\n"
)


def ship_ca_directory(artifact: Path) -> Path | None:
    """certifi's roots in `artifact` written again as an OpenSSL hashed directory beside
    common/tls.py, which the functions' TLS context reads instead of the bundle: OpenSSL then
    loads only the roots a handshake asks for, not all of them at every cold start.

    One PEM file per root, named `<subject hash>.<n>` (n counts roots whose subject names hash
    alike), the names `openssl rehash` gives. Returns the directory; None when the artifact has
    no certifi, or when this Python's OpenSSL cannot be reached to name the files: the functions
    then load the bundle, as from the source tree.
    """
    from cliniko_automations.common.tls import CA_DIRECTORY_NAME

    bundle = artifact / "certifi" / "cacert.pem"
    target = artifact / "cliniko_automations" / "common" / CA_DIRECTORY_NAME
    if target.exists():
        shutil.rmtree(target)
    if not bundle.is_file():
        return None
    subject_hash = openssl_subject_hash()
    if subject_hash is None:
        print(f"{artifact.name}: no OpenSSL to hash CA roots with; shipping the bundle alone")
        return None
    text = bundle.read_text(encoding="utf-8")
    certificates = PEM_CERTIFICATE.findall(text)
    if len(certificates) != text.count("-----BEGIN CERTIFICATE-----"):
        # Never a directory missing a root the bundle has.
        raise SystemExit(f"{bundle}: a certificate in a form this build cannot split")
    target.mkdir()
    for pem in certificates:
        stem = f"{subject_hash(ssl.PEM_cert_to_DER_cert(pem)):08x}"
        number = 0
        while (target / f"{stem}.{number}").exists():
            number += 1
        (target / f"{stem}.{number}").write_text(pem, encoding="ascii")
    return target


def openssl_subject_hash() -> Callable[[bytes], int] | None:
    """OpenSSL's own X509_subject_name_hash of a DER certificate, from the libcrypto this
    Python's ssl module runs on (the hash is the same on every OpenSSL since 1.0 and every
    architecture); None when that library cannot be reached."""
    import _ssl
    import ctypes

    try:
        # _ssl's handle finds libcrypto's symbols too; a Python built with _ssl inside has them.
        library = ctypes.CDLL(getattr(_ssl, "__file__", None))
        decode, subject_hash, free = (
            library.d2i_X509,
            library.X509_subject_name_hash,
            library.X509_free,
        )
    except (OSError, AttributeError):
        return None
    decode.restype = ctypes.c_void_p
    decode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_long]
    subject_hash.restype = ctypes.c_ulong
    subject_hash.argtypes = [ctypes.c_void_p]
    free.restype = None
    free.argtypes = [ctypes.c_void_p]

    def hash_of(der: bytes) -> int:
        cursor = ctypes.c_char_p(der)
        certificate = decode(None, ctypes.byref(cursor), len(der))
        if not certificate:
            raise SystemExit("OpenSSL cannot read a certificate of certifi's bundle")
        try:
            return int(subject_hash(certificate))
        finally:
            free(certificate)

    return hash_of


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def locked_versions(lock: Path = RUNTIME_LOCK) -> dict[str, str]:
    """Normalised name -> version of every package the lock pins."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", lock.read_text(), flags=re.MULTILINE)
    return {normalise(name): version for name, version in pins}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_against_lock(directories: list[Path]) -> None:
    """Every built artifact holds exactly the distributions and versions the lock pins."""
    locked = locked_versions()
    for directory in directories:
        built = {}
        for info in directory.glob("*.dist-info"):
            name, _, version = info.name.removesuffix(".dist-info").partition("-")
            built[normalise(name)] = version
        if built != locked:
            differences = sorted(set(built.items()) ^ set(locked.items()))
            raise SystemExit(
                f"build stopped: {directory.name} differs from locks/runtime.txt: {differences}"
            )


def build_dir(arch: str = DEPLOYED_ARCH) -> Path:
    return SAM_DIR / "build" if arch == DEPLOYED_ARCH else SAM_DIR / f"build-{arch}"


def template_for(arch: str) -> Path:
    """template.yaml itself, or a copy that differs only in architecture and CodeUri path."""
    if arch == DEPLOYED_ARCH:
        return TEMPLATE
    text = TEMPLATE.read_text()
    for old, new in (
        (f"Architectures: [{DEPLOYED_ARCH}]", f"Architectures: [{arch}]"),
        ("CodeUri: build/staged/", f"CodeUri: {STAGED}/"),
    ):
        if text.count(old) != 1:
            raise SystemExit(f"template.yaml must contain exactly one {old!r}")
        text = text.replace(old, new)
    SAM_DIR.mkdir(exist_ok=True)
    derived = SAM_DIR / f"template-{arch}.yaml"
    derived.write_text(text)
    return derived


def sam_build(arch: str = DEPLOYED_ARCH) -> None:
    if not SAM.exists():
        raise SystemExit(f"{SAM.relative_to(ROOT)} not found: run scripts/bootstrap first")
    suffix = "" if arch == DEPLOYED_ARCH else f"-{arch}"
    # SAM keeps its build.toml and dependency cache under ./.aws-sam of the working directory:
    # another architecture gets its own, or each build would invalidate the other's cache.
    workdir = ROOT if arch == DEPLOYED_ARCH else SAM_DIR / arch
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        str(SAM),
        "build",
        "--template-file",
        str(template_for(arch)),
        "--build-dir",
        str(build_dir(arch)),
        "--cached",
        "--cache-dir",
        str(SAM_DIR / f"cache{suffix}"),
    ]
    subprocess.run(command, cwd=workdir, env=sam_environment(), check=True)


def function_artifacts(arch: str = DEPLOYED_ARCH) -> list[Path]:
    """The built code directory of every function (sam build writes one per function)."""
    directory = build_dir(arch)
    return sorted(
        p for p in directory.iterdir() if p.is_dir() and (p / "cliniko_automations").is_dir()
    )


# Where the functions' artifact keeps its dataclasses' code, compiled with its .pyc
# (cliniko_automations/common/dataclass_code.py).
DATACLASS_CODE = Path("cliniko_automations/common/dataclass_code.marshal")


def compile_pyc(directories: list[Path]) -> None:
    """Each artifact's .pyc, and its dataclasses' code where it holds the functions' package.
    Made once and copied where another artifact's sources are the same bytes (sam build writes
    one copy of the shared code per function): compileall takes about 3 s of CPU a directory,
    six functions and two architectures in the tests' build."""
    compiled: list[Path] = []
    for directory in directories:
        twin = next((done for done in compiled if same_sources(done, directory)), None)
        if twin is None:
            _compileall(directory)
            if (directory / DATACLASS_CODE).with_suffix(".py").exists():
                _record_dataclass_code(directory)
            compiled.append(directory)
            continue
        for cache in twin.rglob("__pycache__"):
            shutil.copytree(cache, directory / cache.relative_to(twin), dirs_exist_ok=True)
        if (twin / DATACLASS_CODE).exists():
            shutil.copyfile(twin / DATACLASS_CODE, directory / DATACLASS_CODE)


def _record_dataclass_code(directory: Path) -> None:
    environment = {k: v for k, v in sam_environment().items() if not k.startswith("AWS_")}
    with tempfile.TemporaryDirectory() as tmp:
        # First on the path: this machine's build of each distribution whose native code in
        # the artifact is another architecture's (pydantic-core in an arm64 artifact), the same
        # Python at the same version, so that pydantic's modules import and are recorded.
        host_copies = host_builds_of(foreign_native_distributions(directory), Path(tmp))
        subprocess.run(
            [
                runtime_python(),
                "-S",
                "-B",
                str(ROOT / "scripts" / "record_dataclass_code.py"),
                str(directory),
            ],
            env={**environment, "PYTHONPATH": os.pathsep.join([*host_copies, str(directory)])},
            check=True,
            timeout=600,
        )


def foreign_native_distributions(directory: Path) -> list[str]:
    """The distributions in `directory` whose native code this machine cannot load."""
    found = []
    for info in sorted(directory.glob("*.dist-info")):
        for line in (info / "RECORD").read_text().splitlines():
            path = directory / line.split(",")[0]
            if path.suffix == ".so" and path.is_file() and elf_arch(path) not in (HOST_ARCH, None):
                found.append(normalise(info.name.partition("-")[0]))
                break
    return found


def host_builds_of(distributions: list[str], into: Path) -> list[str]:
    """This machine's wheels of `distributions` at the versions and hashes the lock pins,
    unpacked in `into` (its path as a list; none when there is nothing to fetch, or pip
    cannot: the recording then leaves their modules out, as before)."""
    if not distributions:
        return []
    from local_run.runtime_python import VERSION

    lock = RUNTIME_LOCK.read_text()
    requirements = into / "requirements.txt"
    requirements.write_text(
        "\n".join(
            match.group(0)
            for match in re.finditer(r"^([A-Za-z0-9._-]+)==\S+(?: \\\n\s+--hash=\S+)*", lock, re.M)
            if normalise(match.group(1)) in distributions
        )
        + "\n"
    )
    python_tag = VERSION.replace(".", "")
    fetched = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
            f"--platform=manylinux2014_{platform.machine()}",
            f"--python-version={VERSION}",
            "--implementation=cp",
            f"--abi=cp{python_tag}",
            f"--dest={into / 'wheels'}",
            f"--requirement={requirements}",
        ],
        check=False,
    )
    if fetched.returncode != 0:
        print(f"dataclass code: no {platform.machine()} wheel of {', '.join(distributions)}")
        return []
    for wheel in (into / "wheels").glob("*.whl"):
        with zipfile.ZipFile(wheel) as unpacked:
            unpacked.extractall(into / "site")
    return [str(into / "site")]


def same_sources(one: Path, other: Path) -> bool:
    """Whether two trees hold the same .py files, byte for byte."""
    ours = sorted(p.relative_to(one) for p in one.rglob("*.py"))
    if ours != sorted(p.relative_to(other) for p in other.rglob("*.py")):
        return False
    return all((one / p).read_bytes() == (other / p).read_bytes() for p in ours)


def _compileall(directory: Path) -> None:
    subprocess.run(
        [
            runtime_python(),
            "-m",
            "compileall",
            "-q",
            # Lambda cannot write next to the code and never changes it: trust the
            # shipped .pyc without stat-ing or hashing the source on every import.
            "--invalidation-mode",
            "unchecked-hash",
            # Tracebacks name the file where Lambda has it, not this machine's build path.
            "-s",
            str(directory),
            "-p",
            "/var/task",
            str(directory),
        ],
        env=sam_environment(),
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    from cliniko_automations.common.operator_cli import parsed_arguments, run_tool

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--stage-only", action="store_true", help="stage, skip sam build")
    parser.add_argument("--no-compile", action="store_true", help="skip the .pyc step")
    parser.add_argument(
        "--no-stage", action="store_true", help="build what build/staged holds already"
    )
    parser.add_argument(
        "--arch",
        choices=("arm64", "x86_64"),
        default=DEPLOYED_ARCH,
        help=f"target (deployed: {DEPLOYED_ARCH}); others build into .aws-sam/build-ARCH",
    )
    parser.add_argument(
        "--secrets-prefix",
        help="the SecretsPrefix you deploy with (default: template.yaml's default)",
    )
    args = parsed_arguments("build.py", parser, argv)
    # `| head`, `> /dev/full` and Ctrl-C end as they end the operating CLIs (and the checks).
    return run_tool("build.py", lambda: build(args), aws_calls=False)


def build(args: argparse.Namespace) -> int:
    if not args.no_stage:
        staged = stage(secrets_prefix=args.secrets_prefix)
        print(f"staged {staged.relative_to(ROOT)}")
    elif not (STAGED / "requirements.txt").exists():
        raise SystemExit("--no-stage: build/staged is empty; run with --stage-only first")
    if args.stage_only:
        return 0
    sam_build(args.arch)
    artifacts = function_artifacts(args.arch)
    if not artifacts:
        raise SystemExit("sam build produced no function artifact")
    check_against_lock(artifacts)
    prune(artifacts)
    for artifact in artifacts:
        ship_ca_directory(artifact)
    if not args.no_compile:
        compile_pyc(artifacts)
    for artifact in artifacts:
        print(f"built {artifact.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
