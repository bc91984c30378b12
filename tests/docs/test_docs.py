"""The pages in docs/ are checked against the code: every snippet runs as a doctest, every
quoted block of code is still in the file it is quoted from, and every file, function and
class a page names exists.

Snippets are the ``>>>`` sessions inside ```` ```pycon ```` fences. Each page runs as one
session (a page builds on its earlier snippets), in a scratch directory (pages write SVGs),
with the fused kernels on and grad mode on when it starts, both restored afterwards. A
quoted block is a fence right after a ``<!-- quoted from PATH -->`` comment: its lines,
stripped of indentation, must appear in that file in the same order, blank lines aside (a
line ``...`` skips any number of lines of the file).
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import engine

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
REFERENCE_PAGES = {"formulas.md"}     # pages that only point into the code, no snippets
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

FENCE = re.compile(r"^\s*```")
QUOTE = re.compile(r"^<!-- quoted from (\S+) -->$")
NAMED = re.compile(r"`([\w/]+\.py)`, `(\w+)`")       # `engine/ops/rnn.py`, `lstm_cell`
PATH = re.compile(r"`([\w/]+\.py)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")     # [text](target#anchor)
PACKAGE_DIRS = ("engine", "engine/kernels", "engine/ops", "nn", "optim", "losses", "data",
                "examples", "benchmarks")


def fences(text: str):
    """``(info, first_line_index, lines, comment)`` per fenced block: the fence's info
    string, the index of its first content line, its lines and the comment line right
    before the opening fence ('' when there is none)."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if FENCE.match(lines[i]):
            info = lines[i].strip()[3:].strip()
            j = i + 1
            while j < len(lines) and not FENCE.match(lines[j]):
                j += 1
            comment = lines[i - 1].strip() if i > 0 else ""
            blocks.append((info, i + 1, lines[i + 1:j], comment))
            i = j + 1
        else:
            i += 1
    return blocks


def session(text: str) -> str:
    """The page with everything but the contents of its ``pycon`` fences blanked, so that
    doctest sees only the snippets and reports the page's own line numbers."""
    kept = [""] * len(text.splitlines())
    for info, start, lines, _ in fences(text):
        if info == "pycon":
            kept[start:start + len(lines)] = lines
    return "\n".join(kept) + "\n"


def run_session(text: str, name: str, filename: str):
    """Run a page's snippets as one doctest session; ``(examples, failures, report)``."""
    test = doctest.DocTestParser().get_doctest(session(text), {}, name, filename, 0)
    report = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    with engine.use_fused(True), engine.enable_grad():
        result = runner.run(test, out=report.append)
    return len(test.examples), result.failed, "".join(report)


@pytest.mark.parametrize("page", PAGES)
def test_snippets_run_as_doctests(page, tmp_path, monkeypatch):
    """Each page's snippets, run in order as one doctest session, print what they show."""
    path = DOCS / page
    monkeypatch.chdir(tmp_path)
    examples, failed, report = run_session(path.read_text(encoding="utf-8"), page, str(path))
    if page not in REFERENCE_PAGES:
        assert examples, f"{page}: no ```pycon snippet to run"
    assert failed == 0, report


def test_a_wrong_snippet_fails_with_the_page_line():
    """Only pycon fences run; a wrong expected output fails, reported at its line."""
    page = ("Text.\n\n```python\n>>> 1 / 0\n```\n\n```pycon\n>>> x = 2\n>>> x + 1\n4\n"
            "```\n")
    examples, failed, report = run_session(page, "page.md", "page.md")
    assert (examples, failed) == (2, 1)
    assert 'File "page.md", line 9' in report and "Expected:\n    4\nGot:\n    3" in report


@pytest.mark.parametrize("page", PAGES)
def test_every_session_is_fenced_as_pycon(page):
    """A ``>>>`` line outside a ``pycon`` fence would not be run: none may exist."""
    text = (DOCS / page).read_text(encoding="utf-8")
    inside = set()
    for info, start, lines, _ in fences(text):
        if info == "pycon":
            inside.update(range(start, start + len(lines)))
    stray = [n + 1 for n, line in enumerate(text.splitlines())
             if line.lstrip().startswith(">>>") and n not in inside]
    assert not stray, f"{page}: '>>>' outside a ```pycon fence on lines {stray}"


