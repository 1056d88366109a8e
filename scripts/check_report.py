#!/usr/bin/env python3
"""Opens report.html / compare.html pages in headless Chromium the way a reader does (standard
library only), and fails on anything a reader would hit.

    scripts/check_report.py PAGE... [--out target/report-check]
    scripts/check_report.py --self-test PAGE

Each page is opened from a copy with a probe script added at the top of <head>. The probe
records console errors, uncaught errors and Content-Security-Policy violations (any attempt to
fetch anything), then, once the page has loaded: every resource the page loaded (there must be
none: everything is inline), and for every chart element whether ECharts drew it (an <svg> with
a non-empty box and data marks). It then hides the first series of the first chart with a legend
of two or more (ECharts' legendToggleSelect, what a click does) and checks that the chart's
drawing changed. A screenshot of each page is saved to OUT.

--self-test plants faults in copies of PAGE (a console error, a fetch, a chart with no data, a
legend that does nothing) and checks each is caught, and that PAGE itself passes.
"""
import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_book import chromium  # noqa: E402  (the one lookup of the browser)

PROBE = r"""<script>
(function () {
  var r = window.__reportCheck = {errors: [], charts: [], resources: 0, toggled: null};
  var push = function (m) { r.errors.push(String(m).slice(0, 300)); };
  var orig = console.error;
  console.error = function () { push('console.error: ' + Array.prototype.join.call(arguments, ' ')); orig.apply(console, arguments); };
  window.addEventListener('error', function (e) { push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || e)); }, true);
  window.addEventListener('unhandledrejection', function (e) { push('unhandled rejection: ' + e.reason); });
  document.addEventListener('securitypolicyviolation', function (e) { push('blocked by the page policy: ' + e.violatedDirective + ' ' + e.blockedURI); });
  var marks = function (el) {
    var svg = el.querySelector('svg');
    if (!svg) return {drawn: false, marks: 0, text: ''};
    var b = svg.getBoundingClientRect();
    var n = svg.querySelectorAll('path, circle, rect').length;
    return {drawn: b.width > 0 && b.height > 0, marks: n, text: svg.innerHTML.length + ':' + n};
  };
  window.addEventListener('load', function () { setTimeout(function () {
    r.resources = performance.getEntriesByType('resource').map(function (e) { return e.name; });
    var charts = window.reportCharts || {};
    document.querySelectorAll('[data-chart]').forEach(function (el) {
      var id = el.getAttribute('data-chart');
      var m = marks(el);
      var chart = charts[id];
      var opt = chart ? chart.getOption() : {series: []};
      var points = (opt.series || []).reduce(function (a, s) { return a + ((s.data || []).length); }, 0);
      r.charts.push({id: id, drawn: m.drawn, marks: m.marks, series: (opt.series || []).length, points: points});
    });
    var target = null;
    Object.keys(charts).some(function (id) {
      var s = charts[id].getOption().series || [];
      if (s.length >= 2 && s[0].name) { target = [id, s[0].name]; return true; }
      return false;
    });
    if (!target) { r.done = true; return; }
    var el = document.querySelector('[data-chart="' + target[0] + '"]');
    var before = marks(el).text;
    charts[target[0]].dispatchAction({type: 'legendToggleSelect', name: target[1]});
    // Redrawing can lag on a loaded machine: look every 100 ms, for up to 5 s.
    var tries = 0;
    var look = setInterval(function () {
      var changed = marks(el).text !== before;
      if (!changed && ++tries < 50) return;
      clearInterval(look);
      var sel = (charts[target[0]].getOption().legend || [{}])[0].selected || {};
      r.toggled = {chart: target[0], series: target[1], changed: changed, deselected: sel[target[1]] === false};
      r.done = true;
    }, 100);
  }, 200); });
})();
</script>"""

DUMP = r"""<script>
window.addEventListener('load', function () { var t = setInterval(function () {
  if (!window.__reportCheck || !window.__reportCheck.done) return;
  clearInterval(t);
  var pre = document.createElement('pre'); pre.id = '__report_check__';
  pre.textContent = JSON.stringify(window.__reportCheck); document.body.appendChild(pre);
}, 50); });
</script>"""

RESULT_RE = re.compile(r'<pre id="__report_check__">(.*?)</pre>', re.S)


