#!/usr/bin/env python3
"""Judge `udsping conform` with programs written from SPEC.md alone.

Builds every fixture of manifest.json with gcc into a temporary directory, runs
`udsping conform ROLE --format json --output FILE -- CMD` for each entry, and compares the
gate's verdict with the manifest: exit code, requirement IDs blamed (failing MUST cases) and
warned (failing SHOULD cases), wrong blame, processes left behind, temporary files left behind.

Usage: python3 tests/strangers/run.py [--gate PATH] [--only SUBSTR]... [--reports DIR] [--jobs N]
                                     [--parallel N]
Exit status: 0 every entry matched the manifest, 1 some mismatch, 2 could not run.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ID_RE = re.compile(r"[A-Z]+-[A-Z]+-\d+")
PREFIX_RE = re.compile(r"^\s*((?:[A-Z]+-[A-Z]+-\d+)(?:\s*,\s*[A-Z]+-[A-Z]+-\d+)*)\s*:")


def build(manifest, bindir):
    for b in manifest["builds"]:
        cmd = ["gcc", "-O2", "-Wall", "-pthread"]
        cmd += ["-D" + d for d in b.get("defines", [])]
        cmd += ["-o", os.path.join(bindir, b["name"]), os.path.join(HERE, b["src"])]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("build failed: %s\n%s" % (" ".join(cmd), r.stderr))


def subst(arg, bindir):
    arg = re.sub(r"\{bin:([^}]+)\}", lambda m: os.path.join(bindir, m.group(1)), arg)
    return arg.replace("{src}", HERE)


def processes():
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    procs = {}
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5:
            continue
        procs[int(parts[0])] = (parts[3], parts[4])
    return procs


def carries(pid, var):
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return var.encode() in f.read().split(b"\0")
    except OSError:
        return False


def fixture_procs(markers, exclude, entry_var):
    """Fixture processes left running: those whose environment carries this entry's marker
    (what the gate started for it inherits it), and, when `markers` is given (entries one at a
    time), also those whose command line names a fixture and that were not running before."""
    found = {}
    for pid, (stat, args) in processes().items():
        if pid == os.getpid() or stat.startswith("Z"):
            continue
        if "udsping" in args.split()[0] if args.split() else False:
            continue
        ours = carries(pid, entry_var)
        if markers and pid not in exclude and any(m in args for m in markers):
            ours = True
        if ours:
            found[pid] = args
    return found


def blamed_ids(case):
    failure = case.get("failure")
    if isinstance(failure, dict) and failure.get("blames"):
        return set(failure["blames"])
    msg = case.get("message") or ""
    m = PREFIX_RE.match(msg)
    if m:
        return set(ID_RE.findall(m.group(1)))
    return set(case.get("requirements") or [])


def run_entry(gate, entry, bindir, reportdir, jobs, timeout, markers):
    """Runs the gate on one entry. `markers` is None when entries run side by side: then only
    the entry's own environment marker tells its leftover processes from another entry's."""
    cmd = [subst(a, bindir) for a in entry["cmd"]]
    work = tempfile.mkdtemp(prefix="h6run-")
    tmpd = os.path.join(work, "tmp")
    cwd = os.path.join(work, "cwd")
    os.mkdir(tmpd)
    os.mkdir(cwd)
    report = os.path.join(reportdir, entry["name"] + ".json")
    human = os.path.join(reportdir, entry["name"] + ".txt")
    argv = [gate, "conform", entry["role"], "--format", "json", "--output", report, "--jobs", str(jobs), "--"] + cmd
    entry_var = "H6_STRANGER_ENTRY=%s-%d" % (entry["name"], os.getpid())
    env = dict(os.environ, TMPDIR=tmpd, H6_STRANGER_ENTRY=entry_var.split("=", 1)[1])
    before = set(processes())
    t0 = time.time()
    timed_out = False
    with open(human, "w") as out:
        out.write("$ " + " ".join(argv) + "\n")
        out.flush()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
    dur = time.time() - t0
    time.sleep(0.5)
    left = fixture_procs(markers, before, entry_var)
    for pid in left:  # processes our own run started: end them, by pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    leftover_tmp = []
    for dp, dns, fns in os.walk(tmpd):
        for n in dns + fns:
            leftover_tmp.append(os.path.relpath(os.path.join(dp, n), tmpd))
    leftover_cwd = os.listdir(cwd)
    shutil.rmtree(work, ignore_errors=True)

    res = {"name": entry["name"], "rc": rc, "timed_out": timed_out, "duration": dur, "left_procs": left,
           "left_tmp": sorted(x for x in leftover_tmp if os.sep not in x), "left_cwd": leftover_cwd,
           "blamed": set(), "warned": set(), "errors": [], "failed_cases": [], "report": report}
    try:
        data = json.load(open(report))
    except (OSError, ValueError) as e:
        res["report_error"] = str(e)
        return res
    res["summary"] = data.get("summary", {})
    for c in data.get("cases", []):
        oc = c.get("outcome")
        if oc == "fail":
            ids = blamed_ids(c)
            if c.get("level") == "SHOULD":
                res["warned"] |= ids
            else:
                res["blamed"] |= ids
            res["failed_cases"].append((c["id"], c.get("level"), c.get("message")))
        elif oc not in ("pass", "skip"):
            res["errors"].append((c["id"], oc, c.get("message")))
    return res


def judge(entry, res):
    problems = []
    if res.get("report_error"):
        problems.append("no report: " + res["report_error"])
    if res["timed_out"]:
        problems.append("gate did not finish in time")
    if res["rc"] not in entry["exit"]:
        problems.append("exit %s, expected %s" % (res["rc"], "/".join(map(str, entry["exit"]))))
    seen = res["blamed"] | res["warned"]
    missing = [i for i in entry["must_blame"] if i not in seen]
    if missing:
        problems.append("not blamed: " + ",".join(missing))
    allowed = set(entry["must_blame"]) | set(entry.get("may_blame", []))
    mn = entry.get("must_not_blame", [])
    if "*" in mn:
        wrong = sorted(seen - allowed)
    else:
        wrong = sorted(seen & set(mn))
    if wrong:
        problems.append("wrong blame: " + ",".join(wrong))
    if res["left_procs"]:
        problems.append("left %d process(es): %s" % (len(res["left_procs"]),
                                                       "; ".join(sorted(set(res["left_procs"].values())))[:200]))
    if res["left_tmp"]:
        problems.append("left in TMPDIR: " + ",".join(res["left_tmp"][:5]))
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gate", default=os.path.join(ROOT, "target", "debug", "udsping"))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--reports", default=None, help="keep the gate's reports in this directory (default: none kept)")
    ap.add_argument("--jobs", type=int, default=1, help="--jobs passed to the gate (default 1)")
    ap.add_argument("--timeout", type=float, default=600, help="overall seconds per gate run")
    ap.add_argument("--parallel", type=int, default=1, help="entries judged at once (default 1)")
    args = ap.parse_args()
    args.gate = os.path.abspath(args.gate)  # the gate runs in a directory of its own

    if not os.access(args.gate, os.X_OK):
        print("gate not found: %s (cargo build first)" % args.gate, file=sys.stderr)
        return 2
    manifest = json.load(open(os.path.join(HERE, "manifest.json")))
    bindir = tempfile.mkdtemp(prefix="h6strangers-bin-")
    reportdir = args.reports or tempfile.mkdtemp(prefix="h6strangers-reports-")
    os.makedirs(reportdir, exist_ok=True)
    build(manifest, bindir)
    markers = [bindir, os.path.join(HERE, "lab_server.py"), os.path.join(HERE, "client.js")]

    entries = [e for e in manifest["entries"] if not args.only or any(o in e["name"] for o in args.only)]
    rows = []
    bad = 0
    one_at_a_time = markers if args.parallel <= 1 else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        runs = [(e, pool.submit(run_entry, args.gate, e, bindir, reportdir, args.jobs, args.timeout, one_at_a_time))
                for e in entries]
        for e, run in runs:
            res = run.result()
            problems = judge(e, res)
            bad += bool(problems)
            rows.append((e, res, problems))
            print("%-14s %-6s rc=%s exp=%-5s %5.1fs  %s" % (
                e["name"], e["role"], res["rc"], "/".join(map(str, e["exit"])), res["duration"],
                "OK" if not problems else "MISMATCH: " + " | ".join(problems)), flush=True)

    print()
    print("%-14s %-6s %-4s %-5s %-40s %-30s %s" % ("entry", "role", "rc", "exp", "blamed (MUST fails)", "warned (SHOULD)", "verdict"))
    for e, res, problems in rows:
        print("%-14s %-6s %-4s %-5s %-40s %-30s %s" % (
            e["name"], e["role"], res["rc"], "/".join(map(str, e["exit"])),
            ",".join(sorted(res["blamed"])) or "-", ",".join(sorted(res["warned"])) or "-",
            "ok" if not problems else "MISMATCH"))
    print()
    if args.reports:
        print("reports: %s" % reportdir)
    else:
        shutil.rmtree(reportdir, ignore_errors=True)
    print("%d of %d entries mismatched" % (bad, len(rows)))
    shutil.rmtree(bindir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
