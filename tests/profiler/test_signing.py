"""Signed agent calls: what verifies, and each way a call is refused."""

from __future__ import annotations

import pytest

from profiler.signing import SignatureError, sign, signing_key, verify

KEY = signing_key("clv_abcd1234_secret")
BODY = b'{"generation": 7}'


def signed(**overrides):
    args = {"method": "PUT", "path": "/v1/assignment", "body": BODY, "generation": 7, "now": 1000.0} | overrides
    return sign(KEY, **args).as_dict()


def test_a_signed_call_verifies_and_yields_its_generation():
    assert verify(KEY, signed(), method="PUT", path="/v1/assignment", body=BODY, now=1001.0) == 7


def test_the_key_is_the_digest_the_control_plane_stores():
    from controlplane.accounts.tokens import token_digest

    assert signing_key("clv_abcd1234_secret") == token_digest("clv_abcd1234_secret").encode()


@pytest.mark.parametrize(
    ("headers", "kwargs", "message"),
    [
        ({}, {}, "unsigned call"),
        (signed(), {"body": b'{"generation": 8}'}, "bad signature"),
        (signed(), {"path": "/v1/workers/x/drain"}, "bad signature"),
        (signed(), {"method": "POST"}, "bad signature"),
        (signed(), {"now": 1000.0 + 301}, "outside the 300 s window"),
        ({**signed(), "X-Cleave-Generation": "8"}, {}, "bad signature"),
        ({**signed(), "X-Cleave-Timestamp": "soon"}, {}, "malformed"),
    ],
)
def test_a_tampered_stale_or_unsigned_call_is_refused(headers, kwargs, message):
    args = {"method": "PUT", "path": "/v1/assignment", "body": BODY, "now": 1000.0} | kwargs
    with pytest.raises(SignatureError, match=message):
        verify(KEY, headers, **args)


def test_another_nodes_key_does_not_verify():
    with pytest.raises(SignatureError, match="bad signature"):
        verify(signing_key("clv_other_token"), signed(), method="PUT", path="/v1/assignment", body=BODY, now=1000.0)
