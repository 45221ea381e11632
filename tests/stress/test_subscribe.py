"""Following the changelog: a subscriber (txn_worker subscribe) follows the
log with udr_catalog_wait + udr_catalog_log since its cursor and delivers
each commit's seq exactly once into an output file, persisting its cursor
after each delivery (see the protocol in tests/tools/txn_worker.c).  It is
killed (SIGKILL) and restarted many times while writers commit; at the end
the output is every seq 1..head exactly once, in order, and what each run
printed is consistent with the cursor it resumed from.
"""
import json
import os
import random
import signal
import subprocess
import time

from conftest import SANITIZE, base_env, tool


def parse_run(out):
    """(resume cursor, [seqs printed]) from one subscriber run's stdout."""
    text = out.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    lines = text.splitlines()
    if not lines:
        return None, []
    assert lines[0].startswith("resume "), lines[0]
    return int(lines[0].split()[1]), [int(x) for x in lines[1:]]


def head_of(root):
    p = subprocess.run([tool("txn_worker"), "dump", root], capture_output=True, env=base_env(), timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode().splitlines()[0])["head"]


def check_runs(runs, final_head):
    """Each run printed consecutive seqs from its resume point; a run resumes
    at or after everything the previous run confirmed, and at most one
    delivery later (killed after persisting the cursor, before printing)."""
    last_confirmed = 0
    for i, (resume, seqs) in enumerate(runs):
        if resume is None:
            continue  # killed before it printed anything
        assert last_confirmed <= resume <= last_confirmed + 1, \
            "run %d resumed at %d after %d was printed" % (i, resume, last_confirmed)
        expect = list(range(resume + 1, resume + 1 + len(seqs)))
        assert seqs == expect, "run %d printed %s, expected %s" % (i, seqs[:20], expect[:20])
        last_confirmed = seqs[-1] if seqs else resume
    assert last_confirmed == final_head


def check_out(state, final_head):
    with open(os.path.join(state, "out")) as f:
        got = [int(x) for x in f.read().split("\n") if x]
    assert got == list(range(1, final_head + 1)), \
        "output has %d lines (%s...), expected 1..%d exactly once" % (len(got), got[:10], final_head)
    with open(os.path.join(state, "cursor")) as f:
        c, ln = map(int, f.read().split())
    assert c == final_head
    assert ln == os.path.getsize(os.path.join(state, "out"))


def start_sub(root, state, until=None, die_at=None):
    env = base_env()
    if die_at:
        env["TXN_WORKER_DIE_AT"] = die_at
    args = [tool("txn_worker"), "subscribe", root, state] + ([str(until)] if until else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def test_subscriber_killed_and_restarted_exactly_once(tmp_path):
    root = str(tmp_path / "store")
    state = str(tmp_path / "sub")
    os.mkdir(state)
    w = tool("txn_worker")
    subprocess.run([w, "prepare", root, "x", "0"], check=True, env=base_env())
    rng = random.Random(777)
    count = 500 if not SANITIZE else 120
    writers = [subprocess.Popen([w, "txn3", root, "wa", str(count), "t0,t1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=base_env()),
               subprocess.Popen([w, "txn3", root, "wb", str(count), "u0"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=base_env())]
    runs = []
    kills = 0
    deadline = time.time() + 90
    while any(p.poll() is None for p in writers) and time.time() < deadline:
        p = start_sub(root, state)
        time.sleep(rng.uniform(0.01, 0.25) * (2 if SANITIZE else 1))
        p.send_signal(signal.SIGKILL)
        out, err = p.communicate()
        assert p.returncode in (-signal.SIGKILL, 0), "subscriber exit %d: %s" % (p.returncode, err.decode())
        runs.append(parse_run(out))
        kills += 1
    for wp in writers:
        _, err = wp.communicate(timeout=120)
        assert wp.returncode == 0, err.decode()
    final = head_of(root)
    assert final == 2 * count
    # One more run catches up and exits at the head.
    p = start_sub(root, state, until=final)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, "final subscriber exit %d: %s" % (p.returncode, err.decode())
    runs.append(parse_run(out))
    print("subscriber kills=%d, head=%d" % (kills, final))
    assert kills >= 3
    check_runs(runs, final)
    check_out(state, final)


def test_subscriber_killed_between_append_and_cursor(tmp_path):
    """Deterministic kills at the two dangerous points of the protocol."""
    root = str(tmp_path / "store")
    state = str(tmp_path / "sub")
    os.mkdir(state)
    w = tool("txn_worker")
    p = subprocess.run([w, "txn3", root, "w", "12", "t0,t1,t2"], capture_output=True, env=base_env())
    assert p.returncode == 0, p.stderr.decode()
    runs = []
    # Die after the 3rd append (line written, cursor not), after the 2nd
    # cursor write (cursor written, not printed), then at the 1st append.
    for die in ["append:3", "cursor:2", "append:1", "cursor:1"]:
        p = start_sub(root, state, die_at=die)
        out, err = p.communicate(timeout=60)
        assert p.returncode == -signal.SIGKILL, "did not die at %s: %d %s" % (die, p.returncode, err.decode())
        runs.append(parse_run(out))
    # Writers continue while a last run follows to the end.
    p = start_sub(root, state, until=20)
    time.sleep(0.2)
    q = subprocess.run([w, "txn3", root, "w2", "8", "t0"], capture_output=True, env=base_env())
    assert q.returncode == 0
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err.decode()
    runs.append(parse_run(out))
    check_runs(runs, 20)
    check_out(state, 20)
    # The resume points: 2 (3rd append lost), 2+2=4 (cursor 4 written, 4
    # not printed), 4 (append of 5 lost), 5 (cursor 5 written).
    assert [r[0] for r in runs] == [0, 2, 4, 4, 5], [r[0] for r in runs]


def test_subscriber_wakes_promptly(tmp_path):
    """An idle subscriber receives a new commit without polling delay
    (generous bound: 2 s on a noisy machine; the wait uses inotify)."""
    root = str(tmp_path / "store")
    state = str(tmp_path / "sub")
    os.mkdir(state)
    w = tool("txn_worker")
    subprocess.run([w, "txn3", root, "w", "1", "t0"], check=True, env=base_env(), capture_output=True)
    p = start_sub(root, state, until=2)
    time.sleep(0.5)
    assert p.poll() is None
    t0 = time.time()
    subprocess.run([w, "txn3", root, "w2", "1", "t0"], check=True, env=base_env(), capture_output=True)
    t_commit = time.time()
    out, err = p.communicate(timeout=30)
    t_done = time.time()
    assert p.returncode == 0, err.decode()
    assert parse_run(out) == (0, [1, 2])
    assert t_done - t_commit < 2.0, "subscriber took %.2f s after the commit" % (t_done - t_commit)
    assert t_done - t0 < 10
