from __future__ import annotations

import binascii
import quopri
from email import message_from_bytes, policy
from types import SimpleNamespace

import pytest

from campaigns import rendering


def _campaign(**kw):
    defaults = {
        "pk": 7,
        "subject": "Hi {{ contact.first_name|default:'friend' }}",
        "from_name": "News",
        "from_email": "news@Example.com",
        "reply_to": "",
        "html": (
            "<html><body><p>Hello {{ contact.first_name|default:'friend' }} in "
            "{{ contact.attributes.city }}</p>"
            '<a href="https://example.com/a?x=1&amp;y=2">A</a>'
            '<a href="{{ unsubscribe_url }}">Unsub</a>'
            '<a href="mailto:x@example.com">Mail</a></body></html>'
        ),
    }
    defaults.update(kw)
    return SimpleNamespace(**defaults)


@pytest.mark.parametrize("tag", ["load static", "include 'x.html'", "extends 'base.html'", "debug"])
def test_forbidden_tags_are_refused_with_their_line(tag):
    source = "<p>one</p>\n<p>two</p>\n{% " + tag + " %}"
    with pytest.raises(rendering.TemplateError) as info:
        rendering.validate_content("Subject", source)
    assert info.value.line == 3
    assert "not allowed" in str(info.value)


def test_syntax_error_reports_its_line():
    with pytest.raises(rendering.TemplateError) as info:
        rendering.validate_content("Subject", "<p>ok</p>\n\n{% if %}broken")
    assert info.value.line == 3
    assert str(info.value).startswith("Line 3:")


def test_unknown_filter_is_an_error_at_save_time():
    with pytest.raises(rendering.TemplateError):
        rendering.validate_content("Subject", "{{ contact.email|nosuchfilter }}")


def test_multiline_subject_is_refused():
    with pytest.raises(rendering.TemplateError):
        rendering.validate_content("Hi\r\nBcc: victim@example.com", "<p>x</p>")


def test_extract_links_tracks_only_static_http_links():
    source, links = rendering.extract_links(_campaign().html)
    assert links == ["https://example.com/a?x=1&y=2"]
    assert "__mc_link_0__" in source
    assert "{{ unsubscribe_url }}" in source
    assert "mailto:x@example.com" in source


def test_render_personalises_and_tracks(settings):
    settings.BASE_URL = "https://mail.example.net"
    compiled = rendering.compile_campaign(_campaign())
    contact = rendering.contact_context("ann@example.org", "Ann", "Lee", {"city": "Porto"})
    out = rendering.render_message(compiled, contact, 42)
    assert out.subject == "Hi Ann"
    assert "Hello Ann in Porto" in out.html
    assert "https://mail.example.net/t/c/" in out.html
    assert "https://example.com/a" not in out.html
    assert "https://mail.example.net/t/o/" in out.html  # open pixel
    assert "https://mail.example.net/u/" in out.html
    assert "Hello Ann in Porto" in out.text
    assert "https://mail.example.net/t/c/" in out.text
    assert out.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<https://mail.example.net/u/" in out.headers["List-Unsubscribe"]
    assert "mailto:unsubscribe+" in out.headers["List-Unsubscribe"]


def test_default_filter_and_escaping():
    compiled = rendering.compile_campaign(_campaign())
    contact = rendering.contact_context("x@example.org", "", "", {"city": "<script>"})
    out = rendering.render_message(compiled, contact, 1)
    assert "Hello friend in &lt;script&gt;" in out.html
    assert out.subject == "Hi friend"


def test_context_is_plain_data_not_models():
    context = rendering.contact_context("a@example.org", "A", "B", {"k": 1})
    assert set(context) == {"email", "first_name", "last_name", "full_name", "attributes"}
    assert all(isinstance(v, (str, dict)) for v in context.values())


def test_preview_render_is_untracked():
    compiled = rendering.compile_campaign(_campaign(), track=False)
    out = rendering.render_message(compiled, rendering.contact_context("a@example.org"), None)
    assert "https://example.com/a?x=1&amp;y=2" in out.html
    assert "/t/o/" not in out.html
    assert out.headers == {}


def test_mime_is_multipart_alternative_with_contract_headers():
    compiled = rendering.compile_campaign(_campaign())
    contact = rendering.contact_context("ann@example.org", "Ann")
    out = rendering.render_message(compiled, contact, 5)
    mid = rendering.message_id_header(7, 5, compiled.domain)
    raw = rendering.build_mime(compiled, out, "ann@example.org", message_id_value=mid)
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Message-ID"] == mid
    assert msg["To"] == "ann@example.org"
    assert msg["From"] == "News <news@Example.com>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["X-Mailcenter-Campaign"] == "7"
    types = [part.get_content_type() for part in msg.iter_parts()]
    assert types == ["text/plain", "text/html"]


