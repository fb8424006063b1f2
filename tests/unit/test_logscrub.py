import io
import logging

from hypothesis import given
from hypothesis import strategies as st

from runtime import logscrub

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLWhlcmU"


def test_scrub_redacts_tokens_passwords_and_get_parameters():
    lines = [
        f"Authorization: Bearer {TOKEN}",
        f"token={TOKEN} in a message",
        '{"handle": "ada", "password": "correct horse"}',
        "logIn(handle:\"ada\", password: 'hunter2hunter2')",
        '127.0.0.1:5 - "GET /graphql?query=%7Bviewer%7D&variables=%7B%22p%22%3A1%7D HTTP/1.1" 200',
    ]
    out = "\n".join(logscrub.scrub(line) for line in lines)
    for secret in [TOKEN, "correct horse", "hunter2hunter2", "%7Bviewer%7D", "%22p%22"]:
        assert secret not in out
    assert "ada" in out and "GET /graphql?query=[redacted]" in out


@given(st.text(alphabet="abcdefghijkl0123456789-_", min_size=8, max_size=60))
def test_any_password_value_is_redacted(value):
    assert value not in logscrub.scrub(f'"password": "{value}"')
    assert value not in logscrub.scrub(f"Bearer {value}")


def test_installed_filter_scrubs_propagated_records_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logscrub.install()
        log = logging.getLogger("chirp.somewhere")
        log.warning("request with Bearer %s", TOKEN)
        try:
            raise ValueError('bad {"password": "s3cret-value"}')
        except ValueError:
            log.error("failed", exc_info=True)
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert TOKEN not in text and "s3cret-value" not in text and "[redacted]" in text
