"""What the change feed needs of the emulator: updates and archives that move updated_at, a
journal of every change, unarchive (as Cliniko's app restores a contact), and churn: hundreds
of changes between two polls, many inside one second, or stamped in a chosen past second."""

from __future__ import annotations

from collections import Counter

import httpx

PAST = "2026-01-05T09:00:00Z"


def listed(http: httpx.Client, since: str) -> dict[str, str]:
    answer = http.get(
        "/contacts",
        params=[("q[]", f"updated_at:>={since}"), ("q[]", "archived_at:*"), ("per_page", "100")],
    )
    return {c["id"]: c["updated_at"] for c in answer.json()["contacts"]}


def test_writes_are_journaled_with_the_updated_at_they_set(http: httpx.Client, cliniko) -> None:
    created = http.post("/contacts", json={"first_name": "Ada"}).json()
    http.patch(f"/contacts/{created['id']}", json={"first_name": "Ada"})  # no change: no entry
    http.patch(f"/contacts/{created['id']}", json={"city": "London"})
    http.post(f"/contacts/{created['id']}/archive")
    cliniko.control.unarchive(created["id"])
    journal = cliniko.control.changes()
    assert [c["kind"] for c in journal] == ["created", "updated", "archived", "unarchived"]
    assert {c["id"] for c in journal} == {created["id"]}
    current = http.get(f"/contacts/{created['id']}").json()
    assert current["archived_at"] is None
    assert journal[-1]["updated_at"] == current["updated_at"]
    assert cliniko.control.changes(since=3) == journal[3:]


def test_churn_makes_hundreds_of_changes_of_every_kind(http: httpx.Client, cliniko) -> None:
    cliniko.control.churn(100, kinds=["create"], at=PAST, seed=1)
    cliniko.control.churn(30, kinds=["archive"], at=PAST, seed=2, distinct=True)
    made = cliniko.control.churn(300, seed=3, distinct=True)
    assert len(made) == 300
    assert set(Counter(c["kind"] for c in made)) == {"created", "updated", "archived", "unarchived"}
    assert len({c["id"] for c in made}) == 300  # distinct: each a state a poller can see
    seconds = Counter(c["updated_at"] for c in made)
    assert max(seconds.values()) > 1  # many inside one second


def test_churn_at_a_past_second_touches_only_contacts_not_changed_since(
    http: httpx.Client, cliniko
) -> None:
    cliniko.control.churn(20, kinds=["create"], at=PAST, seed=1)
    later = cliniko.control.churn(5, kinds=["update"], seed=2, distinct=True)
    stamped = cliniko.control.churn(10, kinds=["update"], at=PAST, seed=3, distinct=True)
    assert {c["updated_at"] for c in stamped} == {PAST}
    assert not {c["id"] for c in stamped} & {c["id"] for c in later}
    assert set(listed(http, PAST)) >= {c["id"] for c in stamped}
