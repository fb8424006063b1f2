"""The fuzzer's check: no answer of 500 or more, no INTERNAL_SERVER_ERROR (docs/testing.md)."""

from __future__ import annotations

import json

import schemathesis


@schemathesis.check
def no_internal_error(ctx, response, case) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"HTTP {response.status_code}")
    try:
        body = json.loads(response.content)
    except ValueError:
        if response.status_code == 200:
            raise AssertionError("a 200 answer that is not JSON") from None
        return
    for error in body.get("errors") or [] if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code is None or code == "INTERNAL_SERVER_ERROR":
            raise AssertionError(f"error without a client code: {error}")
