#!/usr/bin/env python3
"""Checks the built book in headless Chromium (standard library only).

    scripts/check_book.py [SITE] [--src book] [--repo .] [--out target/book-check]
    scripts/check_book.py --self-test

Every HTML page of SITE (default target/book) is opened in Chromium with a small script added
that reports, once the page has loaded, every link (as the browser resolves it), every element id,
and whether each <img> and each inline <svg> in the page's content rendered (an image with
naturalWidth 0, an SVG with an empty bounding box, fails). Then:

- a link inside the site must name an existing file, and its #fragment an id on that page;
- a link that leaves the site (e.g. ../results/h200-latency-1/summary.json) is a link into the
  repository: it is resolved from the chapter's source file under SRC and must name a file or
  folder that git tracks, so it works in a clean clone;
- http(s)/mailto links are not fetched (counted only).

A screenshot of the first notebook chapter (a page whose source has a {{#notebook}} line), or of
index.html, is saved to OUT. Exit status 1 lists every problem. --self-test builds a tiny site with
a broken link, a missing anchor, a broken image and an empty SVG and checks they are all caught,
and that a clean site passes.
"""
import argparse
import functools
import concurrent.futures
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

PROBE = r"""
<script>
window.addEventListener('load', function () { setTimeout(function () {
  var content = document.querySelector('main') || document.body;
  var r = {links: [], ids: [], images: [], svgs: []};
  document.querySelectorAll('a[href]').forEach(function (a) { r.links.push([a.getAttribute('href'), a.href]); });
  document.querySelectorAll('[id]').forEach(function (e) { r.ids.push(e.id); });
  document.querySelectorAll('a[name]').forEach(function (e) { r.ids.push(e.getAttribute('name')); });
  content.querySelectorAll('img').forEach(function (i) {
    r.images.push({src: (i.getAttribute('src') || '').slice(0, 100), ok: i.complete && i.naturalWidth > 0});
  });
  content.querySelectorAll('svg').forEach(function (s) {
    if (s.parentElement && s.parentElement.closest('svg')) return;  // nested: its root is checked
    if (s.closest('button, .buttons, .fa-svg')) return;               // theme icons
    var b = s.getBoundingClientRect();
    r.svgs.push({what: s.outerHTML.slice(0, 80), ok: b.width > 0 && b.height > 0});
  });
  var pre = document.createElement('pre');
  pre.id = '__book_check__';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
}, 0); });
</script>
"""

RESULT_RE = re.compile(r'<pre id="__book_check__">(.*?)</pre>', re.S)
DIRECTIVE_RE = re.compile(r"^\s*\{\{#notebook \S+\}\}\s*$", re.M)
SKIP_PAGES = {"404.html"}  # uses an absolute <base href> meant for a web server


@functools.cache
def chromium():
    """The first browser on the PATH that starts (scripts/chromium.sh installs one where none does)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path and subprocess.run([path, "--version"], capture_output=True, timeout=60).returncode == 0:
            return path
    sys.exit("check_book: no Chromium that starts (scripts/chromium.sh installs Debian's `chromium`)")


def chrome_args(extra):
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--allow-file-access-from-files", "--virtual-time-budget=5000", *extra]


def probe_page(copy_root, rel):
    url = (copy_root / rel).resolve().as_uri()
    proc = subprocess.run(chrome_args(["--dump-dom", url]), capture_output=True, text=True, timeout=120)
    m = RESULT_RE.search(proc.stdout)
    if not m:
        return rel, None, f"Chromium gave no result (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    return rel, json.loads(html.unescape(m.group(1))), None


def tracked(repo, rel):
    """True when git tracks the file, or a file under the folder, `rel` (relative to repo)."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "--", rel], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() != ""


