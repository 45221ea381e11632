#!/usr/bin/python3
"""Exotic types and column names: random writes in UDR vs plain DuckDB; compare CAST(... AS VARCHAR) multisets."""
import os as _os
ROOT = _os.environ.get('UDR_SOURCE_DIR', _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))))
BASE = _os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')
_os.makedirs(BASE, exist_ok=True)
import os
import subprocess, sys, random, json, shutil
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddb import DB, DuckErr
UDR = os.environ.get('UDR', os.path.join(ROOT, 'build', 'udr'))
seed = int(sys.argv[1]); r = random.Random(seed)
S = f'{BASE}/types_{seed}'; shutil.rmtree(S, ignore_errors=True)
hist = []
def udr(*a):
    c = [UDR, '--store', S] + list(a); hist.append(c)
    p = subprocess.run(c, capture_output=True, text=True); return p.returncode, p.stdout, p.stderr
ref = DB(); udr('init')
cols = [('"my id"', 'BIGINT', "i"), ('"a""b"', 'VARCHAR', "CASE WHEN i%3=0 THEN NULL ELSE 'q' || (i%4) END"),
        ('l', 'DOUBLE[]', "CASE WHEN i%5=0 THEN NULL WHEN i%5=1 THEN [0.0, 1.5] WHEN i%5=2 THEN []::DOUBLE[] ELSE [i/3.0, NULL] END"),
        ('st', 'STRUCT(a INTEGER, b VARCHAR)', "CASE WHEN i%4=0 THEN NULL ELSE {'a': i%3, 'b': CASE WHEN i%2=0 THEN NULL ELSE 'x' END} END"),
        ('iv', 'INTERVAL', "CASE i%4 WHEN 0 THEN INTERVAL 1 MONTH WHEN 1 THEN INTERVAL 30 DAY WHEN 2 THEN NULL ELSE INTERVAL (i) SECOND END"),
        
        ('bl', 'BLOB', "CASE WHEN i%3=0 THEN NULL ELSE ('\\x00\\xFF' || i::VARCHAR)::BLOB END"),
        ('u', 'UUID', "CASE WHEN i%3=0 THEN NULL ELSE ('00000000-0000-0000-0000-' || lpad(i::VARCHAR, 12, '0'))::UUID END"),
        ('tm', 'TIME', "TIME '00:00:00' + INTERVAL (i) MINUTE"),
        ('tz', 'TIMESTAMPTZ', "TIMESTAMPTZ '2020-01-01 00:00:00+00' + INTERVAL (i) HOUR"),
        ('m', 'MAP(VARCHAR, INTEGER)', "CASE WHEN i%3=0 THEN NULL ELSE MAP {'k': i} END"),
        ('dc', 'DECIMAL(38,10)', "(i / 7)::DECIMAL(38,10)"),
        ('ut', 'UTINYINT', "(i % 256)::UTINYINT"),
        ('Sel.ect', 'INTEGER', "i % 10")]
cols = [c for c in cols if c[0] == '"my id"' or r.random() < 0.7]
def q(c): return c if c.startswith('"') else '"' + c + '"'
n = r.choice([50, 500, 3000])
body = 'SELECT ' + ', '.join(f'CAST({e} AS {t}) AS {q(c)}' for c, t, e in cols) + f' FROM range({n}) r(i)'
ref.q('SET TimeZone = \'UTC\'') if False else None
rc, o, e = udr('sql', f'CREATE TABLE w AS {body}'); assert rc == 0, e
ref.q(f'CREATE TABLE w AS {body}')
sel = 'SELECT ' + ', '.join(f'CAST({q(c)} AS VARCHAR)' for c, t, e in cols) + ' FROM w'
def key(row): return tuple((v is None, v or '') for v in row)
def chk(what):
    rc, o, e = udr('sql', '--json', sel)
    if rc: print('READ FAIL', what, e); sys.exit(1)
    a = sorted([tuple(d.values()) for d in json.loads(o)], key=key)
    b = sorted(ref.q(sel), key=key)
    if a != b:
        from collections import Counter
        print('MISMATCH after', what, list((Counter(a) - Counter(b)).items())[:3], list((Counter(b) - Counter(a)).items())[:3])
        open(f'{BASE}/fail_types_{seed}.log', 'w').write('\n'.join(json.dumps(c) for c in hist)); sys.exit(1)
chk('create')
assigns = {'"a""b"': ["NULL", "'z'", '"a""b" || \'!\'', '"a""b"'], 'l': ["[-0.0, 1.5]", "list_append(l, 2.0)", "l", "NULL", "[0.0, 1.5]"],
           'st': ["{'a': 1, 'b': NULL}", "st", "NULL"], 'iv': ["INTERVAL 30 DAY", "INTERVAL 1 MONTH", "iv"],
           'h': ["h + 1", "h", "-h"], 'bl': ["'\\x00'::BLOB", "bl"], 'u': ["gen_random_uuid()" if False else "'ffffffff-0000-0000-0000-000000000000'::UUID", "u"],
           'tm': ["tm + INTERVAL 1 SECOND"], 'tz': ["tz + INTERVAL 1 HOUR", "tz"], 'm': ["MAP {'k': 1}", "m", "MAP {}"], 'dc': ["dc * 2", "dc"],
           'ut': ["ut // 2", "ut"], 'Sel.ect': ['"Sel.ect" + 1']}
for k in range(40):
    c = r.choice(cols[1:]) if len(cols) > 1 else cols[0]
    name = c[0].strip('"') if c[0] != '"a""b"' else '"a""b"'
    opts = assigns.get(c[0] if c[0] == '"a""b"' else c[0].strip('"'), ['NULL'])
    cond = r.choice([f'"my id" % {r.randint(2, 9)} = {r.randint(0, 1)}', f'"my id" = {r.randrange(n)}', f'{q(c[0]) if not c[0].startswith(chr(34)) else c[0]} IS NULL', 'true'])
    x = r.random()
    if x < 0.6:
        sql = f'UPDATE w SET {q(c[0]) if not c[0].startswith(chr(34)) else c[0]} = {r.choice(opts)} WHERE {cond}'
    elif x < 0.8:
        sql = f'DELETE FROM w WHERE {cond}'
    elif x < 0.9:
        sql = f'INSERT INTO w SELECT * FROM w WHERE {cond}'
    else:
        rc, o, e = udr('optimize', 'w', '--full'); chk('optimize'); continue
    rc, o, e = udr('sql', sql)
    try: ref.q(sql); re_ = None
    except DuckErr as ex: re_ = str(ex)
    if (rc == 0) != (re_ is None): print('ERRDIFF', sql, e, re_); sys.exit(1)
    chk(sql)
# keyed re-import through Parquet of the ref's state after some edits
ref.q("UPDATE w SET \"my id\" = \"my id\" WHERE false")
rc, o, e = udr('sql', '--csv', 'SELECT count(*) - count(DISTINCT "my id") FROM w')
if o.split()[-1] == '0':
    ref.q(f"COPY (SELECT * FROM w WHERE \"my id\" % 5 <> 0) TO '{BASE}/types_{seed}.parquet' (FORMAT parquet)")
    ref.q(f"DELETE FROM w WHERE \"my id\" % 5 = 0")
    rc, o, e = udr('import', 'w', f'{BASE}/types_{seed}.parquet', '--key', 'my id')
    if rc: print('IMPORT FAIL', e); sys.exit(1)
    chk('import --key parquet')
rc, o, e = udr('fsck'); assert rc == 0, o + e
print('OK', seed, [c[0] for c in cols])
shutil.rmtree(S, ignore_errors=True)
