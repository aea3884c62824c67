"""The build's cut of botocore's data folder (`slim_botocore_data` in scripts/build.py) changes
nothing a client does: every kept service resolves the same endpoint and signs for the same
region in every partition, and every operation's request and response shapes are the same.

Checked on a copy of this environment's botocore data (the version locks/runtime.txt pins: the
lock test holds dev and runtime to one botocore), each client made from that copy alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import botocore
import botocore.loaders
import botocore.session
import pytest
from botocore.model import Shape

from .conftest import build_script

STOCK = Path(botocore.__file__).parent / "data"
# A region of each partition, and a region endpoints.json does not list (resolved by the
# partition's regex alone).
REGIONS = (
    "us-east-1",
    "ap-southeast-2",
    "eu-central-2",
    "cn-north-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "ap-southeast-99",
)


@pytest.fixture(scope="module")
def build():
    return build_script()


@pytest.fixture(scope="module")
def slim(build, tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("botocore") / "data"
    shutil.copytree(STOCK, data)
    build.slim_botocore_data(data)
    return data


def session_on(data: Path) -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component(
        "data_loader",
        botocore.loaders.Loader(extra_search_paths=[str(data)], include_default_search_paths=False),
    )
    return session


def client_of(session: botocore.session.Session, service: str, region: str):
    return session.create_client(
        service, region_name=region, aws_access_key_id="k", aws_secret_access_key="s"
    )


def shape_signature(shape: Shape | None, seen: frozenset[str] = frozenset()) -> object:
    """What a shape means to serialisers and parsers: its type, serialisation, constraints and
    members, recursively; not its documentation."""
    if shape is None:
        return None
    if shape.name in seen:
        return ("recursive", shape.name)
    seen = seen | {shape.name}
    model = {
        k: v
        for k, v in shape._shape_model.items()
        if k not in ("members", "member", "key", "value", "documentation")
    }
    parts: dict[str, object] = {"model": model, "required": sorted(shape.required_members)}
    if shape.type_name == "structure":
        parts["members"] = {n: shape_signature(m, seen) for n, m in shape.members.items()}
    elif shape.type_name == "list":
        parts["member"] = shape_signature(shape.member, seen)
    elif shape.type_name == "map":
        parts["key"] = shape_signature(shape.key, seen)
        parts["value"] = shape_signature(shape.value, seen)
    return parts


def test_only_the_kept_services_remain_plain_and_without_documentation(build, slim):
    services = {p.name for p in slim.iterdir() if p.is_dir()}
    assert services == set(build.BOTOCORE_SERVICES)
    assert not list(slim.glob("*/*/service-2.json.gz"))
    for model in slim.glob("*/*/service-2.json"):
        assert '"documentation":"' not in model.read_text(), model
    assert (slim / "endpoints.json").stat().st_size < (STOCK / "endpoints.json").stat().st_size / 10


def test_cutting_a_cut_folder_again_changes_nothing(build, slim, tmp_path):
    again = tmp_path / "data"
    shutil.copytree(slim, again)
    build.slim_botocore_data(again)
    files = sorted(p.relative_to(slim) for p in slim.rglob("*") if p.is_file())
    assert sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file()) == files
    for relative in files:
        assert (again / relative).read_bytes() == (slim / relative).read_bytes(), relative


@pytest.mark.parametrize("service", build_script().BOTOCORE_SERVICES)
def test_clients_resolve_and_sign_as_with_the_stock_data(slim, service):
    stock_session, slim_session = session_on(STOCK), session_on(slim)
    for region in REGIONS:
        stock = client_of(stock_session, service, region)
        cut = client_of(slim_session, service, region)
        assert cut.meta.endpoint_url == stock.meta.endpoint_url, region
        assert cut.meta.region_name == stock.meta.region_name, region
        assert cut.meta.partition == stock.meta.partition, region
        assert cut._request_signer.signing_name == stock._request_signer.signing_name, region
        assert cut._request_signer.region_name == stock._request_signer.region_name, region


@pytest.mark.parametrize("service", build_script().BOTOCORE_SERVICES)
def test_every_operation_keeps_its_shapes(slim, service):
    stock = client_of(session_on(STOCK), service, "us-east-1").meta.service_model
    cut = client_of(session_on(slim), service, "us-east-1").meta.service_model
    assert cut.metadata == stock.metadata
    assert cut.operation_names == stock.operation_names
    for name in stock.operation_names:
        before, after = stock.operation_model(name), cut.operation_model(name)
        assert after.http == before.http, name
        assert shape_signature(after.input_shape) == shape_signature(before.input_shape), name
        assert shape_signature(after.output_shape) == shape_signature(before.output_shape), name
        assert [shape_signature(e) for e in after.error_shapes] == [
            shape_signature(e) for e in before.error_shapes
        ], name
