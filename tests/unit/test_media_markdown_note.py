"""The plan note (Markdown, on the merge request) and the text plan (terminal) with hostile
titles, task names, host names and failure messages: nothing in them starts a line, makes a
link, an image, a heading or HTML, mentions anyone, or reaches the terminal as a control."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from gcmschange import textsafe
from gcmschange.ci import mrnote
from gcmschange.plan import report
from gcmschange.plan.check import HostPlan, Plan, PlannedTask

HOSTILE = (
    "TLS 1.3\n\n### Approved by the change board\n- [x] all checks passed\r\n"
    "[docs](https://evil.example/) ![pixel](https://evil.example/p.png) "
    "<img src=x onerror=alert(1)> @all #1 !2 ~label `code` *bold* _em_ | cell | "
    "https://evil.example/ \x1b]8;;https://evil.example/\x07here\x1b]8;;\x07 \x1b[2J\u202eevil"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _plan() -> Plan:
    task = PlannedTask(f"Render {HOSTILE}", "--- a\n+++ b\n@@ -1 +1 @@\n-old\n+new\n")
    return Plan(
        change="CHG-LAB-0002",
        title=HOSTILE,
        environment="lab",
        digest="d" * 64,
        created="2026-01-02T00:00:00Z",
        hosts=(
            HostPlan("gw-1", "partner_gateway", "changed", (task,)),
            HostPlan(f"gw-2\n</details>\n\n# {HOSTILE}", "partner_gateway", "changed", (task,)),
            HostPlan("gw-3", "partner_gateway", "failed", message=f"ssh: {HOSTILE}"),
        ),
        systems=("partner_gateway",),
        blast_radius=("partner_gateway", "eta"),
        partners=("air_maple",),
    )


def _tokens(markdown: str) -> list[str]:
    parsed = MarkdownIt("commonmark").enable("table").parse(markdown)
    kinds = [t.type for t in parsed]
    for token in parsed:
        kinds += [c.type for c in token.children or ()]
    return kinds


def test_the_plan_note_keeps_hostile_text_inside_its_fields() -> None:
    markdown = report.markdown(_plan())
    kinds = _tokens(markdown)
    for forbidden in ("link_open", "image", "html_inline", "em_open", "s_open"):
        assert forbidden not in kinds, forbidden
    assert kinds.count("code_inline") == 1  # the digest
    assert kinds.count("heading_open") == 1  # "### gcmschange plan: ..." and nothing else
    assert kinds.count("bullet_list_open") == 1  # the failed host, one item
    assert kinds.count("list_item_open") == 1
    assert kinds.count("table_open") == 1  # the summary table only
    assert not CONTROL.search(markdown)
    lines = markdown.splitlines()
    title = next(i for i, line in enumerate(lines) if line.startswith("TLS 1.3"))
    assert "Approved by the change board" in lines[title]  # the newline did not make a line
    assert not any(line.startswith(("###  Approved", "- [x]", "# ")) for line in lines)
    for mention in ("@all", "#1", "!2", "~label"):
        assert f"\\{mention}" in markdown and f" {mention}" not in markdown
    # <summary> is HTML, where Markdown escapes are not read: the host name is HTML-escaped.
    assert "<summary>gw-2 &lt;/details&gt; #<!-- --> TLS 1.3" in markdown
    assert markdown.count("</details>") == 2  # only the two the note opened


def test_the_note_marker_stays_one_comment_whatever_the_change_argument() -> None:
    body = mrnote.note_body("CHG-1 --> [x](https://evil.example)\n# hi", "plan\n")
    first = body.splitlines()[0]
    assert first.startswith("<!-- gcmschange:plan ") and first.endswith(" -->")
    assert first.count("-->") == 1 and "\n# hi" not in body


def test_the_text_plan_sends_no_control_to_the_terminal() -> None:
    text = report.text(_plan())
    assert not CONTROL.search(text)
    assert "\x1b" not in text
    first = text.splitlines()[0]
    assert first.startswith("plan CHG-LAB-0002 (lab): TLS 1.3") and "change board" in first


def test_markdown_inline_leaves_plain_words_alone() -> None:
    assert textsafe.markdown_inline("air_maple, case_api: ssh timed out") == (
        "air_maple, case_api: ssh timed out"
    )
    assert textsafe.markdown_inline("- 1. item") == "\\- 1. item"
    assert textsafe.markdown_inline("2026. A year") == "2026\\. A year"
