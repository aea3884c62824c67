from http import HTTPStatus
from typing import Any, cast

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.contact_list import ContactList
from ...models.error_message import ErrorMessage
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    page: int | Unset = 1,
    per_page: int | Unset = 50,
    sort: str | Unset = UNSET,
    q: list[str] | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["page"] = page

    params["per_page"] = per_page

    params["sort"] = sort

    json_q: list[str] | Unset = UNSET
    if not isinstance(q, Unset):
        json_q = q

    params["q[]"] = json_q

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/contacts",
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | ContactList | ErrorMessage | None:
    if response.status_code == 200:
        response_200 = ContactList.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorMessage.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = cast(Any, None)
        return response_401

    if response.status_code == 403:
        response_403 = cast(Any, None)
        return response_403

    if response.status_code == 429:
        response_429 = cast(Any, None)
        return response_429

    if response.status_code == 500:
        response_500 = cast(Any, None)
        return response_500

    if response.status_code == 502:
        response_502 = cast(Any, None)
        return response_502

    if response.status_code == 503:
        response_503 = cast(Any, None)
        return response_503

    if response.status_code == 504:
        response_504 = cast(Any, None)
        return response_504

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Any | ContactList | ErrorMessage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    page: int | Unset = 1,
    per_page: int | Unset = 50,
    sort: str | Unset = UNSET,
    q: list[str] | Unset = UNSET,
) -> Response[Any | ContactList | ErrorMessage]:
    """List contacts

     One page of the contacts that match every `q[]` filter, in `created_at` ascending order unless
    `sort` says otherwise. Archived contacts are left out unless a filter on `archived_at` asks for them
    (`q[]=archived_at:*` includes them, `q[]=archived_at:?` returns only them). Follow `links.next`
    until it is absent to read every page.

    Args:
        page (int | Unset):  Default: 1.
        per_page (int | Unset):  Default: 50.
        sort (str | Unset):
        q (list[str] | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ContactList | ErrorMessage]
    """

    kwargs = _get_kwargs(
        page=page,
        per_page=per_page,
        sort=sort,
        q=q,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    page: int | Unset = 1,
    per_page: int | Unset = 50,
    sort: str | Unset = UNSET,
    q: list[str] | Unset = UNSET,
) -> Any | ContactList | ErrorMessage | None:
    """List contacts

     One page of the contacts that match every `q[]` filter, in `created_at` ascending order unless
    `sort` says otherwise. Archived contacts are left out unless a filter on `archived_at` asks for them
    (`q[]=archived_at:*` includes them, `q[]=archived_at:?` returns only them). Follow `links.next`
    until it is absent to read every page.

    Args:
        page (int | Unset):  Default: 1.
        per_page (int | Unset):  Default: 50.
        sort (str | Unset):
        q (list[str] | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ContactList | ErrorMessage
    """

    return sync_detailed(
        client=client,
        page=page,
        per_page=per_page,
        sort=sort,
        q=q,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    page: int | Unset = 1,
    per_page: int | Unset = 50,
    sort: str | Unset = UNSET,
    q: list[str] | Unset = UNSET,
) -> Response[Any | ContactList | ErrorMessage]:
    """List contacts

     One page of the contacts that match every `q[]` filter, in `created_at` ascending order unless
    `sort` says otherwise. Archived contacts are left out unless a filter on `archived_at` asks for them
    (`q[]=archived_at:*` includes them, `q[]=archived_at:?` returns only them). Follow `links.next`
    until it is absent to read every page.

    Args:
        page (int | Unset):  Default: 1.
        per_page (int | Unset):  Default: 50.
        sort (str | Unset):
        q (list[str] | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ContactList | ErrorMessage]
    """

    kwargs = _get_kwargs(
        page=page,
        per_page=per_page,
        sort=sort,
        q=q,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    page: int | Unset = 1,
    per_page: int | Unset = 50,
    sort: str | Unset = UNSET,
    q: list[str] | Unset = UNSET,
) -> Any | ContactList | ErrorMessage | None:
    """List contacts

     One page of the contacts that match every `q[]` filter, in `created_at` ascending order unless
    `sort` says otherwise. Archived contacts are left out unless a filter on `archived_at` asks for them
    (`q[]=archived_at:*` includes them, `q[]=archived_at:?` returns only them). Follow `links.next`
    until it is absent to read every page.

    Args:
        page (int | Unset):  Default: 1.
        per_page (int | Unset):  Default: 50.
        sort (str | Unset):
        q (list[str] | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ContactList | ErrorMessage
    """

    return (
        await asyncio_detailed(
            client=client,
            page=page,
            per_page=per_page,
            sort=sort,
            q=q,
        )
    ).parsed