def check(site, src, repo, out_dir, jobs=3):
    site, src, repo = site.resolve(), src.resolve(), repo.resolve()
    if not (site / "index.html").exists():
        return [f"{site}: no index.html (is the book built?)"]
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if p.name not in SKIP_PAGES)

    # Work on a copy with the probe added to each page; the built site stays as mdBook wrote it.
    work = Path(tempfile.mkdtemp(prefix="book-check-"))
    copy_root = work / "site"
    shutil.copytree(site, copy_root)
    for rel in pages:
        page = copy_root / rel
        text = page.read_text(encoding="utf-8")
        # Before the page's own </body>: the last one (a script may hold the string too).
        head, sep, tail = text.rpartition("</body>")
        page.write_text(head + PROBE + sep + tail if sep else text + PROBE, encoding="utf-8")

    results, problems = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for rel, data, err in pool.map(lambda r: probe_page(copy_root, r), pages):
            if err:
                problems.append(f"{rel}: {err}")
            else:
                results[rel] = data

    external = 0
    for rel, data in sorted(results.items()):
        for img in data["images"]:
            if not img["ok"]:
                problems.append(f"{rel}: image does not render: {img['src']}")
        for svg in data["svgs"]:
            if not svg["ok"]:
                problems.append(f"{rel}: inline SVG has no size: {svg['what']}")
        for raw, resolved in data["links"]:
            parsed = urllib.parse.urlparse(resolved)
            if parsed.scheme in ("http", "https", "mailto"):
                external += 1
                continue
            if parsed.scheme != "file":
                continue  # javascript: and the like
            target = Path(urllib.parse.unquote(parsed.path))
            try:
                target_rel = target.relative_to(copy_root)
            except ValueError:
                # Leaves the site: a link into the repository, resolved from the chapter's source.
                chapter_dir = src / Path(rel).parent
                in_repo = Path(os.path.normpath(chapter_dir / urllib.parse.unquote(raw.split("#")[0])))
                try:
                    repo_rel = in_repo.relative_to(repo)
                except ValueError:
                    problems.append(f"{rel}: link {raw} leaves the repository")
                    continue
                if not in_repo.exists():
                    problems.append(f"{rel}: link {raw}: {repo_rel} does not exist in the repository")
                elif not tracked(repo, str(repo_rel)):
                    problems.append(f"{rel}: link {raw}: {repo_rel} is not tracked by git")
                continue
            target_file = site / target_rel
            if target_file.is_dir():
                target_file = target_file / "index.html"
                target_rel = target_rel / "index.html"
            if not target_file.exists():
                problems.append(f"{rel}: link {raw}: {target_rel} does not exist")
                continue
            fragment = urllib.parse.unquote(parsed.fragment)
            if fragment and str(target_rel) in results and fragment not in results[str(target_rel)]["ids"]:
                problems.append(f"{rel}: link {raw}: no #{fragment} in {target_rel}")

    out_dir.mkdir(parents=True, exist_ok=True)
    shot_page = first_notebook_page(site, src, pages) or "index.html"
    shot = out_dir / (Path(shot_page).stem + ".png")
    subprocess.run(chrome_args([f"--screenshot={shot.resolve()}", "--window-size=1280,1600",
                                (site / shot_page).as_uri()]), capture_output=True, timeout=120)
    if not shot.exists() or shot.stat().st_size == 0:
        problems.append(f"screenshot of {shot_page} was not written")
    shutil.rmtree(work, ignore_errors=True)

    n_links = sum(len(d["links"]) for d in results.values())
    n_img = sum(len(d["images"]) + len(d["svgs"]) for d in results.values())
    print(f"check_book: {len(results)} pages, {n_links} links ({external} external, not fetched), "
          f"{n_img} images/SVGs; screenshot {shot}")
    return problems


def first_notebook_page(site, src, pages):
    """The first page, in SUMMARY.md order, whose source has a notebook directive."""
    summary = src / "SUMMARY.md"
    order = []
    if summary.exists():
        text = re.sub(r"<!--.*?-->", "", summary.read_text(encoding="utf-8"), flags=re.S)
        order = [str(Path(m).with_suffix(".html")) for m in re.findall(r"\]\(([^)]+\.md)\)", text)]
    for rel in [p for p in order if p in pages] + pages:
        md = src / Path(rel).with_suffix(".md")
        if md.exists() and DIRECTIVE_RE.search(md.read_text(encoding="utf-8")):
            return rel
    return None


def self_test():
    tmp = Path(tempfile.mkdtemp(prefix="book-check-selftest-"))
    repo = tmp / "repo"
    src, site = repo / "book", repo / "site"
    src.mkdir(parents=True)
    site.mkdir()
    (repo / "data").mkdir()
    (repo / "data" / "run.json").write_text("{}")
    (repo / "data" / "untracked.json").write_text("{}")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "data/run.json"], check=True)
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    good = (f'<html><body><main><h1 id="top">Top</h1><a href="other.html#sec">ok</a>'
            f'<a href="../data/run.json">run</a><a href="https://example.org/">ext</a>'
            f'<img src="data:image/png;base64,{png}">'
            f'<svg width="20" height="10"><rect width="20" height="10"/></svg></main></body></html>')
    (site / "index.html").write_text(good)
    (site / "other.html").write_text('<html><body><main><h2 id="sec">Sec</h2></main></body></html>')
    problems = check(site, src, repo, tmp / "out", jobs=2)
    assert problems == [], f"clean site should pass: {problems}"

    broken = (good.replace("</main>", '<a href="missing.html">x</a><a href="other.html#nope">y</a>'
                           '<a href="../data/untracked.json">u</a><a href="../data/gone.json">g</a>'
                           '<img src="nothing.png"><svg width="0" height="0"></svg></main>'))
    (site / "index.html").write_text(broken)
    problems = check(site, src, repo, tmp / "out", jobs=2)
    expected = ["missing.html does not exist", "no #nope in other.html", "untracked.json is not tracked",
                "data/gone.json does not exist", "image does not render: nothing.png", "inline SVG has no size"]
    for e in expected:
        assert any(e in p for p in problems), f"not caught: {e!r} in {problems}"
    assert len(problems) == len(expected), f"unexpected problems: {problems}"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"check_book self-test: passed (clean site passes; {len(expected)} planted faults caught)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", nargs="?", default="target/book", help="the built site")
    ap.add_argument("--src", default="book", help="the book's source folder (mdBook's src)")
    ap.add_argument("--repo", default=".", help="the repository root")
    ap.add_argument("--out", default="target/book-check", help="where the screenshot goes")
    ap.add_argument("--self-test", action="store_true", help="check the checker on planted faults")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    problems = check(Path(args.site), Path(args.src), Path(args.repo), Path(args.out))
    for p in problems:
        print(f"check_book: {p}", file=sys.stderr)
    if problems:
        sys.exit(f"check_book: {len(problems)} problem(s)")
    print("check_book: no broken links or images")


if __name__ == "__main__":
    main()
