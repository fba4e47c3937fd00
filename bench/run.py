#!/usr/bin/env python3
"""pyflame's benchmark: run `make bench` (or `python3 bench/run.py --help`).

Runs fixed Python targets (bench/targets/) alone and under pyflame, alternating,
for each interpreter and mode, and reports, against the goals of issue 7:

  - pyflame's CPU per sample (user+sys of the pyflame process from wait4,
    less the cost of a one-sample run, divided by the samples it took);
  - samples taken vs asked (samples that are not idle during the target's
    work phase vs the work phase's length times the rate);
  - the share of complete stacks (exactly the target's known chain);
  - the target's slowdown (median over pairs of the ratio of its own
    work-phase wall times, profiled / alone);
  - the share measured for a function that has 75% of the work;
  - pyflame's peak RSS after many samples over 1,000 distinct stacks.

It prints a table and writes JSON (bench/results.json by default).  See
bench/README.rst.  Standard library only.
"""
import argparse
import glob
import json
import math
import os
import platform
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGETS = os.path.join(HERE, "targets")

# ---- goals -----------------------------------------------------------------

# kind: "max" (measured <= goal), "min" (measured >= goal), "near" (|m - goal| <= tol)
GOAL_CPU30 = ("max", 15.0, "us")
GOAL_CPU200 = ("max", 40.0, "us")


def fmt_value(v, unit):
    if v is None:
        return "n/a"
    if unit == "%":
        return "%.2f%%" % v
    if unit == "us":
        return "%.1f us" % v
    if unit == "MiB":
        return "%.2f MiB" % v
    if unit == "share":
        return "%.4f" % v
    if unit == "x":
        return "%.2fx" % v
    return "%g %s" % (v, unit)


def judge(value, goal):
    """'OK', 'MISS (by ...)', 'info' or 'n/a'."""
    if goal is None:
        return "info"
    if value is None:
        return "n/a"
    kind, target, unit = goal[0], goal[1], goal[2]
    if kind == "max":
        if value <= target:
            return "OK"
        over = value - target
        rel = " = %.0f%% over" % (100.0 * over / target) if target else ""
        return "MISS (by %s%s)" % (fmt_value(over, unit), rel)
    if kind == "min":
        if value >= target:
            return "OK"
        return "MISS (by %s)" % fmt_value(target - value, unit)
    if kind == "near":
        tol = goal[3]
        off = abs(value - target)
        if off <= tol:
            return "OK"
        return "MISS (by %s)" % fmt_value(off - tol, unit)
    return "?"


def goal_text(goal):
    if goal is None:
        return "-"
    kind, target, unit = goal[0], goal[1], goal[2]
    if kind == "max":
        return "<= " + fmt_value(target, unit)
    if kind == "min":
        return ">= " + fmt_value(target, unit)
    return "%s +- %s" % (fmt_value(target, unit), fmt_value(goal[3], unit).strip())


# ---- interpreters ------------------------------------------------------------

