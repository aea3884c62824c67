"""`python -m local_run` as a person uses it: status, env and shell on a running local run, and
the start-up mistakes (a taken port, a broken form_sources.yaml) told in a line or two."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from cliniko_automations.common.config_file import ConfigError
from local_run import defaults
from local_run.__main__ import PROMPT_MARK, env_lines, main, main_as_tool, shell
from local_run.system import FORM_SOURCES, LocalSystem, PortTaken, read_state

BASH = shutil.which("bash") or "/bin/bash"
BROKEN_YAML = "accounts:\n  main-clinic: {api_key_secret: [unclosed\n"


def post_the_form(system: LocalSystem) -> None:
    answer = httpx.post(
        f"{system.gateway.url}/forms/{defaults.HTML_SOURCE}",
        data={
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            system.captcha_field: defaults.CAPTCHA_TEST_TOKEN,
        },
        headers={"Origin": system.site.url},
    )
    assert answer.status_code == 303


def test_status_counts_the_invocations_as_they_happen(local_system, capsys):
    state_dir = local_system.state_dir
    assert main(["status"], state_dir=state_dir) == 0
    before = json.loads(capsys.readouterr().out)["invocations"]
    assert set(before.values()) == {0}
    post_the_form(local_system)
    assert local_system.drain(30)
    assert main(["status"], state_dir=state_dir) == 0
    after = json.loads(capsys.readouterr().out)["invocations"]
    assert after["IntakeApiFunction"] == 1
    assert after["IntakeWorkerFunction"] >= 1
    assert after["ErasureApiFunction"] == 0


class ClosedPipe:
    """stdout once its reader stopped reading (`| head`)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError

    def flush(self) -> None:
        raise BrokenPipeError


def test_a_reader_that_stops_reading_ends_it_quietly(local_system, monkeypatch):
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    for command in (["env"], ["status"]):
        assert main_as_tool(command, state_dir=local_system.state_dir) == 141


def test_fire_of_an_unknown_name_lists_the_scheduled_functions(local_system, capsys):
    assert main(["fire", "Nope"], state_dir=local_system.state_dir) == 1
    message = json.loads(capsys.readouterr().out)["message"]
    assert "no scheduled function Nope" in message
    for name in ("ErasureOverdueFunction", "ChangeFeedFunction", "CleanupStateMachine"):
        assert name in message


def test_a_state_file_left_by_a_run_that_died_is_no_run(tmp_path):
    # A run killed without its clean-up (kill -9, the OOM killer) leaves .local-run/state.json:
    # `status` printed it as the running local run's, exit 0, and `shell` pointed at its dead
    # (or orphaned) endpoints.
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        api = f"http://127.0.0.1:{probe.getsockname()[1]}"
    (tmp_path / "state.json").write_text(json.dumps({"api": api, "site": api, "moto": api}))
    for command in (["status"], ["env"], ["events"], ["fire", "ChangeFeedFunction"]):
        with pytest.raises(SystemExit) as ended:
            main(command, state_dir=tmp_path)
        assert ended.value.code == (
            f"no local run is up (the one whose API was {api} stopped without cleaning up): "
            "start it with scripts/run-local"
        )


def test_a_second_run_on_a_taken_port_leaves_the_first_alone(local_system, aws, cliniko, capsys):
    state_dir = local_system.state_dir
    copy = state_dir / "form_sources.yaml"
    state = state_dir / "state.json"
    written = copy.read_text(), state.read_text()
    port = urlsplit(local_system.gateway.url).port
    second = LocalSystem(
        moto_endpoint=aws, emulator_url=cliniko.url, state_dir=state_dir, gateway_port=port
    )
    with pytest.raises(PortTaken) as taken:
        second.start()
    assert taken.value.port == port
    # What the person sees: the port, what it is for, and the option that changes it.
    code = main(
        ["--port", str(port), "--site-port", "0", "--emulator-port", "0"], state_dir=state_dir
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"port {port} (the HTTP API, --port) is taken" in err
    assert "--port" in err.split("is taken", 1)[1]
    assert (copy.read_text(), state.read_text()) == written
    assert read_state(state_dir)["api"] == local_system.gateway.url


def test_a_broken_form_sources_file_is_named_in_a_short_error(tmp_path, capsys):
    edited = tmp_path / "form_sources.yaml"
    edited.write_text(BROKEN_YAML)
    state_dir = tmp_path / "state"
    with pytest.raises(ConfigError) as error:
        LocalSystem(form_sources=edited, state_dir=state_dir).start()
    assert error.value.path == edited

    args = ["--form-sources", str(edited), "--port", "0", "--site-port", "0"]
    assert main([*args, "--emulator-port", "0"], state_dir=state_dir) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) <= 3, err
    assert f"{edited}: invalid form-source configuration" in err
    assert "not valid YAML at line" in err
    assert ".local-run" not in err and not (state_dir / "form_sources.yaml").exists()


