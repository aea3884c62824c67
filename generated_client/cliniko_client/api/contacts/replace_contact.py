from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.contact import Contact
from ...models.contact_write import ContactWrite
from ...models.error_message import ErrorMessage
from ...models.validation_error import ValidationError
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    body: ContactWrite,
    q: list[str] | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    json_q: list[str] | Unset = UNSET
    if not isinstance(q, Unset):
        json_q = q

    params["q[]"] = json_q

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/contacts/{id}".format(
            id=quote(str(id), safe=""),
        ),
        "params": params,
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | Contact | ErrorMessage | ValidationError | None:
    if response.status_code == 200:
        response_200 = Contact.from_dict(response.json())

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

    if response.status_code == 404:
        response_404 = cast(Any, None)
        return response_404

    if response.status_code == 422:
        response_422 = ValidationError.from_dict(response.json())

        return response_422

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
) -> Response[Any | Contact | ErrorMessage | ValidationError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    body: ContactWrite,
    q: list[str] | Unset = UNSET,
) -> Response[Any | Contact | ErrorMessage | ValidationError]:
    """Update a contact (PUT)

     The update of Cliniko's older documentation; it takes the same partial body as PATCH. Fields left
    out keep their values; `phone_numbers`, when sent, likely replaces the whole list (unverified).

    Args:
        id (str): A 64-bit id in decimal, at most 9223372036854775807 (int64's maximum).
        q (list[str] | Unset):
        body (ContactWrite): The body of a create or an update: only writable fields, all optional
            (an update changes only what it sends; `null` clears a field). Cliniko ignores read-only
            fields such as `country`. Which fields a create requires is not documented (a blank
            `first_name` gets "can’t be blank").

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | Contact | ErrorMessage | ValidationError]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
        q=q,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    body: ContactWrite,
    q: list[str] | Unset = UNSET,
) -> Any | Contact | ErrorMessage | ValidationError | None:
    """Update a contact (PUT)

     The update of Cliniko's older documentation; it takes the same partial body as PATCH. Fields left
    out keep their values; `phone_numbers`, when sent, likely replaces the whole list (unverified).

    Args:
        id (str): A 64-bit id in decimal, at most 9223372036854775807 (int64's maximum).
        q (list[str] | Unset):
        body (ContactWrite): The body of a create or an update: only writable fields, all optional
            (an update changes only what it sends; `null` clears a field). Cliniko ignores read-only
            fields such as `country`. Which fields a create requires is not documented (a blank
            `first_name` gets "can’t be blank").

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | Contact | ErrorMessage | ValidationError
    """

    return sync_detailed(
        id=id,
        client=client,
        body=body,
        q=q,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    body: ContactWrite,
    q: list[str] | Unset = UNSET,
) -> Response[Any | Contact | ErrorMessage | ValidationError]:
    """Update a contact (PUT)

     The update of Cliniko's older documentation; it takes the same partial body as PATCH. Fields left
    out keep their values; `phone_numbers`, when sent, likely replaces the whole list (unverified).

    Args:
        id (str): A 64-bit id in decimal, at most 9223372036854775807 (int64's maximum).
        q (list[str] | Unset):
        body (ContactWrite): The body of a create or an update: only writable fields, all optional
            (an update changes only what it sends; `null` clears a field). Cliniko ignores read-only
            fields such as `country`. Which fields a create requires is not documented (a blank
            `first_name` gets "can’t be blank").

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | Contact | ErrorMessage | ValidationError]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
        q=q,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    body: ContactWrite,
    q: list[str] | Unset = UNSET,
) -> Any | Contact | ErrorMessage | ValidationError | None:
    """Update a contact (PUT)

     The update of Cliniko's older documentation; it takes the same partial body as PATCH. Fields left
    out keep their values; `phone_numbers`, when sent, likely replaces the whole list (unverified).

    Args:
        id (str): A 64-bit id in decimal, at most 9223372036854775807 (int64's maximum).
        q (list[str] | Unset):
        body (ContactWrite): The body of a create or an update: only writable fields, all optional
            (an update changes only what it sends; `null` clears a field). Cliniko ignores read-only
            fields such as `country`. Which fields a create requires is not documented (a blank
            `first_name` gets "can’t be blank").

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | Contact | ErrorMessage | ValidationError
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            body=body,
            q=q,
        )
    ).parsed