def python_info(path):
    try:
        out = subprocess.run(
            [path, "-c", "import sys, platform; print(sys.version_info[0], sys.version_info[1], "
                         "platform.python_version(), sys.executable)"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30, check=True,
            universal_newlines=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"major": int(out[0]), "minor": int(out[1]), "version": out[2], "path": path}


def pyenv_root():
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def resolve_python(spec):
    """SPEC: a path, or a version such as 3.11 (pyenv first, then PATH)."""
    if os.sep in spec:
        return spec if os.access(spec, os.X_OK) else None
    if re.match(r"^\d+\.\d+$", spec):
        for d in sorted(glob.glob(os.path.join(pyenv_root(), "versions", spec + ".*")), reverse=True):
            exe = os.path.join(d, "bin", "python" + spec)
            if os.access(exe, os.X_OK):
                return exe
        return shutil.which("python" + spec)
    return shutil.which(spec)


def all_pythons():
    found = []
    for d in sorted(glob.glob(os.path.join(pyenv_root(), "versions", "*"))):
        for name in ("python3", "python"):
            exe = os.path.join(d, "bin", name)
            if os.access(exe, os.X_OK):
                found.append(exe)
                break
    for exe in ("/usr/bin/python3.11", "/usr/bin/python3.12", "/usr/bin/python3.13"):
        if os.access(exe, os.X_OK):
            found.append(exe)
    return found


# ---- processes -----------------------------------------------------------------

class Target(object):
    """A target process speaking the protocol of targets/proto.py."""

    def __init__(self, python, script, args, timeout):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [python, os.path.join(TARGETS, script)] + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=TARGETS, bufsize=0, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        self.pid = self.proc.pid
        self.buf = b""
        self.stacks = []
        while True:
            line = self.readline()
            if line == "ready":
                break
            if line.startswith("STACK "):
                self.stacks.append(json.loads(line[6:]))

    def readline(self):
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("target %d: no answer within %.0f s" % (self.pid, self.timeout))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    err = self.proc.stderr.read().decode("utf-8", "replace").strip()
                    raise RuntimeError("target %d exited early: %s" % (self.pid, err[-500:]))
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace").strip()

    def say(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def work(self):
        """Says go and returns the work phase's wall time and the target's CPU
        time in it, as the target measured them."""
        self.say("go")
        while True:
            line = self.readline()
            if line.startswith("WORK_SECONDS "):
                f = line.split()
                return float(f[1]), float(f[2])

    def finish(self):
        try:
            self.say("exit")
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def traced(self):
        """Whether every thread of the target has a tracer."""
        try:
            tasks = os.listdir("/proc/%d/task" % self.pid)
        except OSError:
            return False
        for tid in tasks:
            try:
                with open("/proc/%d/task/%s/status" % (self.pid, tid)) as f:
                    m = re.search(r"^TracerPid:\s*(\d+)", f.read(), re.M)
            except OSError:
                return False
            if not m or m.group(1) == "0":
                return False
        return True


class Profiler(object):
    """A profiler process, run under the rusage helper (bench/rusage.c) for its
    exit status, CPU (user+sys) and peak RSS."""

    helper = None   # set from --rusage

    def __init__(self, argv, shell=False):
        self.argv = argv
        self.start = time.monotonic()
        if shell:
            argv = ["/bin/sh", "-c", "exec " + argv]
        fd, self.ru_file = tempfile.mkstemp(prefix="pyflame-bench-ru-")
        os.close(fd)
        self.proc = subprocess.Popen([Profiler.helper, self.ru_file] + list(argv),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.status = None
        self.wall = None
        self.signalled = None

    def running(self):
        if self.status is not None:
            return False
        pid, status, _ = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self.wall = time.monotonic() - self.start
        self.status = status
        self.proc.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) \
            else 128 + os.WTERMSIG(status)
        try:
            with open(self.ru_file) as f:
                st, user, system, rss = f.read().split()
            self.user, self.sys, self.rss_kib = float(user), float(system), int(rss)
        except (OSError, ValueError):
            self.user = self.sys = self.rss_kib = None
        os.unlink(self.ru_file)
        return False

    def wait(self, timeout, grace_signal=signal.SIGINT):
        """Waits TIMEOUT seconds, then sends GRACE_SIGNAL, then SIGKILL after 5 s."""
        deadline = time.monotonic() + timeout
        sent = None
        while self.running():
            if time.monotonic() > deadline:
                if sent is None:
                    sent = grace_signal
                    os.kill(self.pid, grace_signal)
                    deadline = time.monotonic() + 5
                elif sent != signal.SIGKILL:
                    sent = signal.SIGKILL
                    os.kill(self.pid, signal.SIGKILL)
                    deadline = time.monotonic() + 30
            time.sleep(0.005)
        self.stderr = self.proc.stderr.read().decode("utf-8", "replace").strip()
        self.proc.stderr.close()
        self.signalled = sent
        return self.proc.returncode

    def cpu(self):
        return None if self.user is None else self.user + self.sys

    def maxrss_mib(self):
        return None if self.rss_kib is None else self.rss_kib / 1024.0


# ---- profiles ------------------------------------------------------------------

PYSPY_FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def parse_frame(text):
    """(file, function, line or None) from pyflame's file:function:line (or
    file:function), or py-spy's 'function (file:line)'."""
    m = PYSPY_FRAME.match(text)
    if m:
        return (m.group(2), m.group(1), int(m.group(3)))
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[2].isdigit():
        return (parts[0], parts[1], int(parts[2]))
    parts = text.rsplit(":", 1)
    if len(parts) == 2:
        return (parts[0], parts[1], None)
    return ("", text, None)


def parse_collapsed(text):
    prof = {"idle": 0, "failed": 0, "stacks": {}, "unparsed": 0}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        head, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            prof["unparsed"] += 1
            continue
        if head == "(idle)":
            prof["idle"] += n
        elif head == "(failed)":
            prof["failed"] += n
        else:
            prof["stacks"][head] = prof["stacks"].get(head, 0) + n
    return prof


def strip_thread_root(frames):
    if frames and frames[0][1].startswith("thread ") and frames[0][0] == "":
        return frames[1:]
    return frames


def is_complete(frames, expected):
    """FRAMES (root first) is exactly one of the EXPECTED chains, or that chain
    plus one of its `extend` frames on top."""
    for exp in expected:
        base = exp["frames"]
        if len(frames) == len(base):
            pass
        elif len(frames) == len(base) + 1 and frames[-1][1] in exp["extend"] \
                and frames[-1][0] == base[-1][0]:
            pass
        else:
            continue
        ok = True
        for got, want in zip(frames, base):
            if got[0] != want[0] or got[1] != want[1] or \
                    (want[2] is not None and got[2] is not None and got[2] != want[2]):
                ok = False
                break
        if ok:
            return True
    return False


def classify(prof, expected):
    """Counts of complete and incomplete stack samples; the leaf function of each complete one."""
    complete = incomplete = 0
    leaves = {}
    bad = {}
    for stack, n in prof["stacks"].items():
        frames = strip_thread_root([parse_frame(f) for f in stack.split(";")])
        if is_complete(frames, expected):
            complete += n
            leaves[frames[-1][1]] = leaves.get(frames[-1][1], 0) + n
        else:
            incomplete += n
            bad[stack] = n
    return complete, incomplete, leaves, bad


# ---- the runs ---------------------------------------------------------------------

class Bench(object):
    def __init__(self, args):
        self.args = args
        self.pyflame = os.path.abspath(args.pyflame)
        self.tmp = tempfile.mkdtemp(prefix="pyflame-bench-")
        self.rows = []
        self.raw = {}
        self.quiet_budget = args.quiet_wait

    def log(self, msg):
        if not self.args.quiet:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    # -- one run ---------------------------------------------------------------------

    def run_once(self, py, cfg, work, profiler=None):
        """Target alone (PROFILER None), under pyflame ("pyflame") or under the
        --vs command ("vs").  Returns a dict."""
        tgt = Target(py["path"], cfg["script"], cfg["targs"] + [work], self.args.timeout)
        res = {"stacks_expected": tgt.stacks}
        prof = None
        out = os.path.join(self.tmp, "out-%d.txt" % tgt.pid)
        try:
            if profiler == "pyflame":
                argv = [self.pyflame, "-s", "-1", "-r", repr(1.0 / cfg["rate"]), "-p", str(tgt.pid),
                        "-o", out] + cfg["flags"]
                prof = Profiler(argv)
                self.wait_attach(tgt, prof, "--nonblocking" not in cfg["flags"])
            elif profiler == "vs":
                cmd = self.args.vs.format(pid=tgt.pid, rate=cfg["rate"], period=1.0 / cfg["rate"],
                                          seconds=int(math.ceil(self.vs_seconds(cfg))), out=out)
                prof = Profiler(cmd, shell=True)
                time.sleep(self.args.vs_attach)
                if not prof.running():
                    raise RuntimeError("--vs command exited before the work started: %s" % cmd)
            res["work_seconds"], res["work_cpu"] = tgt.work()
            tgt.finish()
        except Exception:
            tgt.kill()
            if prof is not None and prof.running():
                prof.wait(0, signal.SIGKILL)
            raise
        if prof is not None:
            rc = prof.wait(2.0 if profiler == "vs" else self.args.timeout)
            res["profiler_rc"] = rc
            res["profiler_stderr"] = prof.stderr[-2000:]
            res["cpu"] = prof.cpu()
            res["maxrss_mib"] = prof.maxrss_mib()
            res["profiler_wall"] = prof.wall
            if rc != 0 and profiler == "pyflame":
                raise RuntimeError("pyflame exited %d: %s" % (rc, prof.stderr[-500:]))
            try:
                with open(out, encoding="utf-8", errors="replace") as f:
                    res["profile"] = parse_collapsed(f.read())
                os.unlink(out)
            except OSError:
                res["profile"] = None
        return res

    def wait_attach(self, tgt, prof, blocking):
        """Until pyflame has seized every thread (blocking), or a fixed time."""
        if blocking:
            deadline = time.monotonic() + self.args.timeout
            while not tgt.traced():
                if not prof.running():
                    raise RuntimeError("pyflame exited before attaching: %s"
                                       % prof.proc.stderr.read().decode("utf-8", "replace")[-500:])
                if time.monotonic() > deadline:
                    raise RuntimeError("pyflame did not attach within %.0f s" % self.args.timeout)
                time.sleep(0.002)
            time.sleep(0.02)
        else:
            time.sleep(self.args.attach_wait)
            if not prof.running():
                raise RuntimeError("pyflame exited before the work started: %s"
                                   % prof.proc.stderr.read().decode("utf-8", "replace")[-500:])

    def wait_quiet(self):
        """Waits until other processes leave the machine's CPUs at least 85%
        idle, out of a budget of --quiet-wait seconds for the whole run;
        returns the busy share last seen."""
        while True:
            t0 = time.monotonic()
            busy = machine_busy(0.5)
            if busy is None or busy <= 0.15 or self.quiet_budget <= 0:
                return busy
            self.log("   machine %.0f%% busy (other processes); waiting (%.0f s left)"
                     % (100 * busy, self.quiet_budget))
            time.sleep(1.0)
            self.quiet_budget -= time.monotonic() - t0

    def syscalls(self, py, cfg, work):
        """System calls per sample, from one 1 s run under strace -c -f."""
        tgt = Target(py["path"], cfg["script"], cfg["targs"] + [work * 100], self.args.timeout)
        st = os.path.join(self.tmp, "strace-%d.txt" % tgt.pid)
        out = os.path.join(self.tmp, "strace-out-%d.txt" % tgt.pid)
        try:
            tgt.say("go")
            time.sleep(0.05)
            p = subprocess.run(["strace", "-c", "-f", "-o", st, self.pyflame, "-s", "1", "-r",
                                repr(1.0 / cfg["rate"]), "-p", str(tgt.pid), "-o", out]
                               + cfg["flags"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=self.args.timeout)
            if p.returncode != 0:
                return None
            with open(out) as f:
                prof = parse_collapsed(f.read())
            # per tick: with --threads a tick records one stack per thread
            n = prof["idle"] + (prof["failed"] + sum(prof["stacks"].values())) \
                / float(max(1, len(tgt.stacks)))
            if not n:
                return None
            calls = {}
            with open(st) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total":
                        calls[fields[-1]] = int(fields[3])
            per = {k: round(v / float(n), 2) for k, v in calls.items() if v >= n / 2.0}
            per["total"] = round(sum(calls.values()) / float(n), 2)
            return per
        except (OSError, subprocess.SubprocessError):
            return None
        finally:
            tgt.kill()

    def vs_seconds(self, cfg):
        return 3 * self.work_seconds + 5

    def oneshot_cpu(self, py, cfg, work):
        """pyflame's CPU for one sample (start-up, attach, one sample, detach,
        output): the median of 3, against one target waiting for go."""
        tgt = Target(py["path"], cfg["script"], cfg["targs"] + [work], self.args.timeout)
        cpus = []
        try:
            for _ in range(3):
                argv = [self.pyflame, "-s", "0", "-p", str(tgt.pid), "-o", os.devnull] + cfg["flags"]
                p = Profiler(argv)
                rc = p.wait(self.args.timeout)
                if rc != 0:
                    raise RuntimeError("pyflame -s 0 exited %d: %s" % (rc, p.stderr[-500:]))
                cpus.append(p.cpu())
        finally:
            tgt.kill()
        return statistics.median(cpus)

    def calibrate(self, py, script, targs, units, seconds):
        """The work (in the target's units) that takes SECONDS alone."""
        work = units
        for _ in range(4):
            cfg = {"script": script, "targs": targs}
            ws = self.run_once(py, cfg, work)["work_seconds"]
            if ws >= 0.1:
                return max(1, int(work * seconds / ws))
            work *= 10
        return max(1, int(work * seconds / max(ws, 1e-3)))

    # -- configurations ----------------------------------------------------------------

    def configs(self):
        d30, d200 = self.args.depth, self.args.deep
        b = []
        nb = ["--nonblocking"]
        return [
            {"id": "d%d-b-100" % d30, "script": "chain.py", "targs": [d30], "depth": d30,
             "rate": 100, "flags": b, "mode": "blocking 100/s", "kind": "chain"},
            {"id": "d%d-b-1000" % d30, "script": "chain.py", "targs": [d30], "depth": d30,
             "rate": 1000, "flags": b, "mode": "blocking 1000/s", "kind": "chain"},
            {"id": "d%d-nb-10000" % d30, "script": "chain.py", "targs": [d30], "depth": d30,
             "rate": 10000, "flags": nb, "mode": "non-blocking 10000/s", "kind": "chain"},
            {"id": "d%d-b-1000" % d200, "script": "chain.py", "targs": [d200], "depth": d200,
             "rate": 1000, "flags": b, "mode": "blocking 1000/s", "kind": "chain"},
            {"id": "d%d-nb-10000" % d200, "script": "chain.py", "targs": [d200], "depth": d200,
             "rate": 10000, "flags": nb, "mode": "non-blocking 10000/s", "kind": "chain"},
            {"id": "hotcold-b-1000", "script": "hotcold.py", "targs": [], "depth": 4,
             "rate": 1000, "flags": b, "mode": "blocking 1000/s", "kind": "hotcold"},
            {"id": "threads-b-1000", "script": "threads.py", "targs": [d30], "depth": d30,
             "rate": 1000, "flags": ["--threads"], "mode": "--threads blocking 1000/s",
             "kind": "threads"},
        ]

    def row(self, figure, py, mode, value, unit, goal, cfg_id=None, vs=None, note=""):
        r = {"figure": figure, "python": py["version"] if py else "-", "mode": mode,
             "measured": value, "unit": unit, "goal": goal_text(goal),
             "status": judge(value, goal), "config": cfg_id, "note": note}
        if vs is not None:
            r["vs"] = vs
            r["ratio"] = (value / vs) if (value is not None and vs) else None
        self.rows.append(r)
        return r

    # -- an interpreter ------------------------------------------------------------------

    def bench_python(self, py):
        a = self.args
        label = py["version"]
        raw = self.raw.setdefault(label, {"path": py["path"], "configs": {}})
        self.work_seconds = a.work
        self.log("== Python %s (%s)" % (label, py["path"]))
        works = {
            "chain": self.calibrate(py, "chain.py", [a.depth], 100000, a.work),
            "hotcold": self.calibrate(py, "hotcold.py", [], 400000, a.work),
            "threads": self.calibrate(py, "threads.py", [a.depth], 25000, a.work),
        }
        raw["work_units"] = works
        self.log("   calibrated work units for %.2f s: %s" % (a.work, works))
        for cfg in self.configs():
            if a.only and not any(re.search(pat, cfg["id"]) for pat in a.only):
                continue
            self.bench_config(py, cfg, works[cfg["kind"]], raw)
        if not a.only or any(re.search(pat, "rss") for pat in a.only):
            self.bench_rss(py, raw)

    def bench_config(self, py, cfg, work, raw):
        a = self.args
        t0 = time.monotonic()
        alone, runs, vsruns, errors = [], [], [], []
        busy = self.wait_quiet()
        for i in range(a.pairs):
            try:
                alone.append(self.run_once(py, cfg, work))
                runs.append(self.run_once(py, cfg, work, "pyflame"))
                if a.vs:
                    vsruns.append(self.run_once(py, cfg, work, "vs"))
            except Exception as e:   # report and go on with the other runs
                errors.append(str(e))
                self.log("   %s: run %d failed: %s" % (cfg["id"], i + 1, e))
        oneshot = None
        try:
            oneshot = self.oneshot_cpu(py, cfg, work)
        except Exception as e:
            errors.append("one-shot: %s" % e)
        res = self.summarise(cfg, alone, runs, oneshot)
        res["errors"] = errors
        res["machine_busy_before"] = busy
        if a.syscalls:
            res["syscalls_per_sample"] = self.syscalls(py, cfg, work)
        if vsruns:
            res["vs"] = self.summarise(cfg, alone, vsruns, None)
        res["elapsed"] = time.monotonic() - t0
        raw["configs"][cfg["id"]] = res
        self.log("   %-16s %-26s slowdown %s  samples %s  cpu/sample %s  complete %s  (%.0f s)" % (
            cfg["id"], cfg["mode"], fmt_value(res.get("slowdown_pct"), "%"),
            fmt_value(res.get("taken_pct"), "%"), fmt_value(res.get("cpu_us_per_sample"), "us"),
            fmt_value(res.get("complete_pct"), "%"), res["elapsed"]))
        self.report_config(py, cfg, res)

    def summarise(self, cfg, alone, runs, oneshot):
        res = {"mode": cfg["mode"], "rate": cfg["rate"], "flags": cfg["flags"],
               "kind": cfg["kind"], "alone_seconds": [r["work_seconds"] for r in alone],
               "profiled_seconds": [r["work_seconds"] for r in runs],
               "alone_cpu_seconds": [r["work_cpu"] for r in alone],
               "profiled_cpu_seconds": [r["work_cpu"] for r in runs],
               "oneshot_cpu_s": oneshot}
        if alone:
            # The target's CPU time over its wall time, alone: 1.0 (or the
            # number of busy threads) on a free machine, less when other
            # processes take the CPU; then every figure here is suspect.
            res["alone_cpu_share"] = statistics.median(r["work_cpu"] / r["work_seconds"]
                                                       for r in alone)
        pairs = list(zip(alone, runs))
        if pairs:
            ratios = [p["work_seconds"] / a_["work_seconds"] for a_, p in pairs]
            res["ratios"] = ratios
            res["slowdown_pct"] = (statistics.median(ratios) - 1) * 100
            # Noise from other processes only adds time: the best run of
            # each kind is the least disturbed.
            res["slowdown_min_pct"] = (min(p["work_seconds"] for p in runs) /
                                       min(a_["work_seconds"] for a_ in alone) - 1) * 100
            res["slowdown_cpu_pct"] = (statistics.median(
                p["work_cpu"] / a_["work_cpu"] for a_, p in pairs) - 1) * 100
        prof_runs = [r for r in runs if r.get("profile")]
        if not prof_runs:
            return res
        idle = sum(r["profile"]["idle"] for r in prof_runs)
        failed = sum(r["profile"]["failed"] for r in prof_runs)
        stacks = sum(sum(r["profile"]["stacks"].values()) for r in prof_runs)
        complete = incomplete = 0
        leaves, bad = {}, {}
        for r in prof_runs:
            c, i, lv, bd = classify(r["profile"], r["stacks_expected"])
            complete += c
            incomplete += i
            for k, v in lv.items():
                leaves[k] = leaves.get(k, 0) + v
            for k, v in bd.items():
                bad[k] = bad.get(k, 0) + v
        nthreads = len(prof_runs[0]["stacks_expected"])
        # Ticks: every tick gives one idle count, one failed count or (with
        # --threads) one stack per thread that has a frame.
        ticks = idle + (failed + stacks) / float(nthreads)
        work_secs = sum(r["work_seconds"] for r in prof_runs)
        cpu = sum(r["cpu"] for r in prof_runs)
        res.update({
            "samples_idle": idle, "samples_failed": failed, "samples_stacks": stacks,
            "samples_complete": complete, "samples_incomplete": incomplete,
            "ticks": ticks, "leaves": leaves, "cpu_s": cpu,
            "maxrss_mib": max(r["maxrss_mib"] for r in prof_runs),
            "incomplete_examples": sorted(bad.items(), key=lambda kv: -kv[1])[:5],
        })
        if nthreads == 1:
            res["taken_pct"] = 100.0 * (failed + stacks) / (work_secs * cfg["rate"])
        else:
            res["stacks_per_tick"] = (failed + stacks) / ticks if ticks else None
        if failed + stacks:
            res["complete_pct"] = 100.0 * complete / (failed + stacks)
        if ticks:
            res["cpu_us_per_sample_gross"] = cpu / ticks * 1e6
            if oneshot is not None:
                res["cpu_us_per_sample"] = max(0.0, cpu - oneshot * len(prof_runs)) / ticks * 1e6
            else:   # another profiler: no one-shot figure
                res["cpu_us_per_sample"] = cpu / ticks * 1e6
        if cfg["kind"] == "hotcold":
            h, c = leaves.get("hot", 0), leaves.get("cold", 0)
            res["hot_share"] = h / float(h + c) if h + c else None
        return res

    def report_config(self, py, cfg, res):
        d30, d200 = self.args.depth, self.args.deep
        vs = res.get("vs") or {}
        cid, mode, rate = cfg["id"], cfg["mode"], cfg["rate"]
        nb = "--nonblocking" in cfg["flags"]
        kind, depth = cfg["kind"], cfg["depth"]
        slow_note = "pairs %s, best/best %s; alone CPU share %s, CPU-time slowdown %s, " \
            "machine busy %s" % (
            "..".join("%+.1f%%" % (100 * (x - 1)) for x in (min(res["ratios"]), max(res["ratios"])))
            if res.get("ratios") else "?", fmt_value(res.get("slowdown_min_pct"), "%"),
            "%.2f" % res["alone_cpu_share"] if "alone_cpu_share" in res else "?",
            fmt_value(res.get("slowdown_cpu_pct"), "%"),
            "%.0f%%" % (100 * res["machine_busy_before"])
            if res.get("machine_busy_before") is not None else "?")
        cpu_note = "gross %s" % fmt_value(res.get("cpu_us_per_sample_gross"), "us")
        if res.get("syscalls_per_sample"):
            cpu_note += "; syscalls/sample: " + ", ".join(
                "%s %g" % kv for kv in sorted(res["syscalls_per_sample"].items(),
                                             key=lambda kv: -kv[1]))
        if kind == "chain":
            # CPU per sample: the goal is for every chain run at 1,000/s or more.
            goal = (GOAL_CPU30 if depth == d30 else GOAL_CPU200) if rate >= 1000 else None
            self.row("pyflame CPU per sample, depth %d" % depth, py, mode,
                     res.get("cpu_us_per_sample"), "us", goal, cid, vs.get("cpu_us_per_sample"),
                     note=cpu_note)
            goal = ("min", 95.0, "%") if (depth == d30 and nb and rate == 10000) else None
            self.row("samples taken vs asked, depth %d" % depth, py, mode, res.get("taken_pct"),
                     "%", goal, cid, vs.get("taken_pct"))
            goal = None
            if depth == d200:
                goal = ("min", 99.0, "%") if nb else ("min", 100.0, "%")
            self.row("complete stacks, depth %d" % depth, py, mode, res.get("complete_pct"), "%",
                     goal, cid, vs.get("complete_pct"),
                     note="%d failed, %d other incomplete" % (
                         res.get("samples_failed", 0),
                         res.get("samples_incomplete", 0)) if "samples_failed" in res else "")
            goal = None
            if depth == d30 and not nb and rate == 100:
                goal = ("max", 2.0, "%")
            elif depth == d30 and not nb and rate == 1000:
                goal = ("max", 10.0, "%")
            elif depth == d200 and nb and rate == 10000:
                goal = ("max", 5.0, "%")
            self.row("target slowdown, depth %d" % depth, py, mode, res.get("slowdown_pct"), "%",
                     goal, cid, vs.get("slowdown_pct"), note=slow_note)
        elif kind == "hotcold":
            nhc = sum(res.get("leaves", {}).get(k, 0) for k in ("hot", "cold"))
            self.row("hot share (75% of the work)", py, mode, res.get("hot_share"), "share",
                     ("near", 0.75, "share", 0.02), cid, vs.get("hot_share"),
                     note="%d hot+cold samples (95%% CI +- %.3f)" % (
                         nhc, 1.96 * math.sqrt(0.1875 / nhc)) if nhc else "")
            self.row("target slowdown, hot/cold", py, mode, res.get("slowdown_pct"), "%", None,
                     cid, vs.get("slowdown_pct"), note=slow_note)
        elif kind == "threads":
            self.row("complete stacks, 4 threads at depth %d" % depth, py, mode,
                     res.get("complete_pct"), "%", None, cid, vs.get("complete_pct"),
                     note="%.2f stacks per tick (5 threads)" % res["stacks_per_tick"]
                     if res.get("stacks_per_tick") else "")
            self.row("pyflame CPU per tick, 4 threads", py, mode, res.get("cpu_us_per_sample"),
                     "us", None, cid, vs.get("cpu_us_per_sample"), note=cpu_note)
            self.row("target slowdown, 4 threads", py, mode, res.get("slowdown_pct"), "%", None,
                     cid, vs.get("slowdown_pct"), note=slow_note)

    # -- memory -------------------------------------------------------------------------

    def bench_rss(self, py, raw):
        """pyflame -r 0 --nonblocking on the 1,000-stack target until it has
        taken --rss-samples samples (or --rss-max-seconds have passed)."""
        a = self.args
        t0 = time.monotonic()
        res = {"asked_samples": a.rss_samples}
        try:
            res.update(self.rss_run(py))
        except Exception as e:
            res["error"] = str(e)
            self.log("   rss: failed: %s" % e)
        res["elapsed"] = time.monotonic() - t0
        raw["configs"]["rss"] = res
        n = res.get("samples")
        fig = "pyflame peak RSS, %s samples / %s stacks" % (
            "{:,}".format(n) if n is not None else "?",
            "{:,}".format(res["distinct"]) if "distinct" in res else "?")
        self.row(fig, py, "non-blocking -r 0", res.get("maxrss_mib"), "MiB",
                 ("max", 16.0, "MiB"), "rss",
                 note="%.1f s, %s samples/s, %s failed; after %s samples: %s" % (
                     res["wall"], "{:,.0f}".format(n / res["wall"]),
                     "{:,}".format(res["failed"]), "{:,}".format(res["first_samples"]),
                     fmt_value(res["first_maxrss_mib"], "MiB")) if n is not None else "")
        if n is not None:
            self.log("   rss: %s samples over %d stacks in %.1f s: peak RSS %.2f MiB (%.0f s)" % (
                "{:,}".format(n), res["distinct"], res["wall"], res["maxrss_mib"],
                res["elapsed"]))

    def rss_run(self, py):
        """Every 2 s, SIGUSR1 has pyflame write the profile so far; once it
        holds enough samples, SIGINT ends the run (pyflame writes it again)."""
        a = self.args
        tgt = Target(py["path"], "distinct.py", [a.rss_stacks], a.timeout)
        out = os.path.join(self.tmp, "rss-%d.txt" % tgt.pid)
        first = None
        try:
            tgt.say("go")
            time.sleep(0.1)
            p = Profiler([self.pyflame, "--nonblocking", "-r", "0", "-s", repr(a.rss_max_seconds),
                          "-p", str(tgt.pid), "-o", out])
            while p.running():
                time.sleep(2.0)
                mtime = os.stat(out).st_mtime_ns if os.path.exists(out) else None
                try:
                    os.kill(p.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    break
                deadline = time.monotonic() + 10
                while p.running() and time.monotonic() < deadline:
                    if os.path.exists(out) and os.stat(out).st_mtime_ns != mtime:
                        break
                    time.sleep(0.05)
                try:
                    with open(out, encoding="utf-8", errors="replace") as f:
                        prof = parse_collapsed(f.read())
                except OSError:
                    continue
                n = prof["idle"] + prof["failed"] + sum(prof["stacks"].values())
                if first is None:
                    with open("/proc/%d/task/%d/children" % (p.pid, p.pid)) as f:
                        kids = f.read().split()
                    first = (n, vmhwm_mib(int(kids[0])) if kids else None)
                if n >= a.rss_samples:
                    os.kill(p.pid, signal.SIGINT)
                    break
            rc = p.wait(a.timeout)
        finally:
            tgt.kill()
        if rc != 0:
            raise RuntimeError("pyflame exited %d: %s" % (rc, p.stderr[-500:]))
        with open(out, encoding="utf-8", errors="replace") as f:
            prof = parse_collapsed(f.read())
        os.unlink(out)
        return {"samples": prof["idle"] + prof["failed"] + sum(prof["stacks"].values()),
                "failed": prof["failed"], "distinct": len(prof["stacks"]),
                "maxrss_mib": p.maxrss_mib(), "cpu": p.cpu(), "wall": p.wall,
                "first_samples": first[0] if first else None,
                "first_maxrss_mib": first[1] if first else None}

    # -- the floor ------------------------------------------------------------------------

    def bench_floor(self):
        exe = self.args.ptrace_cost
        if not exe or not os.access(exe, os.X_OK):
            self.log("== ptrace cost: %s not built; skipped" % exe)
            return
        self.log("== ptrace / wakeup / read costs (%s)" % exe)
        try:
            out = subprocess.run([exe, "0.5" if self.args.quick else "1"], stdout=subprocess.PIPE,
                                 universal_newlines=True, timeout=120, check=True).stdout
        except (OSError, subprocess.SubprocessError) as e:
            self.log("   failed: %s" % e)
            return
        floor = {}
        for line in out.splitlines():
            k, _, v = line.partition(" ")
            floor[k] = float(v)
        self.raw["floor"] = floor
        names = [
            ("stop_cont_wall_us", "ptrace interrupt+wait+cont, wall"),
            ("stop_cont_cpu_us", "ptrace interrupt+wait+cont, tracer CPU"),
            ("target_loss_us", "target time lost per stop (at 10000/s)"),
            ("wakeup_cpu_us", "tracer CPU per timer wakeup at 10000/s"),
            ("readv64_cpu_us", "CPU per process_vm_readv, 64 B"),
            ("readv4k_cpu_us", "CPU per process_vm_readv, 4 KiB"),
        ]
        for key, fig in names:
            if key in floor:
                self.row(fig, None, "C, no pyflame", floor[key], "us", None, "floor")

    # -- output ----------------------------------------------------------------------------

    def table(self):
        vs = bool(self.args.vs)
        head = ["figure", "python", "mode", "measured", "goal", "status"]
        if vs:
            head += ["vs", "pyflame/vs"]
        head.append("note")
        lines = []
        for r in self.rows:
            cells = [r["figure"], r["python"], r["mode"], fmt_value(r["measured"], r["unit"]),
                     r["goal"], r["status"]]
            if vs:
                cells += [fmt_value(r.get("vs"), r["unit"]) if "vs" in r else "",
                          fmt_value(r.get("ratio"), "x") if r.get("ratio") is not None else ""]
            cells.append(r["note"])
            lines.append(cells)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
        fmt = "  ".join("%%-%ds" % w for w in widths)
        text = [(fmt % tuple(head)).rstrip(), fmt % tuple("-" * w for w in widths)]
        text += [(fmt % tuple(c)).rstrip() for c in lines]
        return "\n".join(text)

    def write_json(self, path, started):
        data = {
            "pyflame": self.pyflame,
            "pyflame_version": subprocess.run([self.pyflame, "--version"], stdout=subprocess.PIPE,
                                              universal_newlines=True).stdout.strip(),
            "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                        "cpu": cpu_model()},
            "options": {k: v for k, v in vars(self.args).items()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "seconds": time.time() - started,
            "rows": self.rows,
            "raw": self.raw,
        }
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(path + ".tmp", path)


def set_nice(nice):
    """Runs the rest of the benchmark at niceness NICE, in a session of its own.

    With autogroup scheduling (/proc/sys/kernel/sched_autogroup_enabled), each
    session shares the CPUs with the other sessions as one group whatever its
    processes' niceness, so the new session's group gets NICE too."""
    try:
        os.setsid()
    except OSError:   # a process group leader: go on in a child
        pid = os.fork()
        if pid == 0:
            os.setsid()
        else:
            def forward(sig, frame):
                os.kill(pid, sig)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, forward)
            while True:
                try:
                    _, status = os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as e:
        sys.exit("bench: --nice %d: %s" % (nice, e))
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("%d\n" % nice)
    except OSError:
        pass   # no autogroup scheduling


def vmhwm_mib(pid):
    """A live process's peak RSS (VmHWM), in MiB."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    return None


def cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]), idle


def machine_busy(interval):
    """The share of all CPUs busy over INTERVAL seconds (this process sleeps)."""
    try:
        t0, i0 = cpu_times()
        time.sleep(interval)
        t1, i1 = cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return 1.0 - (i1 - i0) / float(t1 - t0) if t1 > t0 else None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(
        prog="bench/run.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="pyflame's benchmark: runs the targets in bench/targets alone and under "
                    "pyflame, alternating, and reports each figure against its goal "
                    "(see bench/README.rst).",
        epilog="""--vs runs another profiler on the same targets, in the same pairs (alone,
pyflame, other), and adds its figures and the ratio pyflame/other to the table.
COMMAND is a shell command template; its placeholders:
  {pid}      the target's PID
  {rate}     samples per second asked (100, 1000 or 10000)
  {period}   seconds between samples (1/rate)
  {seconds}  an upper bound on the run (the profiler is sent SIGINT, then
             SIGKILL, if it is still running 2 s after the target exits)
  {out}      where to write the profile, in collapsed format ("file:func:line"
             frames, or py-spy's "func (file:line)"), read for the stack figures
It is run as /bin/sh -c "exec COMMAND" under build/bench/rusage, which gives
its CPU (user+sys) and peak RSS.
Examples:
  bench/run.py --vs 'py-spy record --nonblocking -r {rate} -d {seconds} -p {pid} -f raw -o {out}'
  bench/run.py --vs './pyflame-old -s {seconds} -r {period} -p {pid} -o {out}'
""")
    ap.add_argument("--pyflame", default=os.path.join(ROOT, "pyflame"),
                    help="the pyflame to measure (default: the repo's ./pyflame)")
    ap.add_argument("--python", action="append", metavar="VER|PATH",
                    help="an interpreter to run the targets with (repeatable; a version such as "
                         "3.11 is looked up in pyenv, then PATH); default: 3.11 and 3.12")
    ap.add_argument("--all-pythons", action="store_true",
                    help="every pyenv interpreter 3.x and Debian's /usr/bin/python3.1x as well")
    ap.add_argument("--pairs", type=int, default=None,
                    help="alone/profiled pairs per configuration (default 5; --quick: 2)")
    ap.add_argument("--work", type=float, default=None,
                    help="the work phase's length alone, in seconds (default 1.0; --quick: 0.5)")
    ap.add_argument("--depth", type=int, default=30, help="the shallow chain's depth (30)")
    ap.add_argument("--deep", type=int, default=200, help="the deep chain's depth (200)")
    ap.add_argument("--rss-samples", type=int, default=None,
                    help="samples for the RSS figure (default 1,000,000; --quick: 100,000)")
    ap.add_argument("--rss-stacks", type=int, default=1000, help="distinct stacks (1,000)")
    ap.add_argument("--rss-max-seconds", type=float, default=None,
                    help="longest RSS run (60 s; --quick: 20 s)")
    ap.add_argument("--quick", action="store_true",
                    help="a ~1 minute version: 2 pairs of 0.5 s, 100,000 samples (at most 10 s) "
                         "for RSS, no strace, no waiting for a quiet machine")
    ap.add_argument("--only", action="append", metavar="REGEX",
                    help="only the configurations whose id matches (d30-b-100, d30-b-1000, "
                         "d30-nb-10000, d200-b-1000, d200-nb-10000, hotcold-b-1000, "
                         "threads-b-1000, rss, floor); repeatable")
    ap.add_argument("--vs", metavar="COMMAND", help="another profiler to compare (see below)")
    ap.add_argument("--vs-attach", type=float, default=1.0,
                    help="seconds to let the --vs profiler attach before the work starts (1.0)")
    ap.add_argument("--attach-wait", type=float, default=0.2,
                    help="seconds to let non-blocking pyflame start before the work (0.2)")
    ap.add_argument("--quiet-wait", type=float, default=None,
                    help="before each configuration, wait for other processes to leave the CPUs "
                         "85%% idle, up to this many seconds in all (default 60; --quick or "
                         "--nice below 0: 0)")
    ap.add_argument("--syscalls", choices=["auto", "yes", "no"], default="auto",
                    help="count pyflame's system calls per sample with strace -c (one extra 1 s "
                         "run per configuration); auto: when strace is there, not with --quick")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the harness, the targets and the profilers at this niceness; on a "
                         "machine shared with other work, --nice -20 (root) gives them the CPUs "
                         "nearly as if it were idle (the other processes slow down meanwhile)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-step timeout (60 s)")
    ap.add_argument("--ptrace-cost", default=os.path.join(ROOT, "build", "bench", "ptrace_cost"),
                    help="the ptrace cost probe (built by make bench)")
    ap.add_argument("--rusage", default=os.path.join(ROOT, "build", "bench", "rusage"),
                    help="the helper that measures a command's CPU and peak RSS (built by make bench)")
    ap.add_argument("-o", "--json", default=os.path.join(HERE, "results.json"),
                    help="where to write the JSON results (bench/results.json)")
    ap.add_argument("-q", "--quiet", action="store_true", help="only the table")
    args = ap.parse_args()
    if args.pairs is None:
        args.pairs = 2 if args.quick else 5
    if args.work is None:
        args.work = 0.5 if args.quick else 1.0
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick or args.nice < 0 else 60.0
    if args.nice:
        set_nice(args.nice)
    if args.syscalls == "auto":
        args.syscalls = "no" if args.quick or not shutil.which("strace") else "yes"
    args.syscalls = args.syscalls == "yes"
    if args.rss_max_seconds is None:
        args.rss_max_seconds = 20.0 if args.quick else 60.0
    if args.rss_samples is None:
        args.rss_samples = 100000 if args.quick else 1000000
    if not os.access(args.pyflame, os.X_OK):
        sys.exit("bench: %s is not built (run make)" % args.pyflame)
    if not os.access(args.rusage, os.X_OK):
        sys.exit("bench: %s is not built (make bench builds it)" % args.rusage)
    Profiler.helper = os.path.abspath(args.rusage)

    specs = args.python or ["3.11", "3.12"]
    paths = [resolve_python(s) for s in specs]
    missing = [s for s, p in zip(specs, paths) if not p]
    paths = [p for p in paths if p]
    if args.all_pythons:
        paths += [p for p in all_pythons() if p not in paths]
    pythons, seen = [], set()
    for p in paths:
        info = python_info(p)
        if info is None or info["major"] < 3:
            sys.stderr.write("bench: skipping %s (not a Python 3)\n" % p)
            continue
        key = (info["version"], os.path.realpath(info["path"]))
        if key not in seen:
            seen.add(key)
            pythons.append(info)
    for s in missing:
        sys.stderr.write("bench: no interpreter found for %s; skipped\n" % s)
    if not pythons:
        sys.exit("bench: no interpreter to run")

    started = time.time()
    b = Bench(args)
    try:
        if not args.only or any(re.search(pat, "floor") for pat in args.only):
            b.bench_floor()
        for py in pythons:
            b.bench_python(py)
    except KeyboardInterrupt:
        sys.stderr.write("bench: interrupted; reporting what was measured\n")
    finally:
        shutil.rmtree(b.tmp, ignore_errors=True)
    print(b.table())
    misses = sum(1 for r in b.rows if r["status"].startswith("MISS"))
    shares = [c["alone_cpu_share"] for py in b.raw.values() if isinstance(py, dict)
              for c in py.get("configs", {}).values()
              if isinstance(c, dict) and "alone_cpu_share" in c and c.get("kind") != "threads"]
    if shares and min(shares) < 0.9:
        print("\nWARNING: the machine was busy: alone, a target got as little as %.2f of a CPU "
              "(other processes). Slowdowns, samples taken and CPU per sample are then "
              "unreliable; run again on an idle machine, or with --nice -20 (root)." % min(shares))
    print("\n%d figures, %d goals met, %d missed; %.0f s; JSON: %s" % (
        len(b.rows), sum(1 for r in b.rows if r["status"] == "OK"), misses,
        time.time() - started, args.json))
    b.write_json(args.json, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