def test_message_ids_are_unique_per_message_and_stable():
    a = rendering.message_id_header(1, 1, "example.com")
    assert a == rendering.message_id_header(1, 1, "example.com")
    assert a != rendering.message_id_header(1, 2, "example.com")


def test_personalised_subject_cannot_inject_headers():
    compiled = rendering.compile_campaign(_campaign(subject="Hi {{ contact.first_name }}"))
    contact = rendering.contact_context("a@example.org", "Ann\r\nBcc: evil@example.com")
    out = rendering.render_message(compiled, contact, 1)
    raw = rendering.build_mime(compiled, out, "a@example.org", message_id_value="<1@x>")
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Hi Ann Bcc: evil@example.com"


def test_verp_return_path_names_the_message(settings):
    settings.MAILCENTER_BOUNCE_DOMAIN = "bounces.example.net"
    path = rendering.return_path(99)
    assert path.startswith("bounces+") and path.endswith("@bounces.example.net")
    from tracking import tokens

    token = path[len("bounces+") : path.index("@")]
    assert tokens.read_token("bounce", token) == (99, None)


def test_html_to_text():
    text = rendering.html_to_text(
        "<style>p{}</style><h1>Title</h1><p>One<br>two</p><ul><li>a</li></ul>"
        '<a href="https://x.example/">link</a>'
    )
    assert "Title" in text and "One\ntwo" in text and "- a" in text
    assert "link (https://x.example/)" in text
    assert "p{}" not in text


def test_mime_round_trips_unicode_and_long_lines():
    campaign = _campaign(
        subject="Привет, {{ contact.first_name }} — ünïcode",
        from_name="Команда «Новости»",
        html="<p>" + "Длинная строка без переносов " * 40 + "= sign & {{ contact.first_name }}</p>",
    )
    compiled = rendering.compile_campaign(campaign)
    out = rendering.render_message(compiled, rendering.contact_context("a@example.org", "Аня"), 3)
    raw = rendering.build_mime(compiled, out, "a@example.org", message_id_value="<3@x>")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Привет, Аня — ünïcode"
    assert msg["From"].addresses[0].display_name == "Команда «Новости»"
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "= sign & Аня" in html
    assert msg.get_body(preferencelist=("plain",)).get_content().startswith("Длинная строка")


QP_BODIES = [
    "",
    "plain line\n",
    "trailing space \nand tab\t\nand none",
    "a = b\r\nwindows\rold mac\n",
    "x" * 75 + "\n" + "y" * 76 + "\n" + "z" * 77 + " \n" + "w" * 200,
    "ünïcode " * 30 + "\n. leading dot\nFrom the start\n",
    "\n\n\nends with blank lines\n\n",
]


@pytest.mark.parametrize("body", QP_BODIES)
def test_quoted_printable_per_line_is_the_whole_body_encoding(body):
    data = body.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    expected = binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")
    assert rendering._qp(body) == expected
    assert rendering._qp(body) == expected  # from the remembered lines this time
    assert quopri.decodestring(rendering._qp(body)).replace(b"\r\n", b"\n") == data


def test_quoted_printable_line_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr(rendering, "QP_CACHE_MAX_BYTES", 10_000)
    common = "the same for everyone " * 10 + "\n"
    for n in range(500):
        body = common + f"<a href='https://t.example/{n}'>only yours</a>\n" + common
        data = body.encode()
        assert rendering._qp(body) == binascii.b2a_qp(data, istext=True).replace(b"\n", b"\r\n")
        assert rendering._QP_LINES_BYTES[0] <= 10_000 + 2 * len(body)
    assert len(rendering._QP_LINES) < 100


def test_non_ascii_recipient_uses_the_stdlib_builder():
    compiled = rendering.compile_campaign(_campaign())
    out = rendering.render_message(compiled, rendering.contact_context("a@bücher.example"), 3)
    raw = rendering.build_mime(compiled, out, "a@bücher.example", message_id_value="<3@x>")
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg.get_content_type() == "multipart/alternative"


def test_unknown_tag_message_does_not_suggest_load():
    with pytest.raises(rendering.TemplateError) as info:
        rendering.validate_content("S", "{% frobnicate %}")
    assert "load" not in str(info.value)
    assert "frobnicate" in str(info.value)
