#!/usr/bin/env python3
"""Repository checks run by scripts/test-all.sh before the build (stdlib only).

1. Self-contained: no file of the repository refers to a directory beside the clone (the build
   machine's shared folder of samples and notes): a user's clone has nothing beside it, so a test
   or a doc that reads from there fails or misleads. Test data lives in tests/fixtures/.
2. Links: every relative link in every Markdown file resolves: the file or directory exists
   and, for `#anchor` links into Markdown, the heading exists (GitHub's anchor rules). A path to
   a Markdown file named in any other file (a comment in an example config, a doc comment:
   `see docs/operations.md`) exists too, relative to the repository root or to that file.

Prints each problem as `path:line: what` and exits 1 if there is any; exits 0 and prints a
one-line summary otherwise.
"""

import os
import re
import subprocess
import sys
import unicodedata
from urllib.parse import unquote

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {".git", "target", "node_modules"}
# Written in two parts so that this file does not match itself.
OUTSIDE = [".." + "/shared", "/work" + "/shared"]


def repository_files():
    """Tracked and untracked-but-not-ignored files (every file when git is not there)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, check=True, capture_output=True,
        ).stdout
        files = [f for f in out.decode("utf-8", "replace").split("\0") if f]
        return [f for f in files if os.path.isfile(os.path.join(ROOT, f))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for directory, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
            for name in names:
                files.append(os.path.relpath(os.path.join(directory, name), ROOT))
        return files


def read_text(path):
    try:
        with open(os.path.join(ROOT, path), "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace")


def check_outside_references(files, problems):
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for needle in OUTSIDE:
                if needle in line:
                    problems.append(
                        f"{path}:{number}: refers to `{needle}` outside the repository "
                        "(copy what is needed into the repository, e.g. tests/fixtures/)"
                    )


FENCE = re.compile(r"^\s{0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") — target without spaces, or <target with spaces>
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"""<(?:a|img)\s[^>]*?(?:href|src)=["']([^"']+)["']""", re.I)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*?(?:name|id)=["']([^"']+)["']""", re.I)


def markdown_lines(text):
    """(line number, text) of the lines outside fenced code blocks, inline code removed."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, INLINE_CODE.sub("", line)


def slug(heading):
    """GitHub's anchor for a heading text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links → their text
    text = text.replace("`", "")
    text = re.sub(r"<[^>]+>", "", text)
    text = text.strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "-_ " or category[0] in "LN" or category == "Mn":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


ANCHORS = {}


def anchors_of(path):
    if path not in ANCHORS:
        found = set()
        counts = {}
        text = read_text(path) or ""
        fence = None
        for line in text.splitlines():
            match = FENCE.match(line)
            if match:
                if fence is None:
                    fence = match.group(1)
                elif match.group(1) == fence:
                    fence = None
                continue
            if fence is not None:
                continue
            heading = HEADING.match(line)
            if heading:
                base = slug(heading.group(2))
                n = counts.get(base, 0)
                counts[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
            for anchor in HTML_ANCHOR.findall(line):
                found.add(anchor)
        ANCHORS[path] = found
    return ANCHORS[path]


def check_link(source, number, target, problems):
    target = target.strip()
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1]
    if not target or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
        return  # absolute URL (http:, https:, mailto:, …)
    path_part, _, anchor = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    if path_part == "":
        resolved = source
    elif path_part.startswith("/"):
        resolved = os.path.normpath(path_part.lstrip("/"))
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), path_part))
    if resolved.startswith(".."):
        problems.append(f"{source}:{number}: link `{target}` leaves the repository")
        return
    full = os.path.join(ROOT, resolved)
    if not os.path.exists(full):
        problems.append(f"{source}:{number}: broken link `{target}`: {resolved} does not exist")
        return
    if anchor and resolved.endswith(".md") and os.path.isfile(full):
        if unquote(anchor).lower() not in {a.lower() for a in anchors_of(resolved)}:
            problems.append(f"{source}:{number}: broken link `{target}`: no heading #{anchor} in {resolved}")


def check_links(files, problems):
    checked = 0
    for path in files:
        if not path.endswith(".md"):
            continue
        text = read_text(path)
        if text is None:
            continue
        for number, line in markdown_lines(text):
            targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
            targets += REFERENCE_DEF.findall(line)
            targets += HTML_LINK.findall(line)
            for target in targets:
                checked += 1
                check_link(path, number, target, problems)
    return checked


MENTIONED_MD = re.compile(r"(?<![\w/.\-:])((?:\.\.?/)*(?:[\w.\-]+/)+[\w.\-]+\.md)\b")


def check_mentioned_markdown(files, problems):
    """Paths of Markdown files named in non-Markdown files (comments, doc comments)."""
    checked = 0
    for path in files:
        if path.endswith(".md"):
            continue
        text = read_text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for mentioned in MENTIONED_MD.findall(line):
                checked += 1
                candidates = [mentioned, os.path.join(os.path.dirname(path), mentioned)]
                if not any(os.path.exists(os.path.join(ROOT, c)) for c in candidates):
                    problems.append(f"{path}:{number}: names `{mentioned}`, which does not exist")
    return checked


def main():
    files = repository_files()
    problems = []
    check_outside_references(files, problems)
    links = check_links(files, problems)
    links += check_mentioned_markdown(files, problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-repo: {len(problems)} problem(s) in {len(files)} files")
        return 1
    markdown = sum(1 for f in files if f.endswith(".md"))
    print(f"check-repo: {len(files)} files self-contained; {links} links (in {markdown} Markdown files and paths named elsewhere) resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
