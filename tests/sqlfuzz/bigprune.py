#!/usr/bin/python3
"""Key-pruned writes (WHERE col = N) on tables of several parts of >= 1 row group, vs plain DuckDB."""
import os as _os
ROOT = _os.environ.get('UDR_SOURCE_DIR', _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))))
BASE = _os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')
_os.makedirs(BASE, exist_ok=True)
import os
import subprocess, sys, random, json, shutil, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddb import DB
UDR = os.environ.get('UDR', os.path.join(ROOT, 'build', 'udr'))
seed = int(sys.argv[1]); nst = int(sys.argv[2]) if len(sys.argv) > 2 else 60
r = random.Random(seed)
S = f'{BASE}/big_{seed}'
shutil.rmtree(S, ignore_errors=True)
hist = []
def udr(*a):
    c = [UDR, '--store', S] + list(a); hist.append(c)
    p = subprocess.run(c, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr
ref = DB()
udr('init')
P = 130000
gtype = r.choice(['INTEGER', 'BIGINT', 'SMALLINT', 'UINTEGER'])
def q(lo, hi):
    return f"SELECT i::BIGINT AS id, (i % 1000)::{gtype} AS g, CASE WHEN i % 7 = 0 THEN NULL ELSE 'v' || i END AS s FROM range({lo}, {hi}) r(i)"
# parts: [0,P), [P,2P) , [2P,3P), maybe ids shuffled ranges
ranges = [(0, P), (P, 2 * P), (2 * P, 3 * P)]
if r.random() < 0.5:
    ranges = [(2 * P, 3 * P), (0, P), (P, 2 * P)]
rc, o, e = udr('import', 't', '--sql', q(*ranges[0])); assert rc == 0, e
ref.q(f'CREATE TABLE t AS {q(*ranges[0])}')
for lo, hi in ranges[1:]:
    rc, o, e = udr('sql', f'INSERT INTO t {q(lo, hi)}'); assert rc == 0, e
    ref.q(f'INSERT INTO t {q(lo, hi)}')
rc, o, e = udr('sql', '--csv', 'SELECT parts FROM udr_tables WHERE name = \'t\''); print('parts', o.split()[-1], 'g', gtype)
def chk(what):
    sq = "SELECT count(*)::VARCHAR, sum(hash(id, g, s) % 1000000007)::VARCHAR FROM t"
    rc, o, e = udr('sql', '--csv', sq)
    a = o.strip().splitlines()[-1].split(',') if rc == 0 else ['ERR', e]
    b = list(ref.q(sq)[0])
    if a != b:
        print('MISMATCH after', what, a, b)
        with open(f'{BASE}/fail_big_{seed}.log', 'w') as f:
            f.write(f'MISMATCH after {what}: udr {a} ref {b}\nhistory:\n' + '\n'.join(json.dumps(c) for c in hist) + '\n')
        sys.exit(1)
chk('setup')
for k in range(nst):
    lo, hi = r.choice(ranges)
    n = r.randrange(lo, hi) if r.random() < 0.9 else r.choice([-1, 3 * P + 5, 2 ** 40])
    col = r.choice(['id', 'id', 'g'])
    if col == 'g': n = r.randrange(0, 1000) if r.random() < 0.9 else r.choice([-1, 70000, 5000000000])
    a = r.choice(['', ' AS a', ' a'])
    pre = 'a.' if a and r.random() < 0.5 else ''
    cond = r.choice([f'{pre}{col} = {n}', f'{n} = {pre}{col}', f'{pre}{col}={n}', f'{pre}{col} = ?', f'({pre}{col} = {n})',
                     f'{pre}{col} = {n} OR {pre}id = {r.randrange(0, 3 * P)}', f'{pre}{col} = {n} /* c */'])
    params = []
    if '?' in cond:
        params = ['-p', f'int:{n}']
    kind = r.random()
    if kind < 0.45:
        sql = f"UPDATE t{a} SET s = 'u{k}', g = g + 1 WHERE {cond}"
        if gtype in ('SMALLINT',):
            sql = f"UPDATE t{a} SET s = 'u{k}' WHERE {cond}"
    elif kind < 0.8:
        sql = f"DELETE FROM t{a} WHERE {cond}"
    elif kind < 0.9:
        sql = f"INSERT INTO t VALUES ({r.randrange(0, 3 * P)}, {r.randrange(0, 1000)}, 'ins{k}')"
    else:
        sql = f"UPDATE t{a} SET s = s WHERE {cond}"
    if "?" not in sql: params = []
    rc, o, e = udr("sql", "--csv", sql, *params)
    rsql = sql.replace('?', str(n)) if params else sql
    try:
        rr = ref.q(rsql); rerr = None
    except Exception as ex:
        rerr = str(ex)
    if (rc == 0) != (rerr is None):
        print('ERRDIFF', sql, params, rc, e, rerr); sys.exit(1)
    if rc == 0 and o.strip().splitlines()[-1] != rr[0][0]:
        print('COUNTDIFF', sql, o, rr); sys.exit(1)
    chk(sql + ' ' + ' '.join(params))
    if r.random() < 0.1:
        rc, o, e = udr('optimize', 't', *r.choice([[], ['--deleted', '0'], ['--small-parts', '2']]))
        chk('optimize')
rc, o, e = udr('fsck'); assert rc == 0 and ' 0 problems' in o + e, o + e
rc, o, e = udr('sql', '--csv', 'SELECT parts, deletion_vectors FROM udr_tables')
print('OK seed', seed, 'final', o.split()[-1])
shutil.rmtree(S, ignore_errors=True)
