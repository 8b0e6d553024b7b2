"""Text from inputs made safe for the medium it goes to: terminal, HTML, XML, iCalendar, Markdown.

Titles, descriptions and names come from change requests, audit records, incident records
and archives, and may hold what breaks a medium: terminal escape sequences, bidi controls
that reorder what a reader sees, characters XML 1.0 forbids, line breaks that start a new
line in a field meant to be one line, Markdown that makes a link or an image. Each medium
has one function here; each writer calls it at the one place its values meet that medium.
Schema validation may refuse such text earlier, but records outlive the schema that let
them in, so the writers never rely on it.
"""

from __future__ import annotations

import html
import re

# Whole escape sequences first, so their parameters (an OSC 8 hyperlink's URL, say) go too:
# string controls (OSC, DCS, SOS, PM, APC) up to their terminator, then CSI, then any other
# ESC sequence; the 8-bit (C1) introducers are taken with the 7-bit ones.
_ESCAPES = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]?"
)
_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Left out everywhere: C0 but tab and the line breaks, DEL, C1, bidi controls, lone
# surrogates (they cannot be encoded) and U+FFFE/U+FFFF (not characters in XML 1.0).
_DROPPED = {
    *(chr(c) for c in range(0x20) if chr(c) not in "\t" + _BREAKS),
    *(chr(c) for c in range(0x7F, 0xA0) if chr(c) not in _BREAKS),
    *_BIDI,
    *(chr(c) for c in range(0xD800, 0xE000)),
    "\ufffe",
    "\uffff",
}
_TABLE = {ord(c): None for c in _DROPPED} | {ord(c): "\n" for c in _BREAKS if c != "\n"}
_CRLF = re.compile(r"\r\n")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")

# Markdown: what makes emphasis, code, links, images, HTML, tables, strikethrough, math or a
# GitLab reference (@user, #1, !1, ~label, %milestone, $snippet, &epic) anywhere in a line;
# `_` only where it can open or close emphasis (not inside a word: air_maple stays as is);
# `://` so a URL is not made a link, nor `www.` (GitLab and GitHub link it without a scheme);
# and what starts a block at the start of a line.
_MD_ANYWHERE = re.compile(
    r"[\\`*\[\]<>|~@#!$%&{}]|(?<![^\W_])_|_(?![^\W_])|:(?=//)|(?<=\bwww)\.(?=\w)",
    re.IGNORECASE,
)
# After html.escape(quote=False), whose only entities are &amp; &lt; &gt;: none holds these.
_HTML_REFERENCE = re.compile(r"[@#!~%$]|&amp;|:(?=//)")
_MD_BLOCK_START = re.compile(r"^(?:([-+=])|(\d+)([.)]))")


def plain(value: str, *, one_line: bool = True) -> str:
    """`value` with no escape sequence and no control character but tab and newline.

    Line breaks of every kind become `\\n`; with `one_line`, each run of them (and the
    blanks around it) becomes one space, so the value cannot start a line of its own.
    """
    text = _ESCAPES.sub("", _CRLF.sub("\n", value)).translate(_TABLE)
    return _LINE_BREAK.sub(" ", text).replace("\t", " ") if one_line else text


def terminal(value: str) -> str:
    """A value from an input, as one line a terminal shows as text and never obeys."""
    return plain(value)


def shown(value: str) -> str:
    """A name from an input (a file, an archive member), for a terminal: what `plain` would
    drop or change is written as its escape (`\\x1b`, `\\u202e`), so the name stays exact."""
    if plain(value) == value:
        return value
    return "".join(c if plain(c) == c else _escaped(c) for c in value)


def _escaped(char: str) -> str:
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def html_text(value: str) -> str:
    """For an HTML page, before autoescaping: one line, nothing the HTML parser rejects."""
    return plain(value)


def xml_text(value: str) -> str:
    """For XML 1.0 character data and attribute values (the serialiser escapes `<&"`)."""
    return plain(value, one_line=False)


def ical_text(value: str, *, one_line: bool = True) -> str:
    """For an iCalendar TEXT value, before the writer's RFC 5545 escaping of `\\ ; , newline`:
    no control character (RFC 5545 allows none but tab in TEXT), a bare CR included."""
    return plain(value, one_line=one_line)


def markdown_inline(value: str) -> str:
    """For a one-line field of a Markdown document (GitLab flavour): it stays on its line,
    and every character that could make markup of it is backslash-escaped."""
    text = _MD_ANYWHERE.sub(lambda m: "\\" + m.group(0), plain(value).strip())
    return _MD_BLOCK_START.sub(_unblock, text)


def _unblock(match: re.Match[str]) -> str:
    sign, number, mark = match.groups()
    return f"\\{sign}" if sign else f"{number}\\{mark}"


def markdown_html(value: str) -> str:
    """For a one-line field inside an HTML block of a Markdown document (`<summary>`), where
    Markdown escapes are not read: HTML-escaped, on one line so the block cannot end, and an
    empty comment after each character that starts a GitLab reference or a URL, which splits
    the text a reference or an autolink would be read from (`@<!-- -->all` shows as `@all`)."""
    escaped = html.escape(plain(value).strip(), quote=False)
    return _HTML_REFERENCE.sub(lambda m: m.group(0) + "<!-- -->", escaped)