def _match_from(quoted: list[str], source: list[str], at: int) -> str | None:
    """The first quoted line not found where it belongs when the quote's first line is
    ``source[at]``, or None when the whole quote matches."""
    skipping = False
    for line in quoted[1:]:
        if line == "...":
            skipping = True
            continue
        if skipping:
            found = next((k for k in range(at + 1, len(source)) if source[k] == line), None)
        else:
            found = at + 1 if at + 1 < len(source) and source[at + 1] == line else None
        if found is None:
            return line
        at, skipping = found, False
    return None


def _in_order(quoted: list[str], source: list[str]) -> str | None:
    """None when ``quoted`` appears in ``source`` (consecutive lines, '...' a gap), else the
    quoted line where the closest attempt failed."""
    starts = [k for k, line in enumerate(source) if line == quoted[0]]
    if not starts:
        return quoted[0]
    misses = [_match_from(quoted, source, k) for k in starts]
    if None in misses:
        return None
    return max(misses, key=quoted.index)


@pytest.mark.parametrize("page", PAGES)
def test_quoted_code_is_in_the_file_it_names(page):
    """A block under ``<!-- quoted from PATH -->`` is PATH's code, line for line."""
    text = (DOCS / page).read_text(encoding="utf-8")
    for _, start, lines, comment in fences(text):
        match = QUOTE.match(comment)
        if not match:
            continue
        source_path = REPO / match.group(1)
        assert source_path.is_file(), f"{page}, line {start}: no file {match.group(1)}"
        source = [s.strip() for s in source_path.read_text(encoding="utf-8").splitlines()]
        quoted = [s.strip() for s in lines if s.strip()]
        missing = _in_order(quoted, [s for s in source if s])
        assert missing is None, (f"{page}, block at line {start}: {missing!r} is not in "
                                 f"{match.group(1)} at that place; update the quote")


@pytest.mark.parametrize("page", PAGES)
def test_named_files_functions_and_classes_exist(page):
    """Every `path.py` a page names exists (a bare `name.py` in some package), and in
    "`path.py`, `name`" the file defines the function, class or constant ``name``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    for rel in set(PATH.findall(text)):
        exists = (REPO / rel).is_file() if "/" in rel else any(
            (REPO / package / rel).is_file() for package in PACKAGE_DIRS)
        assert exists, f"{page} names {rel}, which does not exist"
    for rel, name in set(NAMED.findall(text)):
        source = (REPO / rel).read_text(encoding="utf-8")
        defined = re.search(rf"^\s*(?:def|class) {name}\b|^{name}\s*=", source, re.M)
        assert defined, f"{page}: {rel} defines no {name}"


@pytest.mark.parametrize("page", [f"docs/{name}" for name in PAGES] + ["README.md"])
def test_links_between_pages_resolve(page):
    """Every relative link of a docs page (and of the README) names an existing file."""
    path = REPO / page
    targets = LINK.findall(path.read_text(encoding="utf-8"))
    broken = [t for t in targets if "://" not in t and not (path.parent / t).exists()]
    assert not broken, f"{page} links to missing files: {broken}"


def test_the_quote_check_can_fail():
    """The order check rejects a missing line, a wrong order and a gap without '...'."""
    source = ["a = 1", "b = 2", "c = 3", "d = 4"]
    assert _in_order(["b = 2", "c = 3"], source) is None
    assert _in_order(["a = 1", "...", "d = 4"], source) is None
    assert _in_order(["a = 1", "d = 4"], source) == "d = 4"
    assert _in_order(["c = 3", "b = 2"], source) == "b = 2"
    assert _in_order(["e = 5"], source) == "e = 5"
    assert _in_order(["b = 2", "d = 4"], ["b = 2", "x", "b = 2", "d = 4"]) is None
