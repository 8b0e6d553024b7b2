"""Rendering: strict, sandboxed, deterministic, and refusing any path that leaves the output dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from gcmschange.errors import InvalidInputError, ValidationError
from gcmschange.model import Host
from gcmschange.render.configs import (
    RenderedFile,
    RenderedSet,
    Renderer,
    host_context,
    safe_output_path,
    shared_context,
    template_files,
)
from gcmschange.rules.estate import Inventory


def _renderer(tmp_path: Path, **templates: str) -> Renderer:
    for name, body in templates.items():
        path = tmp_path / "templates" / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return Renderer(tmp_path / "templates")


def _error(renderer: Renderer, name: str, **context: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        renderer.render(name, context, host="web-1")
    return info.value


def test_missing_variable_names_template_line_variable_and_host(tmp_path: Path) -> None:
    r = _renderer(tmp_path, **{"a.j2": "one {{ x }}\ntwo\nthree {{ missing_var }}\n"})
    err = _error(r, "a.j2", x=1)
    assert err.message == (
        "templates/a.j2:3: undefined variable: 'missing_var' is undefined (host web-1)"
    )
    assert err.problems[0].location.line == 3


def test_error_inside_an_included_template_names_that_template(tmp_path: Path) -> None:
    r = _renderer(
        tmp_path,
        **{
            "main.j2": "{% include 'parts__inner.j2'.replace('__', '/') %}\n",
            "parts__inner.j2": "\n{{ nope }}\n",
        },
    )
    err = _error(r, "main.j2")
    assert err.message.startswith("templates/parts/inner.j2:2: undefined variable: 'nope'")


def test_syntax_error_names_template_and_line(tmp_path: Path) -> None:
    r = _renderer(tmp_path, **{"bad.j2": "fine\n{% if x %}\nno end\n"})
    err = _error(r, "bad.j2", x=1)
    assert err.message.startswith("templates/bad.j2:")
    assert "template syntax error" in err.message
    assert "endif" in err.message


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ hostvars.update({'x': 1}) }}",
    ],
)
def test_templates_cannot_reach_python_internals_or_mutate_shared_data(
    tmp_path: Path, source: str
) -> None:
    r = _renderer(tmp_path, **{"evil.j2": f"line one\n{source}\n"})
    err = _error(r, "evil.j2", hostvars={})
    assert err.message.startswith(
        "templates/evil.j2:2: blocked by the sandbox: access to attribute"
    )
    assert err.problems[0].code == "sandbox"


def test_runtime_error_in_template_is_an_input_error_not_a_crash(tmp_path: Path) -> None:
    r = _renderer(tmp_path, **{"div.j2": "{{ 1 // zero }}\n"})
    err = _error(r, "div.j2", zero=0)
    assert err.message.startswith("templates/div.j2:1: template error:")


def test_change_variables_are_data_never_templates(tmp_path: Path) -> None:
    r = _renderer(tmp_path, **{"v.j2": "banner={{ banner }}\n"})
    out = r.render("v.j2", {"banner": "{{ lookup('pipe', 'id') }}"})
    assert out == "banner={{ lookup('pipe', 'id') }}\n"


def test_a_page_escapes_what_it_prints_and_a_configuration_file_does_not(
    tmp_path: Path,
) -> None:
    banner = "<b>x</b> & <script>1</script>"
    r = _renderer(
        tmp_path,
        **{"index.html.j2": "<p>{{ banner }}</p>\n", "feed.xml.j2": "<t>{{ banner }}</t>\n"},
        **{"nginx.conf.j2": "# {{ banner }}\n", "site.htm": "{{ banner }}"},
    )
    escaped = "&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt;1&lt;/script&gt;"
    assert r.render("index.html.j2", {"banner": banner}) == f"<p>{escaped}</p>\n"
    assert r.render("feed.xml.j2", {"banner": banner}) == f"<t>{escaped}</t>\n"
    assert r.render("site.htm", {"banner": banner}) == escaped
    assert r.render("nginx.conf.j2", {"banner": banner}) == f"# {banner}\n"


def test_compiled_once_and_deterministic(tmp_path: Path) -> None:
    r = _renderer(tmp_path, **{"d.j2": "{% for k, v in d.items() %}{{ k }}={{ v }}\n{% endfor %}"})
    first = r.render("d.j2", {"d": {"b": 2, "a": 1}})
    assert r.template("d.j2") is r.template("d.j2")
    assert first == r.render("d.j2", {"d": {"b": 2, "a": 1}}) == "b=2\na=1\n"


def test_host_context_order_and_shared_parts(tmp_path: Path) -> None:
    host = Host("web-1", "portal", {"port": 80, "inventory_hostname": "spoofed"})
    inv = Inventory("lab", tmp_path, {"web-1": host}, {"portal": ("web-1",)})
    ctx = host_context(host, inv, {"port": 8080}, shared_context(inv))
    assert ctx["port"] == 8080  # the change wins over the inventory
    assert ctx["inventory_hostname"] == "web-1"  # facts win over both
    assert ctx["groups"] == {"portal": ["web-1"]}
    assert ctx["hostvars"]["web-1"]["port"] == 80


@pytest.mark.parametrize(
    ("dest", "reason"),
    [
        ("etc/nginx/nginx.conf", "destination must be an absolute path on the host"),
        ("/etc/../../root/.ssh/authorized_keys", "destination contains '..'"),
    ],
)
def test_unsafe_destinations_are_refused(tmp_path: Path, dest: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        safe_output_path(tmp_path, "web-1", dest)
    assert info.value.message == f"web-1:{dest}: {reason}"


def test_host_name_must_be_one_path_component(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="host name is not a single path component"):
        safe_output_path(tmp_path, "../web-1", "/etc/x")


@pytest.mark.parametrize("dangling", [False, True])
def test_symlink_leading_out_of_the_output_dir_is_refused_and_nothing_written(
    tmp_path: Path, dangling: bool
) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "web-1").mkdir(parents=True)
    if not dangling:
        outside.mkdir()
    (out / "web-1" / "etc").symlink_to(outside)
    rendered = RenderedSet(
        "lab",
        (
            RenderedFile("web-1", "/opt/ok.txt", "t.j2", "ok\n"),
            RenderedFile("web-1", "/etc/evil.conf", "t.j2", "evil\n"),
        ),
    )
    with pytest.raises(
        InvalidInputError, match=r"web-1:/etc/evil.conf: output path resolves outside"
    ):
        rendered.write(out)
    assert not (out / "web-1" / "opt").exists()
    assert not outside.exists() or not any(outside.iterdir())


def test_write_and_masked(tmp_path: Path) -> None:
    rendered = RenderedSet("lab", (RenderedFile("web-1", "/etc/a.conf", "t.j2", "key=s3cr3t\n"),))
    rendered.masked(["s3cr3t"]).write(tmp_path / "out")
    assert (tmp_path / "out/web-1/etc/a.conf").read_text() == "key=********\n"
    assert rendered.manifest() == {"web-1": ["/etc/a.conf"]}


def test_template_files_follow_includes_and_fall_back_to_the_tree(tmp_path: Path) -> None:
    _renderer(
        tmp_path,
        **{
            "a.j2": "{% include 'b.j2' %}",
            "b.j2": "{% import 'c.j2' as c %}",
            "c.j2": "",
            "other.j2": "",
            "dyn.j2": "{% include name %}",
        },
    )
    base = tmp_path / "templates"
    assert [p.name for p in template_files(base, ["a.j2"])] == ["a.j2", "b.j2", "c.j2"]
    assert len(template_files(base, ["dyn.j2"])) == 5
