"""The documentation holds together: every relative link and anchor in README.md and
docs/*.md leads somewhere, the README stays short, and a topic has one section.

Anchors are computed the way GitHub renders headings (lower case, punctuation
dropped, spaces to hyphens, `-1`, `-2` … for repeats), so a link that works here
works on the rendered page.
"""

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 300

#: Pages the README links to that another branch is writing. A link to one is not
#: reported while the page does not exist; once it exists, its links and anchors are
#: checked like any other. Remove an entry when its page has landed.
PAGES_WRITTEN_ELSEWHERE: dict[str, str] = {}

#: Topics that once had two sections each; each must keep exactly one.
SINGLE_SECTION_TOPICS = ("troubleshooting", "events", "tests", "performance")

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(text: str) -> list[str]:
    """The text of every heading outside code blocks, in order."""
    found = []
    for line in _prose_lines(text):
        match = _HEADING.match(line)
        if match:
            found.append(match.group(2))
    return found


def anchors(text: str) -> set[str]:
    """Every anchor a page offers: heading slugs (repeats numbered) and HTML anchors."""
    seen: Counter[str] = Counter()
    result: set[str] = set()
    for heading in headings(text):
        base = slug(heading)
        result.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    result.update(_HTML_ANCHOR.findall(text))
    return result


def link_targets(text: str) -> list[str]:
    """Every link target in prose (inline links, images, reference definitions)."""
    targets: list[str] = []
    for line in _prose_lines(text):
        stripped = _INLINE_CODE.sub("", line)
        targets.extend(_LINK.findall(stripped))
        definition = _REFERENCE_DEFINITION.match(stripped)
        if definition:
            targets.append(definition.group(1))
    return targets


def _problem(target: str, *, page: Path, root: Path, pending: frozenset[str]) -> str | None:
    """Why `target`, linked from `page`, leads nowhere; None when it resolves."""
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page.resolve()
    if not destination.is_relative_to(root):
        return f"{target}: outside the repository"
    relative = destination.relative_to(root).as_posix()
    if not destination.exists():
        return None if relative in pending else f"{target}: no such file {relative}"
    if not anchor or destination.suffix != ".md":
        return None
    if anchor in anchors(destination.read_text(encoding="utf-8")):
        return None
    return f"{target}: no heading with anchor #{anchor} in {relative}"


def broken_links(page: Path, *, root: Path, pending: frozenset[str] = frozenset()) -> list[str]:
    """`target: reason` for each relative link or anchor of `page` that leads nowhere."""
    problems = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if _SCHEME.match(target) or target.startswith("//"):
            continue
        problem = _problem(target, page=page, root=root.resolve(), pending=pending)
        if problem:
            problems.append(problem)
    return problems


@pytest.mark.parametrize("page", DOCS, ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_on_the_page_resolves(page: Path) -> None:
    assert broken_links(page, root=REPO, pending=frozenset(PAGES_WRITTEN_ELSEWHERE)) == []


def test_the_docs_folder_has_pages_to_check() -> None:
    assert len(DOCS) > 1, "docs/*.md not found: the link check would check only the README"


def test_the_readme_stays_within_300_lines() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines; keep it to what it is, the commands, how it works, "
        f"install and links, and move the rest to docs/"
    )


@pytest.mark.parametrize("topic", SINGLE_SECTION_TOPICS)
def test_a_topic_that_was_split_in_two_has_one_section(topic: str) -> None:
    sections = [
        f"{page.relative_to(REPO).as_posix()}: {heading}"
        for page in DOCS
        for heading in headings(page.read_text(encoding="utf-8"))
        if topic in re.findall(r"\w+", heading.lower())
    ]
    assert len(sections) == 1, sections


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Install on a cluster", "install-on-a-cluster"),
        ("Volume ownership: `fsGroupPolicy: None`", "volume-ownership-fsgrouppolicy-none"),
        ("With `--controller-service`", "with---controller-service"),
        ("volume_context keys", "volume_context-keys"),
        (
            '"Transport endpoint is not connected" in a pod',
            "transport-endpoint-is-not-connected-in-a-pod",
        ),
        (
            "Node plugin not ready: `mount.glusterfs not found`",
            "node-plugin-not-ready-mountglusterfs-not-found",
        ),
        (
            "Errors you may see (kubectl describe pod → Events)",
            "errors-you-may-see-kubectl-describe-pod--events",
        ),
        ("See [the reference](reference.md)", "see-the-reference"),
    ],
    ids=[
        "plain",
        "inline-code-and-colon",
        "leading-dashes",
        "underscore-kept",
        "quotes",
        "dot",
        "arrow",
        "link",
    ],
)
def test_anchors_are_the_ones_github_renders(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor() -> None:
    assert anchors("# Flags\n## Flags\n### Flags\n") == {"flags", "flags-1", "flags-2"}


def test_headings_and_links_inside_code_blocks_do_not_count() -> None:
    text = "# Real\n```yaml\n# my-cluster/kustomization.yaml\n[x](missing.md)\n```\n"
    assert (headings(text), link_targets(text)) == (["Real"], [])


def test_a_link_inside_inline_code_does_not_count() -> None:
    assert link_targets("run `[x](y.md)` then see [z](z.md)\n") == ["z.md"]


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("[a](missing.md)", "missing.md: no such file missing.md"),
        ("[a](other.md#nowhere)", "other.md#nowhere: no heading with anchor #nowhere in other.md"),
        ("[a](#nowhere)", "#nowhere: no heading with anchor #nowhere in page.md"),
        ("[a](../../etc/passwd)", "../../etc/passwd: outside the repository"),
    ],
    ids=[
        "missing-file",
        "missing-anchor-elsewhere",
        "missing-anchor-here",
        "outside-the-repository",
    ],
)
def test_a_broken_link_is_reported(tmp_path: Path, link: str, problem: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "other.md").write_text("# Other\n## Somewhere\n", encoding="utf-8")
    page = root / "page.md"
    page.write_text(f"# Page\n\nSee {link}.\n", encoding="utf-8")
    assert broken_links(page, root=root) == [problem]


def test_working_links_of_every_kind_are_not_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n## The `x` part\n", encoding="utf-8")
    (tmp_path / "deploy").mkdir()
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n[a](docs/other.md#the-x-part) [b](#page) [c](deploy/) "
        "[d](https://example.com/#x) [e](mailto:a@example.com)\n[f]: docs/other.md\n",
        encoding="utf-8",
    )
    assert broken_links(page, root=tmp_path) == []


def test_a_page_written_elsewhere_is_excused_only_while_it_is_missing(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "landed.md").write_text("# Landed\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("[a](docs/coming.md#plan) [b](docs/landed.md#plan)\n", encoding="utf-8")
    pending = frozenset({"docs/coming.md", "docs/landed.md"})
    assert broken_links(page, root=tmp_path, pending=pending) == [
        "docs/landed.md#plan: no heading with anchor #plan in docs/landed.md"
    ]