@pytest.mark.parametrize("given", ["-1", "65536", "web"])
def test_a_port_that_is_no_port_is_an_argument_error(tmp_path, capsys, given):
    with pytest.raises(SystemExit) as exit_:
        main(["--port", given], state_dir=tmp_path / "state")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--port" in err and "Traceback" not in err


def test_a_form_sources_mistake_is_named_in_the_edited_file(tmp_path, capsys):
    edited = tmp_path / "form_sources.yaml"
    edited.write_text(FORM_SOURCES.read_text().replace("provider: tally", "provider: talley"))
    code = main(
        ["--form-sources", str(edited), "--port", "0", "--site-port", "0", "--emulator-port", "0"],
        state_dir=tmp_path / "state",
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{edited}: invalid form-source configuration")
    assert "talley" in err or "provider" in err


def test_env_warns_that_aws_tools_now_talk_to_moto_and_how_to_undo_it(local_system):
    state = read_state(local_system.state_dir)
    script = "\n".join(env_lines(state))
    # As a person runs it: eval in their shell; the warning shows on the terminal (stderr).
    shell_run = subprocess.run(  # noqa: S603 - a fixed script
        [BASH, "-c", 'eval "$LINES"; echo "endpoint=$AWS_ENDPOINT_URL"'],
        env={**os.environ, "LINES": script},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"endpoint={local_system.moto_endpoint}" in shell_run.stdout
    assert "not to AWS" in shell_run.stderr
    undo = shell_run.stderr.split("Undo: ", 1)[1].strip()
    assert undo.startswith("unset ") and "AWS_ENDPOINT_URL" in undo
    undone = subprocess.run(  # noqa: S603 - the printed undo command
        [BASH, "-c", f'eval "$LINES" 2>/dev/null; {undo}; env'],
        env={**os.environ, "LINES": script},
        capture_output=True,
        text=True,
        check=True,
    )
    for name in state["environment"]:
        assert f"\n{name}=" not in "\n" + undone.stdout, name


def test_shell_scopes_the_local_environment_to_a_marked_subshell(local_system, tmp_path, capfd):
    state = read_state(local_system.state_dir)
    commands = tmp_path / "typed.sh"
    commands.write_text('echo "prompt=$PS1"\necho "endpoint=$AWS_ENDPOINT_URL"\nexit\n')
    saved = os.environ.get("SHELL")
    os.environ["SHELL"] = BASH
    try:
        with commands.open() as typed:
            assert shell(state, stdin=typed) == 0
    finally:
        if saved is None:
            del os.environ["SHELL"]
        else:
            os.environ["SHELL"] = saved
    out, err = capfd.readouterr()
    assert f"prompt={PROMPT_MARK}" in out
    assert f"endpoint={local_system.moto_endpoint}" in out
    assert "`exit` leaves it" in err

    # With a command: the operating CLI runs against the local run.
    code = shell(state, ["sh", "-c", 'echo "queue=$SUBMISSION_QUEUE_URL"'])
    assert code == 0
    assert f"queue={local_system.queue_url('SubmissionQueue')}" in capfd.readouterr().out


def test_a_second_run_on_free_ports_in_one_checkout_leaves_the_first_alone(
    local_system, aws, cliniko, capsys
):
    """The advice "0: any free one" followed in the same checkout: the second run must not take
    over the first's .local-run/ (nor delete its state.json when it stops)."""
    state_dir = local_system.state_dir
    copy = state_dir / "form_sources.yaml"
    state = state_dir / "state.json"
    written = copy.read_text(), state.read_text()
    code = main(
        ["--once", "--port", "0", "--site-port", "0", "--emulator-port", "0"], state_dir=state_dir
    )
    assert code == 2
    assert "local run of this checkout is up" in capsys.readouterr().err
    assert (copy.read_text(), state.read_text()) == written
    assert read_state(state_dir)["api"] == local_system.gateway.url


def test_fire_of_a_function_that_fails_says_so(local_system, capsys):
    # A scheduled function that raised (its table gone; a cleanup whose steps kept failing)
    # dropped the connection, a traceback in the local run's terminal: `fire` said
    # "RemoteProtocolError: Server disconnected without sending a response".
    audit_table = local_system.physical["ErasureAuditTable"].ref
    boto3.client("dynamodb").delete_table(TableName=audit_table)
    code = main_as_tool(["fire", "ErasureOverdueFunction"], state_dir=local_system.state_dir)
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert json.loads(captured.out) == {
        "function": "ErasureOverdueFunction",
        "error": "ResourceNotFoundException",
    }
