"""`python -m local_run`: the whole system on this machine, from template.yaml.

In the checkout, with its virtual environment (`. .venv/bin/activate`; scripts/run-local
starts it so):

python -m local_run [--demo] [--once] [--port 3000] [--site-port 3001] [--emulator-port 3002]
python -m local_run fire ErasureOverdueFunction     (a running local run's scheduled function)
python -m local_run fire ChangeFeedFunction; python -m local_run events
                                    (contact events on the bus, signed webhooks received)
python -m local_run status
python -m local_run shell           (a subshell in which scripts/dead_letters.py, scripts/erasure.py
                                    and every AWS tool act on the running local run: `exit` ends it)
eval "$(python -m local_run env)"   (the same in this shell, until you run the `unset` it prints)
"""

from __future__ import annotations

if __name__ == "__main__":  # first: Ctrl-C during the imports below is one line too
    from cliniko_automations.common.operator_cli import interrupted_while_starting

    interrupted_while_starting("local_run")

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import httpx
from cliniko_automations.common.operator_cli import run_tool

from . import defaults, demo
from .system import FORM_SOURCES, STATE_DIR, LocalSystem, PortTaken, RunningHere, read_state

# Marks a shell whose AWS tools talk to the local run's moto instead of AWS.
PROMPT_MARK = "(local-run: AWS is moto) "


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local_run", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    fire = sub.add_parser("fire", help="invoke a scheduled function of the running local run")
    fire.add_argument("function", help="function (or schedule event) name from template.yaml")
    sub.add_parser("status", help="what the running local run serves")
    sub.add_parser("events", help="contact events on the bus and signed webhooks received")
    sub.add_parser(
        "env", help="export lines for the operating CLIs (they point every AWS tool at moto)"
    )
    shell_parser = sub.add_parser(
        "shell",
        help="a subshell (marked prompt) whose AWS tools act on the local run; `exit` leaves it",
    )
    shell_parser.add_argument(
        "shell_command", nargs=argparse.REMAINDER, help="run this command in it instead"
    )
    parser.add_argument("--port", type=port, default=3000, help="HTTP API port (0: any)")
    parser.add_argument("--site-port", type=port, default=3001, help="clinic website port")
    parser.add_argument("--emulator-port", type=port, default=3002, help="Cliniko emulator port")
    parser.add_argument(
        "--form-sources",
        type=Path,
        default=FORM_SOURCES,
        help="the form-source file to run with (default: the repository's form_sources.yaml)",
    )
    parser.add_argument("--demo", action="store_true", help="submit sample forms, show contacts")
    parser.add_argument("--once", action="store_true", help="stop after start-up (and --demo)")
    parser.add_argument("--verbose", action="store_true", help="log gateway and consumer lines")
    return parser.parse_args(argv)


