"""formats_check.py - reads one profile that pyflame wrote in several formats
and prints, per format, the sample total it holds (one "name total" line
each), after checking that each file is well formed.  Used by
test_formats.c; runs under Python 3.

    python3 formats_check.py DIR        (DIR/p.txt, p.speedscope.json, p.json, p.flamechart)
Exits 1 with a message on the first malformed file.
"""
import json
import sys


def fail(msg):
    sys.stdout.write("FAIL %s\n" % msg)
    sys.exit(1)


def collapsed(path):
    total = 0
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip(b"\n")
            head, sep, count = line.rpartition(b" ")
            if not sep or not head or not count.isdigit() or b";;" in head:
                fail("%s:%d: not a collapsed line: %r" % (path, n, line))
            total += int(count)
    return total


def speedscope(path):
    with open(path) as f:
        doc = json.load(f)
    if "speedscope" not in doc.get("$schema", ""):
        fail("%s: no speedscope $schema" % path)
    nframes = len(doc["shared"]["frames"])
    total = 0
    for prof in doc["profiles"]:
        if prof["type"] != "sampled" or len(prof["samples"]) != len(prof["weights"]):
            fail("%s: bad profile %r" % (path, prof.get("name")))
        for s in prof["samples"]:
            if any(not (0 <= i < nframes) for i in s):
                fail("%s: frame index out of range" % path)
        if abs(prof["startValue"] + sum(prof["weights"]) - prof["endValue"]) > 1e-6 * max(1, prof["endValue"]):
            fail("%s: weights do not add up to endValue - startValue" % path)
        total += len(prof["samples"])
    return total


def chrome(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    by_tid = {}
    for e in events:
        if e.get("ph") == "X":
            if e["dur"] < 0:
                fail("%s: negative duration" % path)
            by_tid.setdefault((e["pid"], e["tid"]), []).append(e)
    if not by_tid:
        fail("%s: no slices" % path)
    for key, evs in by_tid.items():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in evs:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack and e["ts"] + e["dur"] > stack[-1]["ts"] + stack[-1]["dur"]:
                fail("%s: slice %r outlives its parent %r" % (path, e["name"], stack[-1]["name"]))
            stack.append(e)
    return len(by_tid)


def flamechart(path):
    total = 0
    with open(path) as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 2:
        fail("%s: odd number of lines" % path)
    for i in range(0, len(lines), 2):
        if not lines[i].isdigit():
            fail("%s:%d: not a timestamp: %r" % (path, i + 1, lines[i]))
        s = lines[i + 1]
        if s not in ("(idle)", "(failed)") and not s.endswith(";"):
            fail("%s:%d: not a stack: %r" % (path, i + 2, s))
        total += 1
    return total


d = sys.argv[1]
print("collapsed %d" % collapsed(d + "/p.txt"))
print("speedscope %d" % speedscope(d + "/p.speedscope.json"))
print("flamechart %d" % flamechart(d + "/p.flamechart"))
print("chrome_threads %d" % chrome(d + "/p.json"))
