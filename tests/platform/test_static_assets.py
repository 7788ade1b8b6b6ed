"""Static front-end assets: vendored files, their licences and versions, and CSP hygiene.

No browser needed: these tests read files only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "static"
VENDOR = STATIC / "vendor"
TEMPLATES = ROOT / "templates"
KEERPUNT_JS = STATIC / "js" / "keerpunt.js"
KEERPUNT_CSS = STATIC / "css" / "keerpunt.css"

# package, version, files (relative to static/vendor), licence file, a phrase of that licence
VENDORED = [
    ("htmx.org", "2.0.11", ["htmx/htmx.min.js"], "htmx/LICENSE", "Zero-Clause BSD"),
    ("htmx-ext-ws", "2.0.4", ["htmx-ext-ws/ws.js"], "htmx-ext-ws/LICENSE", "Zero Clause License"),
    (
        "axe-core",
        "4.14.1",
        ["axe-core/axe.min.js"],
        "axe-core/LICENSE",
        "Mozilla Public License, version 2.0",
    ),
]

EXTERNAL_REF = re.compile(
    r"<\s*(?:script|link|img|iframe|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//",
    re.IGNORECASE,
)
CSS_EXTERNAL = re.compile(
    r"(?:@import\s+(?:url\()?\s*[\"']?|url\(\s*[\"']?)\s*(?:https?:)?//", re.IGNORECASE
)
CDN_HOSTS = re.compile(r"unpkg|jsdelivr|cdnjs|googleapis|npmjs\.(?:org|com)", re.IGNORECASE)


def _text_files(*roots: Path):
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in {
                ".html",
                ".htm",
                ".j2",
                ".jinja",
                ".jinja2",
                ".js",
                ".mjs",
                ".css",
                ".md",
                ".txt",
                ".svg",
                ".xml",
            }:
                yield path


@pytest.mark.parametrize("package,version,files,licence,phrase", VENDORED)
def test_vendored_files_and_licence_exist(package, version, files, licence, phrase):
    for rel in files:
        path = VENDOR / rel
        assert path.is_file(), f"{package}: missing {rel}"
        assert path.stat().st_size > 1000, f"{package}: {rel} looks empty"
    licence_path = VENDOR / licence
    assert licence_path.is_file(), f"{package}: missing licence {licence}"
    assert phrase in licence_path.read_text(encoding="utf-8")


def test_axe_third_party_licences_kept():
    assert (VENDOR / "axe-core" / "LICENSE-3RD-PARTY.txt").is_file()


@pytest.mark.parametrize("package,version,files,licence,phrase", VENDORED)
def test_vendor_readme_names_version_and_integrity(package, version, files, licence, phrase):
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    assert f"`{package}` | {version} |" in readme, f"README table lacks {package} {version}"
    m = re.search(
        rf"`{re.escape(package)}@{re.escape(version)}`: `(sha512-[A-Za-z0-9+/=]+)`", readme
    )
    assert m, f"README lacks the npm integrity of {package}@{version}"
    assert len(m.group(1)) == len("sha512-") + 88


def test_vendored_file_hashes_match_readme():
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- sha256-start -->", 1)[1].split("<!-- sha256-end -->", 1)[0]
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})\s+(\S+)$", block, re.M)
    )
    on_disk = {
        p.relative_to(VENDOR).as_posix()
        for p in VENDOR.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert set(listed) == on_disk, "README sha256 block and vendored files differ"
    for name, digest in listed.items():
        actual = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert actual == digest, f"{name} changed since vendoring; update README (and check why)"


def test_vendored_versions_inside_files():
    assert 'version:"2.0.11"' in (VENDOR / "htmx/htmx.min.js").read_text(encoding="utf-8")
    assert "axe v4.14.1" in (VENDOR / "axe-core/axe.min.js").read_text(encoding="utf-8")[:500]


def test_keerpunt_js_has_no_eval():
    source = KEERPUNT_JS.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    code = re.sub(r"^\s*//.*$", "", code, flags=re.M)
    assert "eval(" not in code
    assert "new Function" not in code
    assert not re.search(r"set(?:Timeout|Interval)\(\s*['\"`]", code), "string timers are eval"
    assert "innerHTML" not in code.replace("tpl.innerHTML", ""), "only the inert template parse"


def test_keerpunt_js_uses_events_present_in_vendored_sources():
    source = KEERPUNT_JS.read_text(encoding="utf-8")
    htmx = (VENDOR / "htmx/htmx.min.js").read_text(encoding="utf-8")
    ws = (VENDOR / "htmx-ext-ws/ws.js").read_text(encoding="utf-8")
    events = set(re.findall(r"addEventListener\('(htmx:[A-Za-z]+)'", source))
    assert {
        "htmx:configRequest",
        "htmx:oobBeforeSwap",
        "htmx:wsOpen",
        "htmx:wsClose",
        "htmx:wsError",
        "htmx:wsAfterMessage",
    } <= events
    for event in events:
        assert f"'{event}'" in ws or f'"{event}"' in htmx, f"{event} not fired by vendored code"
    # the socket wrapper API keerpunt.js calls
    assert "send: wrapper.send.bind(wrapper)" in ws
    assert "reconnect: wrapper.init.bind(wrapper)" in ws
    # oobBeforeSwap detail shape
    assert re.search(
        r'\{shouldSwap:(?:true|!0),target:\w+,fragment:\w+\};if\(!\w+\(\w+,"htmx:oobBeforeSwap"',
        htmx,
    )


def test_keerpunt_js_has_no_hard_coded_status_text():
    source = KEERPUNT_JS.read_text(encoding="utf-8")
    for word in ("Verbonden", "verbinding", "Offline", "Online"):
        assert f"'{word}" not in source and f'"{word}' not in source


def test_css_covers_required_classes():
    css = KEERPUNT_CSS.read_text(encoding="utf-8")
    for selector in (
        "header.kp-header",
        "main#main",
        "a.kp-skip",
        ".kp-card",
        ".kp-item",
        ".kp-item.is-editing",
        ".kp-changed-notice",
        ".kp-form",
        ".kp-field",
        ".kp-error",
        '[aria-invalid="true"]',
        ".kp-notice",
        ".kp-pseudonym",
        ".kp-demo-banner",
        "table.kp-table",
        ".kp-table-wrap",
        ".kp-presence",
        "#kp-conn.is-online",
        "#kp-conn.is-offline",
        ".kp-steps",
        ".kp-btn",
        ".kp-btn-primary",
        ".kp-btn-danger",
        ".kp-visually-hidden",
        ":focus-visible",
        "prefers-reduced-motion",
    ):
        assert selector in css, f"keerpunt.css lacks {selector}"
    assert re.search(r":focus-visible\s*\{[^}]*outline:\s*[2-9]px", css)


def test_no_external_urls_in_static_or_templates():
    offenders = []
    for path in _text_files(STATIC, TEMPLATES):
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(ROOT).as_posix()
        vendored = path.is_relative_to(VENDOR) and path.name != "README.md"
        if not vendored:
            if EXTERNAL_REF.search(text):
                offenders.append(f"{rel}: external script/link src/href")
            if CDN_HOSTS.search(text):
                offenders.append(f"{rel}: names a CDN or registry host")
        if path.suffix.lower() == ".css" and CSS_EXTERNAL.search(text):
            offenders.append(f"{rel}: external url() or @import")
    assert not offenders, "\n".join(offenders)


def test_vendored_code_does_not_load_scripts_from_elsewhere():
    for rel in ("htmx/htmx.min.js", "htmx-ext-ws/ws.js"):
        text = (VENDOR / rel).read_text(encoding="utf-8")
        assert not EXTERNAL_REF.search(text), rel
        assert not CDN_HOSTS.search(text), rel