def banner(system: LocalSystem) -> str:
    api, site = system.gateway.url, system.site.url
    lines = [
        "Cliniko automations: local run of template.yaml (no AWS account, no Docker)",
        "",
        f"  HTTP API        {api}",
    ]
    for route in system.app.http_routes():
        auth = "  [AWS_IAM: send a SigV4-signed request]" if route.authorizer else ""
        lines.append(f"    {route.route_key:<34} -> {route.function}{auth}")
    lines += [
        f"  Clinic website  {site}/   (the embeddable HTML form; thank-you page {site}/thanks)",
        f"  Cliniko         {system.emulator_url}   (emulator; contacts: "
        f"{system.emulator_url}/_emulator/contacts)",
        f"  AWS             {system.moto_endpoint}   (moto_server: queues, tables, secrets)",
    ]
    if getattr(system, "contact_events", None):
        lines.append(
            f"  Contact events  bus tapped by an SQS queue; signed webhooks to "
            f"{system.contact_events.receiver.url} (python -m local_run events)"
        )
    for consumer in system.consumers:
        lines.append(f"  SQS consumer    {consumer.source.queue} -> {consumer.source.function}")
    for schedule in system.schedules():
        lines.append(
            f"  Scheduled       {schedule.function} ({schedule.expression}): "
            f"python -m local_run fire {schedule.function}"
        )
    lines += [
        f"  Function logs   {system.log.name if hasattr(system.log, 'name') else '(captured)'}",
        "  Local only: secrets are made-up values created in moto at start; captchas are",
        "  checked by the website's stand-in for siteverify (Cloudflare's test token passes).",
        "",
        "Create a contact from the command line (a browser-style form post):",
        "  " + demo.html_curl(api, site, defaults.HTML_SOURCE, system.captcha_field),
    ]
    secret_name = _json_secret(system)
    if secret_name:
        lines += [
            "or as a signed JSON delivery (source partner-json):",
            "  " + demo.json_curl_script(api, system.secrets[secret_name]),
        ]
    lines += [
        "then see it in the emulator:",
        f"  curl -s {system.emulator_url}/_emulator/contacts",
        "Operate it as a deployed stack (dead letters, erasure through the same core): in",
        "another terminal, in this checkout, with its virtual environment, from a subshell",
        "whose AWS tools all talk to moto (`exit` leaves it):",
        "  . .venv/bin/activate",
        "  python -m local_run shell",
        "  python scripts/dead_letters.py list",
        "  python scripts/erasure.py --caller local-operator request "
        '--email ada.lovelace@example.com --reason "ticket 1" --dry-run',
        "",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def _json_secret(system: LocalSystem) -> str | None:
    from cliniko_automations.intake.config import load_form_sources

    source = load_form_sources(system.form_sources_file).sources.get("partner-json")
    return source.signing_secret if source else None


def run_demo(system: LocalSystem) -> int:
    from cliniko_emulator import EmulatorControl

    print("\nDemo: one submission from each of several providers")
    failures = 0
    for delivery in demo.deliveries(system):
        answer = demo.send(system.gateway.url, delivery)
        where = answer.headers.get("location", "")
        print(f"  {delivery.label:<34} {answer.status_code} {where or answer.text[:80]}")
        if answer.status_code not in (202, 303):
            failures += 1
    drained = system.drain(60)
    with EmulatorControl(system.emulator_url) as control:
        contacts = control.contacts()
    print(f"\nContacts in the emulator ({len(contacts)}){'' if drained else ' (queue not empty)'}:")
    for contact in contacts:
        phones = ", ".join(p.get("number", "") for p in contact.get("phone_numbers") or [])
        print(
            f"  #{contact['id']} [{contact.get('shard')}] {contact.get('first_name')} "
            f"{contact.get('last_name') or ''} <{contact.get('email')}> "
            f"{contact.get('company_name') or ''} {phones}".rstrip()
        )
    return failures


def serve(args: argparse.Namespace, state_dir: Path = STATE_DIR) -> int:
    from cliniko_automations.common.config_file import ConfigError, print_problems

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
    )
    system = LocalSystem(
        gateway_port=args.port,
        site_port=args.site_port,
        emulator_port=args.emulator_port,
        state_dir=state_dir,
        form_sources=args.form_sources,
    )
    try:
        system.start()
    except ConfigError as exc:
        print_problems(exc, "form-source configuration")
        print("cannot start: fix the file above, then run again", file=sys.stderr)
        return 2
    except RunningHere as exc:
        print(
            f"cannot start: {exc}. Stop it first (Ctrl-C in its terminal), or start the second"
            " from another checkout: the commands here (status, fire, shell) find a run through"
            " this checkout's .local-run/.",
            file=sys.stderr,
        )
        return 2
    except PortTaken as exc:
        print(
            f"cannot start: {exc}: another program (or local run) holds it. Choose another"
            f" with {exc.option} (0: any free one).",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(
            f"cannot start: {exc.strerror or exc}. Another program (or local run) holds a port:"
            " choose others with --port, --site-port, --emulator-port (0: any free one).",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    # Closing the terminal (SIGHUP) stops the run like SIGTERM: moto_server and the state file
    # were left behind otherwise.
    for ending in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(ending, lambda *_: stop.set())
    try:
        print(banner(system), flush=True)
        status = 0
        if args.demo:
            status = 1 if run_demo(system) else 0
        if args.once:
            return status
        while not stop.wait(0.5):
            pass
        return status
    except KeyboardInterrupt:
        return 0
    finally:
        system.stop()


def port(text: str) -> int:
    """A TCP port for argparse: 0 (any free one) to 65535."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port: 0 (any free one) to 65535")
    return number


def fire(name: str, state_dir: Path = STATE_DIR) -> int:
    state = read_state(state_dir)
    answer = httpx.post(f"{state['site']}/_local/schedules/{name}", timeout=120)
    body: Any = answer.json() if answer.content else {}
    print(json.dumps(body, indent=2))
    return 0 if answer.status_code == 200 else 1


def env_lines(state: dict[str, Any]) -> list[str]:
    """What `eval "$(python -m local_run env)"` runs: the exports, and a warning (on stderr, so
    it shows when eval'd) that every AWS tool in this shell now talks to moto, with the undo."""
    environment = state["environment"]
    undo = "unset " + " ".join(environment)
    warning = (
        f"local_run: every AWS tool in this shell (aws, sam, boto3) now talks to the local run's"
        f" moto at {state['moto']}, not to AWS. Undo: {undo}"
    )
    lines = [f"# {warning}", f"echo {shlex.quote(warning)} >&2"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
    return lines


def shell(state: dict[str, Any], command: Sequence[str] = (), stdin: IO[Any] | None = None) -> int:
    """A subshell with the operating environment: the redirection to moto ends with it, and
    its prompt says so. With `command`, runs that instead of an interactive shell."""
    env = {**os.environ, **state["environment"], "LOCAL_RUN_API": state["api"]}
    if command:
        try:
            return subprocess.call(list(command), env=env, stdin=stdin)
        except OSError as error:  # as a shell says it: 127 not found, 126 not executable
            print(f"local_run: {command[0]}: {error.strerror}", file=sys.stderr)
            return 127 if isinstance(error, FileNotFoundError) else 126
    user_shell = os.environ.get("SHELL") or "/bin/sh"
    print(
        f"local_run: a subshell whose AWS tools (aws, sam, boto3) talk to the local run's moto"
        f" at {state['moto']}, not to AWS; `exit` leaves it.",
        file=sys.stderr,
    )
    if Path(user_shell).name != "bash":
        env["PS1"] = PROMPT_MARK + env.get("PS1", "$ ")
        return subprocess.call([user_shell, "-i"], env=env, stdin=stdin)
    # bash sets its prompt in ~/.bashrc: read that first, then mark the prompt.
    with tempfile.NamedTemporaryFile("w", suffix=".bashrc") as rc:
        rc.write(f'[ -f ~/.bashrc ] && . ~/.bashrc\nPS1={shlex.quote(PROMPT_MARK)}"$PS1"\n')
        rc.flush()
        return subprocess.call([user_shell, "--rcfile", rc.name, "-i"], env=env, stdin=stdin)


def main(argv: list[str] | None = None, state_dir: Path = STATE_DIR) -> int:
    args = parse_args(argv)
    if args.command == "fire":
        return fire(args.function, state_dir)
    if args.command == "events":
        state = read_state(state_dir)
        print(json.dumps(httpx.get(f"{state['site']}/_local/events", timeout=30).json(), indent=2))
        return 0
    if args.command == "status":
        print(json.dumps(read_state(state_dir), indent=2))
        return 0
    if args.command == "env":
        print("\n".join(env_lines(read_state(state_dir))))
        return 0
    if args.command == "shell":
        command = args.shell_command
        return shell(read_state(state_dir), command[1:] if command[:1] == ["--"] else command)
    return serve(args, state_dir)


def main_as_tool(argv: list[str] | None = None, state_dir: Path = STATE_DIR) -> int:
    """`main`, ending as the operating CLIs end: quietly when its reader stops reading
    (`python -m local_run env | head`), in one line when the local run is out of reach."""
    return run_tool("local_run", lambda: main(argv, state_dir), aws_calls=False)


if __name__ == "__main__":
    sys.exit(main_as_tool())
