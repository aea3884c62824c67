"""The whole system on this machine: emulator, moto, the template's resources, gateway, consumers.

system = LocalSystem().start()   # or LocalSystem(moto_endpoint=..., emulator_url=...)
system.gateway.url, system.site.url, system.fire("ErasureOverdueFunction")
system.stop()
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import boto3
import httpx

from . import defaults
from .consumers import QueueConsumer
from .contact_events import (
    LOCAL_SUBSCRIBER_SECRET,
    ContactEvents,
    local_webhook_secret,
    write_local_webhooks,
)
from .functions import FunctionRuntime, register_variables
from .gateway import Gateway
from .resources import Provisioner
from .site import Site
from .state_machine import run_loop
from .template import ROOT, TEMPLATE_PATH, SamApp, ScheduleSource, UnknownSchedule

STATE_DIR = ROOT / ".local-run"
FORM_SOURCES = ROOT / "functions" / "cliniko_automations" / "intake" / "form_sources.yaml"


class PortTaken(OSError):
    """A port the local run was asked to listen on is held by another program."""

    def __init__(self, port: int, what: str, option: str) -> None:
        self.port, self.what, self.option = port, what, option
        super().__init__(f"port {port} ({what}, {option}) is taken")


def check_ports_free(ports: dict[str, tuple[int, str]]) -> None:
    """Refuse before anything starts or is written when a requested port is taken: a second
    local run must not disturb the first (its state, its form-source copy)."""
    for what, (port, option) in ports.items():
        if not port:
            continue  # 0: any free port
        with socket.socket() as sock:
            # As the servers bind (a port in TIME_WAIT is free for them, and so for this check).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise PortTaken(port, what, option) from None


class RunningHere(RuntimeError):
    """A local run of this checkout is up: a second one would take over its .local-run/."""

    def __init__(self, api: str) -> None:
        self.api = api
        super().__init__(f"a local run of this checkout is up (its API at {api})")


def check_no_run_here(state_dir: Path) -> None:
    """Refuse a second local run in one checkout, whatever its ports: .local-run/ is where
    `status`, `fire`, `events` and `shell` find the run, and its form-source copy is the one
    the first run's functions were given; the second would overwrite both, and take the
    first's state.json with it when it stops. A state file left by a run that died is no run."""
    try:
        api = json.loads((state_dir / "state.json").read_text())["api"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if answers(api):
        raise RunningHere(api)


def answers(api: str) -> bool:
    """Whether a local run's API is up at `api` (any answer, an error page included)."""
    try:
        httpx.get(api, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.1)


MOTO_SERVER_TIED_TO_US = Path(__file__).with_name("moto_server_tied.py")


class MotoServer:
    """moto_server in its own process on 127.0.0.1, stopped with this one (see
    moto_server_tied.py)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        tied = [sys.executable, str(MOTO_SERVER_TIED_TO_US), str(os.getpid())]
        self.process = subprocess.Popen(
            [*tied, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Out of the terminal's process group: Ctrl-C reaches the local run alone, which
            # stops moto last, after the consumers still talking to it.
            start_new_session=True,
        )
        wait_for(f"{self.url}/moto-api/")
        return self

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    """Ends a child process still running: asked to first, killed if it has not within 10 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class LocalSystem:
    def __init__(
        self,
        *,
        template_path: Path = TEMPLATE_PATH,
        moto_endpoint: str | None = None,
        emulator_url: str | None = None,
        gateway_port: int = 0,
        site_port: int = 0,
        emulator_port: int = 0,
        state_dir: Path = STATE_DIR,
        form_sources: Path = FORM_SOURCES,
        log: TextIO | None = None,
        parameter_overrides: dict[str, Any] | None = None,
        poll_wait_seconds: int = 1,
    ) -> None:
        self.app = SamApp.load(template_path)
        self.moto_endpoint = moto_endpoint
        self.emulator_url = emulator_url
        self.gateway_port = gateway_port
        self.site_port = site_port
        self.emulator_port = emulator_port
        self.state_dir = state_dir
        self.form_sources = form_sources
        self.parameter_overrides = parameter_overrides or {}
        self.poll_wait_seconds = poll_wait_seconds
        self._log = log
        self._owned: list[Any] = []
        self.functions: dict[str, FunctionRuntime] = {}
        self.consumers: list[QueueConsumer] = []
        self.secrets: dict[str, str] = {}  # secret name -> local value (for curl and demo)
        self.account_keys: dict[str, str] = {}  # form-source account -> Cliniko key
        self.captcha_field: str | None = None  # the sample form's captcha token field
        self._state_lock = threading.Lock()
        self._state_live = False  # state.json follows invocations between start and stop

    # -- start and stop
    def start(self) -> LocalSystem:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from cliniko_automations.common.accounts import load_accounts
        from cliniko_automations.intake.config import load_form_sources

        check_ports_free(
            {
                "the HTTP API": (self.gateway_port, "--port"),
                "the clinic website": (self.site_port, "--site-port"),
                "the Cliniko emulator": (self.emulator_port, "--emulator-port"),
            }
        )
        check_no_run_here(self.state_dir)
        # The file the person edits, checked before its local copy is written: a mistake is
        # reported (ConfigError) against it, not against .local-run/form_sources.yaml.
        load_form_sources(self.form_sources, load_accounts().accounts)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = self._log or open(self.state_dir / "functions.log", "a")  # noqa: SIM115
        if self._log is None:
            self._owned.append(self.log)
        if self.emulator_url is None:
            from cliniko_emulator import EmulatorServer

            server = EmulatorServer(port=self.emulator_port).start()
            self._owned.append(server)
            self.emulator_url = server.url
        if self.moto_endpoint is None:
            moto = MotoServer().start()
            self._owned.append(moto)
            self.moto_endpoint = moto.url

        # The website first: its origin is a parameter (AllowedOrigins) of the stack.
        self.site = Site(
            form_action=lambda: f"{self.gateway.url}/forms/{defaults.HTML_SOURCE}",
            fire=self.fire,
            status=self.status,
            events=self.events,
            port=self.site_port,
            captcha_field=lambda: self.captcha_field,
            captcha_token=defaults.CAPTCHA_TEST_TOKEN,
        ).start()
        self._owned.append(self.site)
        self.parameters = self.app.parameters(
            {
                **defaults.parameter_overrides(self.site.url, datetime.now(UTC)),
                **self.parameter_overrides,
            }
        )
        provisioner = Provisioner(
            self.app,
            self.parameters,
            endpoint=self.moto_endpoint,
            stack=defaults.STACK_NAME,
            region=defaults.REGION,
            account=defaults.ACCOUNT_ID,
            secret_value=defaults.secret_value,
        )
        self.physical = provisioner.provision()
        self.resolver = provisioner.resolver
        self.form_sources_file = defaults.local_form_sources(
            self.form_sources, self.state_dir / "form_sources.yaml", self.site.url
        )
        self._configuration_secrets(provisioner)
        self.webhooks_file = write_local_webhooks(self.state_dir / "webhooks.yaml")
        provisioner.put_secret(LOCAL_SUBSCRIBER_SECRET, local_webhook_secret())

        local_environment = {
            "AWS_ENDPOINT_URL": self.moto_endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "CLINIKO_BASE_URL": f"{self.emulator_url}/{{shard}}/v1",
            "FORM_SOURCES_FILE": str(self.form_sources_file),
            "WEBHOOKS_FILE": str(self.webhooks_file),
        }
        for name, spec in self.app.functions().items():
            self.functions[name] = FunctionRuntime(
                spec,
                self.physical[name].ref,
                provisioner.resolver,
                local_environment,
                log=self.log,
                region=defaults.REGION,
                account=defaults.ACCOUNT_ID,
            )
        register_variables(self.functions)
        for runtime in self.functions.values():
            runtime.handler()  # import now: a broken handler fails the start, not a request

        self.gateway = Gateway(
            self.app.http_routes(),
            self.functions,
            provisioner.resolver.resolve(self.app.cors()),
            region=defaults.REGION,
            account=defaults.ACCOUNT_ID,
            port=self.gateway_port,
        ).start()
        self._owned.append(self.gateway)

        sqs = self.sqs()
        for source in self.app.sqs_sources():
            queue = self.physical[source.queue]
            consumer = QueueConsumer(
                source,
                self.functions[source.function],
                sqs,
                queue.ref,
                queue.attributes["Arn"],
                defaults.REGION,
                wait_seconds=self.poll_wait_seconds,
            ).start()
            self.consumers.append(consumer)
        buses = [self.physical[n].ref for n in self.app.of_type("AWS::Events::EventBus")]
        if buses:
            boto = {"endpoint_url": self.moto_endpoint, "region_name": defaults.REGION}
            credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
            self.contact_events = ContactEvents(
                boto3.client("events", **boto, **credentials),
                boto3.client("sqs", **boto, **credentials),
                buses,
                self.webhooks_file,
            ).start()
            self._owned.append(self.contact_events)
        for runtime in self.functions.values():
            runtime.on_invoked = self._write_state
        self._state_live = True
        self._write_state()

    def _configuration_secrets(self, provisioner: Provisioner) -> None:
        """Secrets that cliniko_accounts.yaml, form_sources.yaml and the parameters name:
        made-up values in moto, and each account's Cliniko key registered in the emulator."""
        from cliniko_automations.common.accounts import load_accounts
        from cliniko_automations.intake.config import load_form_sources
        from cliniko_emulator import EmulatorControl

        sources = load_form_sources(self.form_sources_file)
        control = EmulatorControl(self.emulator_url)
        key_secrets: dict[str, str] = {}
        for index, (account, settings) in enumerate(sorted(load_accounts().accounts.items())):
            key = defaults.cliniko_key(account, index)
            control.add_key(key)
            self.account_keys[account] = key
            key_secrets[settings.api_key_secret] = key
        # The erasure's default key, as the stack resolves ClinikoApiKeySecretName (empty: the
        # main-clinic key under SecretsPrefix, which the accounts file names already).
        erasure_key_secret = self.parameters.get("ClinikoApiKeySecretName")
        if erasure_key_secret and erasure_key_secret not in key_secrets:
            key = defaults.cliniko_key("erasure", 0)
            control.add_key(key)
            key_secrets[erasure_key_secret] = key
        control.close()
        names: dict[str, str] = dict(key_secrets)
        for source in sources.sources.values():
            for name in (source.signing_secret, source.token_secret):
                if name:
                    names[name] = defaults.secret_value(name)
            captcha = source.html.captcha if source.html else None
            if captcha:
                names[captcha.secret] = defaults.secret_value(captcha.secret)
                self.site.captcha_secrets.add(names[captcha.secret])
                if source.name == defaults.HTML_SOURCE:
                    self.captcha_field = captcha.token_field
        for name, value in names.items():
            provisioner.put_secret(name, value)
        self.secrets = names

    def stop(self) -> None:
        self._state_live = False
        for consumer in self.consumers:
            consumer.stop()
        self.consumers = []
        for owned in reversed(self._owned):
            try:
                if hasattr(owned, "stop"):
                    owned.stop()
                else:
                    owned.close()
            except Exception:  # noqa: S112 - best effort on the way out
                continue
        self._owned = []
        state = self.state_dir / "state.json"
        gateway = getattr(self, "gateway", None)
        # Another local run may have started since: its state stays.
        if gateway and state.exists() and json.loads(state.read_text()).get("api") == gateway.url:
            state.unlink()

    # -- using it
    def sqs(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.moto_endpoint,
            region_name=defaults.REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto's fake credentials
        )

    def schedules(self) -> list[ScheduleSource]:
        # An expression may be a parameter (CleanupSchedule): show the value this run uses.
        return [
            dataclasses.replace(s, expression=str(self.resolver.resolve(s.expression)))
            for s in self.app.schedules()
        ]

    def run_state_machine(self, logical_id: str, start_input: dict[str, Any] | None = None) -> Any:
        """Start a state machine's run and drive its loop to the end (local_run.state_machine:
        the loop the definition encodes, in this process; not Step Functions)."""
        spec = self.app.state_machines()[logical_id]
        # Its caller waits for the answer (`fire` gives it 120 s), which the definition's
        # pauses before a failed step's retries (60 s and more) would outlast: tried at once.
        result = run_loop(self.functions[spec.function].invoke, start_input, step_retry_seconds=0)
        return dataclasses.asdict(result)

    def fire(self, name: str) -> Any:
        """Invoke a scheduled function (by function or event name) with a scheduled event, or
        run a scheduled state machine with its schedule's input."""
        for schedule in self.schedules():
            if schedule.state_machine and name in (schedule.function, schedule.name):
                start_input = json.loads(schedule.input) if schedule.input else {}
                return self.run_state_machine(schedule.function, start_input)
            if name in (schedule.function, schedule.name):
                rule = f"{defaults.STACK_NAME}-{schedule.function}{schedule.name}"
                event = defaults.scheduled_event(rule)
                return self.functions[schedule.function].invoke(event)
        raise UnknownSchedule(name)

    def events(self) -> dict[str, Any]:
        """The contact events the local tap saw on the bus, and the signed webhooks the local
        receiver got (verified or not)."""
        view = getattr(self, "contact_events", None)
        return view.summary() if view else {"bus": [], "webhooks": []}

    def queue_url(self, logical_id: str) -> str:
        return self.physical[logical_id].ref

    def status(self) -> dict[str, Any]:
        return {
            "api": self.gateway.url,
            "site": self.site.url,
            "emulator": self.emulator_url,
            "moto": self.moto_endpoint,
            "routes": [route.route_key for route in self.app.http_routes()],
            "schedules": [s.function for s in self.schedules()],
            "invocations": {name: f.invocations for name, f in self.functions.items()},
            "queues": {
                name: self.physical[name].ref for name in self.app.of_type("AWS::SQS::Queue")
            },
            "tables": {
                name: self.physical[name].ref for name in self.app.of_type("AWS::DynamoDB::Table")
            },
            "environment": self.operator_environment(),
        }

    def operator_environment(self) -> dict[str, str]:
        """What the operating CLIs (dead_letters.py, erasure.py) need to act on this local
        run as they would on a stack: every function's resource variables, and moto."""
        env: dict[str, str] = {}
        for runtime in self.functions.values():
            env.update(runtime.template_environment)
        # Each function's own Powertools settings are not the CLIs' (its service name, log
        # event switches); the metrics namespace is, as the cleanup's local steps publish.
        for name in [n for n in env if n.startswith("POWERTOOLS_")]:
            if name != "POWERTOOLS_METRICS_NAMESPACE":
                del env[name]
        env.update(
            {
                "AWS_ENDPOINT_URL": self.moto_endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": defaults.REGION,
                "CLINIKO_BASE_URL": f"{self.emulator_url}/{{shard}}/v1",
                "FORM_SOURCES_FILE": str(self.form_sources_file),
            }
        )
        return dict(sorted(env.items()))

    def _write_state(self) -> None:
        """state.json, for `python -m local_run status|env|shell|fire`: written at start and
        after every invocation (its counts), replaced whole so a reader never sees half."""
        with self._state_lock:
            if not self._state_live:
                return
            path = self.state_dir / "state.json"
            partial = path.with_suffix(".json.partial")
            partial.write_text(json.dumps(self.status(), indent=2))
            partial.replace(path)

    def drain(self, seconds: float = 30) -> bool:
        """Wait until the queues that feed functions are empty (nothing visible or in flight)."""
        sqs = self.sqs()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            busy = 0
            for consumer in self.consumers:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=consumer.queue_url,
                    AttributeNames=[
                        "ApproximateNumberOfMessages",
                        "ApproximateNumberOfMessagesNotVisible",
                    ],
                )["Attributes"]
                busy += sum(int(v) for v in attributes.values())
            if not busy:
                return True
            time.sleep(0.2)
        return False


def read_state(state_dir: Path = STATE_DIR) -> dict[str, Any]:
    path = state_dir / "state.json"
    if not path.exists():
        raise SystemExit("no local run is up: start it with scripts/run-local")
    state: dict[str, Any] = json.loads(path.read_text())
    # A run killed without its clean-up (kill -9) leaves its state file: no run, as
    # check_no_run_here takes it, rather than its URLs and counts shown as a running one's.
    if not answers(state["api"]):
        raise SystemExit(
            f"no local run is up (the one whose API was {state['api']} stopped without "
            "cleaning up): start it with scripts/run-local"
        )
    return state


os.environ.setdefault("AWS_DEFAULT_REGION", defaults.REGION)
