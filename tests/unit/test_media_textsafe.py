"""The per-medium functions of `textsafe`, over every troublesome character at once."""

from __future__ import annotations

from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from gcmschange import textsafe

# Every C0 and C1 control, DEL, the bidi controls, line and paragraph separators, lone
# surrogates, the two XML non-characters, and ordinary text around them.
EVERYTHING = (
    "a"
    + "".join(chr(c) for c in range(0x20))
    + "\x7f"
    + "".join(chr(c) for c in range(0x80, 0xA0))
    + "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
    + "\ud800\udfff\ufffe\uffff"
    + "é 漢 😀 z"
)


def test_xml_text_is_always_xml_1_0_characters() -> None:
    text = textsafe.xml_text(EVERYTHING)
    parsed = ET.fromstring(f"<a>{escape(text)}</a>".encode())
    assert (parsed.text or "").startswith("a") and (parsed.text or "").endswith("é 漢 😀 z")


def test_terminal_strips_every_escape_sequence_and_control() -> None:
    hostile = (
        "x\x1b[31mred\x1b[0m \x1b]0;title\x07 "
        "\x1b]8;;https://e.example\x1b\\link\x1b]8;;\x1b\\ \x9b2J y"
    )
    assert textsafe.terminal(hostile) == "xred  link  y"
    cleaned = textsafe.terminal(EVERYTHING)
    assert cleaned.isprintable()
    assert cleaned.startswith("a ") and cleaned.endswith("é 漢 😀 z")


def test_one_line_fields_keep_their_words_on_one_line() -> None:
    assert (
        textsafe.plain("one\r\ntwo\rthree\nfour\u2028five\x85six") == "one two three four five six"
    )
    assert textsafe.plain("one\r\ntwo", one_line=False) == "one\ntwo"
    assert textsafe.ical_text("a;b,c\\d\ne") == "a;b,c\\d e"  # icalendar escapes ; , \\ itself


def test_shown_keeps_a_name_exact_and_visible() -> None:
    assert textsafe.shown("evidence-X/a\x1b[2Jb\u202e") == "evidence-X/a\\x1b[2Jb\\u202e"
    assert textsafe.shown("evidence-X/state/plan.json") == "evidence-X/state/plan.json"


def test_markdown_html_splits_references_and_escapes_markup() -> None:
    assert textsafe.markdown_html("<b>@all</b> & #1 https://e.example") == (
        "&lt;b&gt;@<!-- -->all&lt;/b&gt; &amp;<!-- --> #<!-- -->1 https:<!-- -->//e.example"
    )


def test_markdown_inline_leaves_no_autolink_of_a_bare_www_address() -> None:
    from gcmschange.textsafe import markdown_inline

    text = markdown_inline("reset at www.evil-phish.example/reset or WWW.Evil.example")
    assert "www." not in text.lower() and "www\\.evil-phish.example" in text
    assert markdown_inline("air_maple stays, so does awww.b") == "air_maple stays, so does awww.b"