def chrome(extra):
    return [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=15000", *extra]


def add_before_end(text, snippet):
    """`snippet` just before the page's own </body> (the last one: ECharts' script has others)."""
    head, sep, tail = text.rpartition("</body>")
    return head + snippet + sep + tail if sep else text + snippet


def probe(page: Path):
    """The probe's findings for one page (opened from a copy with the probe added)."""
    work = Path(tempfile.mkdtemp(prefix="report-check-"))
    copy = work / page.name
    text = page.read_text(encoding="utf-8")
    text = text.replace("<head>", "<head>\n" + PROBE, 1)
    text = add_before_end(text, DUMP)
    copy.write_text(text, encoding="utf-8")
    proc = subprocess.run(chrome(["--dump-dom", copy.as_uri()]), capture_output=True, text=True, timeout=180)
    shutil.rmtree(work, ignore_errors=True)
    m = RESULT_RE.search(proc.stdout)
    if not m:
        return None, f"Chromium gave no result (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"
    return json.loads(html.unescape(m.group(1))), None


def problems_of(page: Path, data):
    out = [f"{page}: {e}" for e in data["errors"]]
    if data["resources"]:
        out.append(f"{page}: loaded {len(data['resources'])} resource(s): {data['resources'][:3]}")
    if not data["charts"]:
        out.append(f"{page}: no chart")
    for c in data["charts"]:
        if not c["drawn"] or c["marks"] < 3 or c["points"] == 0:
            out.append(f"{page}: chart {c['id']} did not render with data ({c['marks']} marks, {c['points']} points)")
    t = data["toggled"]
    if t is None:
        out.append(f"{page}: no chart with two or more series to toggle")
    elif not (t["changed"] and t["deselected"]):
        out.append(f"{page}: hiding {t['series']} in chart {t['chart']} did not change it")
    return out


def check(pages, out_dir: Path):
    problems = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for page in pages:
        data, err = probe(page)
        if err:
            problems.append(f"{page}: {err}")
            continue
        problems += problems_of(page, data)
        shot = out_dir / f"{page.parent.name}-{page.stem}.png"
        subprocess.run(chrome([f"--screenshot={shot.resolve()}", "--window-size=1280,4000", page.resolve().as_uri()]),
                       capture_output=True, timeout=180)
        if not shot.exists() or shot.stat().st_size == 0:
            problems.append(f"{page}: screenshot not written")
        n = len(data["charts"])
        print(f"check_report: {page}: {n} charts drawn, toggled {data['toggled'] and data['toggled']['series']}, "
              f"{len(data['errors'])} errors, {len(data['resources'])} resources; screenshot {shot}")
    return problems


def without_data(text):
    """The page with the first chart's series emptied (its option JSON edited)."""
    m = re.search(r'(<script type="application/json" id="chart-options">)(.*?)(</script>)', text, re.S)
    options = json.loads(m.group(2).replace("<\\/", "</"))
    first = next(iter(options))
    for s in options[first]["series"]:
        s["data"] = []
    return text[:m.start(2)] + json.dumps(options).replace("</", "<\\/") + text[m.end(2):]


def self_test(page: Path):
    tmp = Path(tempfile.mkdtemp(prefix="report-check-selftest-"))
    text = page.read_text(encoding="utf-8")
    assert check([page], tmp / "shots") == [], f"{page} should pass"
    plants = {
        "console": (add_before_end(text, "<script>console.error('planted')</script>"), "console.error: planted"),
        "fetch": (add_before_end(text, "<img src=\"http://127.0.0.1:9/x.png\">"), "blocked by the page policy"),
        "empty": (without_data(text), "did not render with data"),
        "legend": (text.replace("window.reportCharts = charts;", "window.reportCharts = charts; Object.keys(charts).forEach(function (k) "
                                "{ var c = charts[k]; c.dispatchAction = function () {}; });", 1), "did not change it"),
    }
    for name, (planted, expect) in plants.items():
        p = tmp / name / page.name
        p.parent.mkdir(parents=True)
        p.write_text(planted, encoding="utf-8")
        got = check([p], tmp / "shots")
        assert any(expect in g for g in got), f"planted fault {name!r} not caught ({expect!r} in {got})"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"check_report self-test: passed ({page.name} passes; {len(plants)} planted faults caught)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pages", nargs="+", type=Path)
    ap.add_argument("--out", default="target/report-check", type=Path, help="where screenshots go")
    ap.add_argument("--self-test", action="store_true", help="check the checker on faults planted in the first page")
    args = ap.parse_args()
    if args.self_test:
        self_test(args.pages[0])
        return
    problems = check(args.pages, args.out)
    for p in problems:
        print(f"check_report: {p}", file=sys.stderr)
    if problems:
        sys.exit(f"check_report: {len(problems)} problem(s)")
    print(f"check_report: {len(args.pages)} page(s) passed")


if __name__ == "__main__":
    main()
