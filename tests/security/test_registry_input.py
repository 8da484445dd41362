"""The registry's unauthenticated token endpoint reads a bounded form, and says so with a 4xx."""

from __future__ import annotations

import httpx

from tests.security.hostile import sent_before_answer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_token_form_is_bounded_while_streaming(registry_server) -> None:
    sent, answer = sent_before_answer(registry_server.url, "/token", FORM, filler=b"scope=repository:a:pull&")
    assert answer.startswith(b"HTTP/1.1 413") and sent < 8 << 20


def test_token_form_with_too_many_fields_is_413_not_500(registry_server) -> None:
    r = httpx.post(registry_server.url + "/token", content="&".join(["scope=x"] * 500), headers=FORM)
    assert r.status_code == 413 and r.json()["errors"][0]["code"] == "SIZE_INVALID"


def test_token_form_still_grants_with_password(registry_server) -> None:
    token = registry_server.token("pull:sec/*")
    r = httpx.post(registry_server.url + "/token", headers=FORM, content=httpx.QueryParams(
        {"grant_type": "password", "username": "ci", "password": token, "service": "x",
         "scope": "repository:sec/app:pull"}).__str__())
    assert r.status_code == 200 and token not in r.text
    bearer = r.json()["token"]
    assert httpx.get(registry_server.url + "/v2/sec/app/tags/list",
                     headers={"Authorization": f"Bearer {bearer}"}).status_code == 404  # allowed, just unknown
