"""`read_secret` and `client_for_secret`: a key in Secrets Manager (moto) to a working client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
from botocore.exceptions import NoCredentialsError
from cliniko_automations.cliniko import ClinikoClient
from cliniko_automations.cliniko.errors import ConfigurationError, RateLimited
from cliniko_automations.common import aws
from cliniko_automations.common.cliniko_accounts import client_for_secret
from cliniko_automations.common.cliniko_settings import ClinikoVariables
from cliniko_automations.common.secrets import (
    SecretEmpty,
    SecretMissing,
    SecretNotPlainText,
    SecretOutsidePrefix,
    SecretUnavailable,
    _use_shared_session,
    clear_secret_caches,
    prefetch_secrets,
    read_secret,
    rotated_values,
)

UA = "Tests (tests@example.com)"


@pytest.fixture
def secrets(aws):
    return boto3.client("secretsmanager")


@pytest.fixture
def account_env(cliniko) -> ClinikoVariables:
    """The Cliniko settings of a function talking to the emulator, as its environment has them."""
    return ClinikoVariables(user_agent=UA, base_url=cliniko.base_url_template)


def test_read_secret_returns_the_string_and_caches_it(secrets) -> None:
    secrets.create_secret(Name="pepper", SecretString="s3cr3t-value")
    assert read_secret("pepper") == "s3cr3t-value"
    secrets.put_secret_value(SecretId="pepper", SecretString="rotated")
    assert read_secret("pepper") == "s3cr3t-value"  # cached for up to five minutes
    parameters.clear_caches()
    assert read_secret("pepper") == "rotated"


def test_secrets_are_read_on_the_process_s_one_boto3_session(secrets) -> None:
    # A second boto3 session costs a cold start ~70 ms; Powertools would build its own.
    secrets.create_secret(Name="pepper", SecretString="s3cr3t-value")
    assert read_secret("pepper") == "s3cr3t-value"
    provider_client = DEFAULT_PROVIDERS["secrets"].client
    assert provider_client is aws.client("secretsmanager", aws.FAIL_FAST)
    assert aws.client("sqs") is aws.client("sqs")


def test_a_client_on_first_use_is_made_then_and_is_the_process_s_one(aws) -> None:
    from cliniko_automations.common import aws as shared

    shared._client.cache_clear()
    sqs = shared.ClientOnFirstUse("sqs")
    assert shared._client.cache_info().currsize == 0
    url = sqs.create_queue(QueueName="first-use")["QueueUrl"]
    assert shared._client.cache_info().currsize == 1
    assert sqs.get_queue_url(QueueName="first-use")["QueueUrl"] == url
    assert sqs.meta is shared.client("sqs").meta
    # However no config is passed, it is the same client.
    assert shared.client("sqs") is shared.client("sqs", None) is shared.client("sqs", config=None)
    assert shared._client.cache_info().currsize == 1


def test_read_secret_decodes_binary_text(secrets) -> None:
    secrets.create_secret(Name="binary", SecretBinary=b"abc")
    assert read_secret("binary") == "abc"


def test_missing_or_unusable_secrets_are_clear_errors(secrets) -> None:
    # Each an operator's mistake no retry can mend, told apart from a passing outage.
    with pytest.raises(SecretMissing, match="'nope'"):
        read_secret("nope")
    secrets.create_secret(Name="latin1", SecretBinary=b"\xff\xfe")
    with pytest.raises(SecretEmpty, match="binary"):
        read_secret("latin1")
    secrets.create_secret(Name="blank", SecretString="   ")
    with pytest.raises(SecretEmpty, match="empty"):
        read_secret("blank")
    with pytest.raises(SecretUnavailable):
        read_secret("")


def test_a_secret_stored_as_json_or_quoted_is_refused_naming_it_never_its_value(
    secrets,
) -> None:
    # The console's Key/value tab (its default) stores {"<key>":"<value>"}; a value copied
    # from a JSON file or a message keeps its quotes. No secret read here is either.
    secrets.create_secret(Name="kv", SecretString='{"api_key":"MS0xkey-au1"}')
    with pytest.raises(SecretNotPlainText) as refused:
        read_secret("kv")
    assert str(refused.value) == "secret 'kv' holds a JSON object"
    assert refused.value.reason == "secret_not_plain_text"
    secrets.create_secret(Name="quoted", SecretString='"MS0xkey-au1"\n')
    with pytest.raises(SecretNotPlainText, match=r"^secret 'quoted' holds a quoted string$"):
        read_secret("quoted")
    # Windows' cmd.exe keeps single quotes: --secret-string 'KEY' stores them.
    secrets.create_secret(Name="single-quoted", SecretString="'MS0xkey-au1'")
    with pytest.raises(SecretNotPlainText, match="holds a quoted string"):
        read_secret("single-quoted")
    # Braces, quotes or digits that do not wrap a JSON object or string are the value itself.
    for n, value in enumerate(["{not-json}", '"half', "31415926535", '{"open":1', "[1]", "'it's'"]):
        secrets.create_secret(Name=f"plain-{n}", SecretString=value)
        assert read_secret(f"plain-{n}") == value


def test_a_rotation_past_a_json_value_matches_the_new_value_alone(secrets) -> None:
    secrets.create_secret(Name="signing", SecretString='{"signing_secret":"first-value"}')
    with pytest.raises(SecretNotPlainText):
        rotated_values("signing")
    clear_secret_caches()
    secrets.put_secret_value(SecretId="signing", SecretString="first-value\n")
    # The previous version (AWSPREVIOUS, within the grace) is passed over, not matched.
    assert rotated_values("signing") == ("first-value\n",)


def test_a_secret_outside_the_prefix_is_refused_before_asking(secrets, monkeypatch) -> None:
    secrets.create_secret(Name="elsewhere/key", SecretString="value")
    with pytest.raises(SecretOutsidePrefix, match="'elsewhere/key' is outside SecretsPrefix"):
        read_secret("elsewhere/key", prefix="cliniko-automations/")
    assert read_secret("elsewhere/key", prefix="elsewhere/") == "value"


@pytest.fixture
def secret_reads(secrets) -> Iterator[list[str]]:
    """The names of the secrets read from Secrets Manager (not the cache), in order."""
    reads: list[str] = []

    def count(params, **_) -> None:
        reads.append(params["SecretId"])

    _use_shared_session()  # the provider read_secret reads with
    events = DEFAULT_PROVIDERS["secrets"].client.meta.events
    events.register("provide-client-params.secrets-manager.GetSecretValue", count)
    yield reads
    events.unregister("provide-client-params.secrets-manager.GetSecretValue", count)


@pytest.fixture
def in_lambda(monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tests")


def test_prefetched_secrets_are_read_once_and_handed_out_from_the_cache(
    secrets, secret_reads, in_lambda
) -> None:
    secrets.create_secret(Name="pepper", SecretString="s3cr3t-value")
    secrets.create_secret(Name="key", SecretString="MS0xkey-au1")
    prefetch_secrets(lambda: ["pepper", "key", "pepper", None])
    # read_secret waits for the read in flight rather than making a second one.
    assert read_secret("key") == "MS0xkey-au1"
    assert read_secret("pepper") == "s3cr3t-value"
    assert sorted(secret_reads) == ["key", "pepper"]
    # A name already read is in the cache, not read again.
    prefetch_secrets(lambda: ["pepper"])
    assert read_secret("pepper") == "s3cr3t-value"
    assert sorted(secret_reads) == ["key", "pepper"]


def test_at_most_eight_secrets_are_read_ahead(secrets, secret_reads, in_lambda) -> None:
    names = [f"key-{n}" for n in range(10)]
    for name in names:
        secrets.create_secret(Name=name, SecretString=f"value-of-{name}")
    prefetch_secrets(lambda: names)
    assert [read_secret(name) for name in names[:8]] == [f"value-of-{n}" for n in names[:8]]
    assert sorted(secret_reads) == names[:8]  # waited for, then from the cache
    assert read_secret(names[9]) == "value-of-key-9"
    assert secret_reads[-1] == "key-9"


def test_a_failed_prefetch_is_read_again_and_reported_by_read_secret(
    secrets, secret_reads, in_lambda
) -> None:
    prefetch_secrets(lambda: ["later"])
    with pytest.raises(SecretMissing, match="'later'"):
        read_secret("later")
    assert secret_reads == ["later", "later"]
    secrets.create_secret(Name="later", SecretString="now-here")
    assert read_secret("later") == "now-here"


def test_a_prefetched_secret_outside_the_prefix_is_still_refused(
    secrets, secret_reads, in_lambda
) -> None:
    secrets.create_secret(Name="elsewhere/key", SecretString="value")
    prefetch_secrets(lambda: ["elsewhere/key"])
    with pytest.raises(SecretOutsidePrefix):
        read_secret("elsewhere/key", prefix="cliniko-automations/")
    assert read_secret("elsewhere/key") == "value"
    assert secret_reads == ["elsewhere/key"]


def test_prefetch_never_raises_and_reads_nothing_outside_a_lambda_or_into_a_snapshot(
    secrets, secret_reads, monkeypatch
) -> None:
    secrets.create_secret(Name="pepper", SecretString="s3cr3t-value")

    def unset() -> list[str]:
        raise KeyError("PEPPER_SECRET_NAME")

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tests")
    prefetch_secrets(unset)  # settings not set: the first call reports them
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    prefetch_secrets(lambda: ["pepper"])  # the value would be in SnapStart's snapshot
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE")
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    prefetch_secrets(lambda: ["pepper"])  # imported by a test or the command line
    assert secret_reads == []
    assert read_secret("pepper") == "s3cr3t-value"
    assert secret_reads == ["pepper"]


def test_client_for_secret_talks_to_cliniko_with_the_stored_key(
    secrets, cliniko, account_env
) -> None:
    cliniko.control.seed(3, seed=1)
    # A pasted key with a trailing newline still works: the key itself has no whitespace.
    secrets.create_secret(Name="cliniko/clinic-a", SecretString=cliniko.api_key + "\n")

    client = client_for_secret("cliniko/clinic-a", settings=account_env)

    assert isinstance(client, ClinikoClient)
    assert client.shard == "au1"
    assert len(client.list_contacts()) == 3
    # cached per secret name (the settings checked again, equal)
    assert client_for_secret("cliniko/clinic-a", settings=account_env) is client
    assert client_for_secret("cliniko/clinic-a", settings=account_env.checked()) is client
    assert cliniko.control.requests()[-1]["user_agent"] == UA


def test_a_key_stored_from_a_file_with_a_byte_order_mark_is_the_key(
    secrets, cliniko, account_env
) -> None:
    # Notepad's "UTF-8 with BOM", or a zero-width space copied from a page: before, refused as
    # a malformed key (non-ASCII) though the key itself was whole.
    secrets.create_secret(Name="cliniko/bom", SecretString=f"\ufeff{cliniko.api_key}\u200b\r\n")
    client = client_for_secret("cliniko/bom", settings=account_env)
    assert client.list_contacts() == []


def test_a_rotated_key_gets_a_new_client(secrets, cliniko, account_env) -> None:
    secrets.create_secret(Name="cliniko/rotating", SecretString=cliniko.api_key)
    first = client_for_secret("cliniko/rotating", settings=account_env)
    new_key = "MS0xrotatedkey000000000-au1"
    cliniko.control.add_key(new_key)
    secrets.put_secret_value(SecretId="cliniko/rotating", SecretString=new_key)
    parameters.clear_caches()  # what five minutes of cache age would do

    second = client_for_secret("cliniko/rotating", settings=account_env)

    assert second is not first
    assert second.list_contacts() == []


def test_user_agent_is_required(secrets, cliniko) -> None:
    secrets.create_secret(Name="cliniko/x", SecretString=cliniko.api_key)
    base_url = cliniko.base_url_template
    for unset in (ClinikoVariables(base_url=base_url), ClinikoVariables(user_agent="  ")):
        with pytest.raises(ConfigurationError, match="CLINIKO_USER_AGENT is not set"):
            client_for_secret("cliniko/x", settings=unset)
    bad = ClinikoVariables(user_agent="no email here", base_url=base_url)
    with pytest.raises(ConfigurationError, match=r"CLINIKO_USER_AGENT: .*Name \(email\)") as caught:
        client_for_secret("cliniko/x", settings=bad)
    assert caught.value.setting == "CLINIKO_USER_AGENT"
    assert "no email here" not in str(caught.value)
    assert cliniko.control.requests() == []


def test_base_url_defaults_to_cliniko(secrets) -> None:
    secrets.create_secret(Name="cliniko/uk", SecretString="MS0xsomekey-uk2")
    for unset in (None, "  "):
        settings = ClinikoVariables(user_agent=UA, base_url=unset)
        client = client_for_secret("cliniko/uk", settings=settings)
        assert client.base_url == "https://api.uk2.cliniko.com/v1"


def test_a_malformed_key_in_the_secret_is_a_configuration_error(secrets) -> None:
    secrets.create_secret(Name="cliniko/bad", SecretString="MS0xsomekey-AU2")
    with pytest.raises(ConfigurationError) as caught:
        client_for_secret("cliniko/bad", settings=ClinikoVariables(user_agent=UA))
    assert "MS0x" not in str(caught.value)


def test_max_wait_setting_bounds_the_client_waits(secrets, cliniko, account_env):
    secrets.create_secret(Name="cliniko/short", SecretString=cliniko.api_key)
    cliniko.control.set_faults(throttle_window_s=30)

    short = dataclasses.replace(account_env, max_wait_seconds=" 5 ")
    client = client_for_secret("cliniko/short", settings=short)
    with pytest.raises(RateLimited):
        client.list_contacts()  # a 30 s reset is not waited for: the error comes at once

    assert [r["status"] for r in cliniko.control.requests()] == [429]
    for bad in ("0", "soon"):
        settings = dataclasses.replace(account_env, max_wait_seconds=bad)
        with pytest.raises(ConfigurationError, match="CLINIKO_MAX_WAIT_SECONDS"):
            client_for_secret("cliniko/short", settings=settings)


def test_an_unreadable_secret_names_its_cause(secrets) -> None:
    """Not only an AWS error code: no credentials (or no endpoint) is named, with botocore's
    own words, so the operator sees what to fix."""
    secrets.create_secret(Name="held", SecretString="s3cret-value")

    def no_credentials(**_) -> None:  # what botocore's signer raises without credentials
        raise NoCredentialsError

    _use_shared_session()  # the provider read_secret reads with
    events = DEFAULT_PROVIDERS["secrets"].client.meta.events
    events.register("before-sign.secrets-manager.GetSecretValue", no_credentials)
    try:
        with pytest.raises(SecretUnavailable) as caught:
            read_secret("held")
    finally:
        events.unregister("before-sign.secrets-manager.GetSecretValue", no_credentials)
    assert str(caught.value) == (
        "secret 'held' could not be read (NoCredentialsError: Unable to locate credentials)"
    )
