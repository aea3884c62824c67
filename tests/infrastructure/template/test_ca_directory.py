"""The build's CA folder (`ship_ca_directory` in scripts/build.py): certifi's roots as an OpenSSL
hashed directory, which the functions' TLS context reads instead of the whole bundle.

A file under the wrong name is a root OpenSSL never finds, so the naming is checked by real TLS
handshakes on 127.0.0.1 with a certificate authority made for the test (trustme) and added to a
copy of certifi's bundle: OpenSSL must find it by the name the build gave it, and must refuse a
server whose root the folder lacks. The rest holds the folder to the bundle, root for root.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import trustme

from .conftest import build_script


@pytest.fixture(scope="module")
def build():
    return build_script()


ROOT_NAME = {"organization_name": "Clinic Test Root CA", "organization_unit_name": "Intake tests"}


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA(**ROOT_NAME)


def fake_artifact(root: Path, bundle: str) -> Path:
    """A built function's folder as far as the CA step reads it: certifi's bundle, our package."""
    (root / "certifi").mkdir(parents=True)
    (root / "certifi" / "cacert.pem").write_text(bundle, encoding="utf-8")
    (root / "cliniko_automations" / "common").mkdir(parents=True)
    return root


def certifi_bundle() -> str:
    return Path(certifi.where()).read_text(encoding="utf-8")


@pytest.fixture
def tls_server(authority: trustme.CA) -> Iterator[int]:
    """A TLS server on 127.0.0.1 whose certificate for `localhost` the test authority issued;
    it completes one handshake per connection. Yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert("localhost").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(10)
            try:
                with context.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"hello")
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stopping.set()
    thread.join(timeout=10)
    listener.close()


def handshake(port: int, capath: Path) -> bytes:
    context = ssl.create_default_context(capath=str(capath))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.recv(5)


def test_openssl_finds_a_root_by_the_name_the_build_gives_it(
    build, authority, tls_server, tmp_path
):
    bundle = certifi_bundle() + authority.cert_pem.bytes().decode("ascii")
    folder = build.ship_ca_directory(fake_artifact(tmp_path, bundle))
    assert folder == tmp_path / "cliniko_automations" / "common" / "ca_certificates"
    assert handshake(tls_server, folder) == b"hello"


def test_a_server_whose_root_the_folder_lacks_is_refused(build, tls_server, tmp_path):
    folder = build.ship_ca_directory(fake_artifact(tmp_path, certifi_bundle()))
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls_server, folder)


def test_the_folder_holds_every_root_of_the_bundle_once(build, tmp_path):
    folder = build.ship_ca_directory(fake_artifact(tmp_path, certifi_bundle()))
    shipped = sorted(path.read_text(encoding="ascii") for path in folder.iterdir())
    expected = sorted(build.PEM_CERTIFICATE.findall(certifi_bundle()))
    assert len(expected) > 100
    assert shipped == expected
    assert all(len(path.stem) == 8 and path.suffix[1:].isdigit() for path in folder.iterdir())


def test_roots_whose_names_hash_alike_are_numbered_in_turn(build, authority, tls_server, tmp_path):
    # The same subject twice (a root re-issued with a new key keeps its name): OpenSSL reads
    # <hash>.0, then <hash>.1, and must find the root that signed the server either way.
    other = trustme.CA(**ROOT_NAME)
    pems = [ca.cert_pem.bytes().decode("ascii") for ca in (other, authority)]
    folder = build.ship_ca_directory(fake_artifact(tmp_path, "".join(pems)))
    names = sorted(path.name for path in folder.iterdir())
    assert [name.split(".")[1] for name in names] == ["0", "1"]
    assert names[0].split(".")[0] == names[1].split(".")[0]
    assert handshake(tls_server, folder) == b"hello"


def test_a_bundle_with_windows_line_endings_gives_the_same_folder(
    build, authority, tls_server, tmp_path
):
    bundle = certifi_bundle() + authority.cert_pem.bytes().decode("ascii")
    folder = build.ship_ca_directory(fake_artifact(tmp_path, bundle.replace("\n", "\r\n")))
    assert len(list(folder.iterdir())) == len(build.PEM_CERTIFICATE.findall(bundle))
    assert handshake(tls_server, folder) == b"hello"


def test_a_bundle_it_cannot_split_fails_the_build(build, authority, tmp_path):
    # An indented certificate: the split would miss it, and the build must not ship a folder
    # without one of the bundle's roots.
    indented = authority.cert_pem.bytes().decode("ascii").replace("\n", "\n  ")
    artifact = fake_artifact(tmp_path, certifi_bundle() + indented)
    with pytest.raises(SystemExit, match="cannot split"):
        build.ship_ca_directory(artifact)
    assert not (artifact / "cliniko_automations" / "common" / "ca_certificates").exists()


def test_a_second_build_over_the_same_artifact_writes_the_folder_afresh(build, tmp_path):
    artifact = fake_artifact(tmp_path, certifi_bundle())
    first = sorted(path.name for path in build.ship_ca_directory(artifact).iterdir())
    second = sorted(path.name for path in build.ship_ca_directory(artifact).iterdir())
    assert first == second


def test_an_artifact_without_certifi_gets_no_folder(build, tmp_path):
    artifact = fake_artifact(tmp_path, "")
    shutil.rmtree(artifact / "certifi")
    assert build.ship_ca_directory(artifact) is None
    assert not (artifact / "cliniko_automations" / "common" / "ca_certificates").exists()
