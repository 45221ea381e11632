#!/usr/bin/python3
"""Differential fuzzer: UDR (udr sql / import --key / optimize) vs plain DuckDB 1.4 (same libduckdb via ctypes).
usage: fuzz.py SEED SECONDS [big]
"""
import os as _os
ROOT = _os.environ.get('UDR_SOURCE_DIR', _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))))
BASE = _os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')
_os.makedirs(BASE, exist_ok=True)
import os
import subprocess, json, random, sys, os, re, time, shutil, traceback
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ddb import DB, DuckErr

UDR = os.environ.get('UDR', os.path.join(ROOT, 'build', 'udr'))
BASE = os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')

STRS = ["''", "'a'", "'b'", "'a,b'", "'say \"hi\"'", "'it''s'", "'line1\nline2'", "' '", "'NULL'", "'null'",
        "'\\N'", "'ü€'", "'x,\"y\",\nz'", "'\r\n'", "repeat('z', 300)", "'where'", "'returning'", "'t'", "'--c'",
        "'/*'", "'1'", "';'"]
SIGNED = ("'-0.0'::DOUBLE", "-('nan'::DOUBLE)")
DBLS = ["0.0", "'-0.0'::DOUBLE", "-('nan'::DOUBLE)", "1.5", "-2.25", "'nan'::DOUBLE", "'inf'::DOUBLE", "'-inf'::DOUBLE", "1e308",
        "5e-324", "0.1", "123456789.125", "-7", "3", "1e-10", "2.5e15"]
EXTRAS = [('b', 'BOOLEAN'), ('f', 'FLOAT'), ('dec', 'DECIMAL(9,2)'), ('ts', 'TIMESTAMP')]


class Found(Exception):
    pass


class Fuzz:
    def __init__(self, seed, big=False):
        self.seed = seed
        self.r = random.Random(seed)
        self.big = big
        self.store = f'{BASE}/store_{seed}'
        shutil.rmtree(self.store, ignore_errors=True)
        self.ref = DB()
        self.hist = []           # udr commands run this round (for reproduction)
        self.lastseq = 0
        self.versions = {}       # table -> list of versions recorded
        self.stats = {'stmts': 0, 'txns': 0, 'imports': 0, 'optimize': 0, 'oldchecks': 0, 'fsck': 0,
                      'udr_err': 0, 'both_err': 0}
        self.udr('init')
        cols = [('id', 'BIGINT'), ('g', 'INTEGER'), ('x', 'DOUBLE'), ('s', 'VARCHAR'), ('d', 'DATE')]
        for e in EXTRAS:
            if self.r.random() < 0.3:
                cols.append(e)
        self.cols = cols
        self.tables = ['t', 'u']
        self.notes = []

    # ---------------------------------------------------------------- running
    def udr(self, *args, check=True):
        cmd = [UDR, '--store', self.store] + list(args)
        self.hist.append(cmd)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        return p.returncode, p.stdout, p.stderr

    def fail(self, msg):
        raise Found(msg)

    def refq(self, sql):
        return self.ref.q(sql)

    # ---------------------------------------------------------------- values
    def v_id(self):
        r = self.r.random()
        if r < 0.03:
            return 'NULL'
        if r < 0.06:
            return str(-self.r.randint(1, 5))
        return str(self.r.randint(0, self.idmax))

    def v_g(self):
        return 'NULL' if self.r.random() < 0.15 else str(self.r.randint(-3, 10))

    def v_x(self, assign=False):
        r = self.r.random()
        if r < 0.12:
            return 'NULL'
        if r < 0.6:
            # DuckDB's own UPDATE may keep 0.0 where -0.0 is set (and NaN
            # for -NaN), depending on its storage (QUERY.md, "A DuckDB
            # behaviour to know"): assignments avoid the signed ones
            return self.r.choice([v for v in DBLS if not (assign and v in SIGNED)])
        return repr(round(self.r.uniform(-100, 100), self.r.randint(0, 6)))

    def v_s(self):
        return 'NULL' if self.r.random() < 0.15 else self.r.choice(STRS)

    def v_d(self):
        return 'NULL' if self.r.random() < 0.1 else f"DATE '2020-01-01' + {self.r.randint(-400, 400)}"

    def v_col(self, c):
        name, ty = c
        if name == 'id': return self.v_id()
        if name == 'g': return self.v_g()
        if name == 'x': return self.v_x()
        if name == 's': return self.v_s()
        if name == 'd': return self.v_d()
        if self.r.random() < 0.15: return 'NULL'
        if ty == 'BOOLEAN': return self.r.choice(['true', 'false'])
        if ty == 'FLOAT': return self.r.choice(["1.5::FLOAT", "'nan'::FLOAT", "'-0.0'::FLOAT", "-('nan'::FLOAT)", "0.1::FLOAT", "3.25::FLOAT", "-1e30::FLOAT"])
        if ty.startswith('DECIMAL'): return f"{self.r.randint(-99999, 99999)/100:.2f}"
        if ty == 'TIMESTAMP': return f"TIMESTAMP '2021-03-04 05:06:07' + INTERVAL {self.r.randint(0, 10**6)} SECOND"
        raise AssertionError(ty)

    def row_lit(self):
        return '(' + ', '.join(self.v_col(c) for c in self.cols) + ')'

    # ---------------------------------------------------------------- SQL pieces
    def cond(self, a=None):
        p = (a + '.') if a and self.r.random() < 0.5 else ''
        r = self.r
        n = r.randint(0, self.idmax)
        k = r.randint(0, 22)
        c = [
            lambda: f"{p}id = {n}",
            lambda: f"{n} = {p}id",
            lambda: f"{p}id={n}",
            lambda: f"{p}id > {n}",
            lambda: f"{p}id BETWEEN {n} AND {n + r.randint(0, 30)}",
            lambda: f"{p}g IS NULL",
            lambda: f"{p}s IS NULL OR {p}s = ''",
            lambda: f"{p}x IS NULL",
            lambda: f"isnan({p}x)",
            lambda: f"{p}x = 0",
            lambda: f"{p}id IN ({', '.join(str(r.randint(0, self.idmax)) for _ in range(r.randint(1, 6)))})",
            lambda: f"{p}g IN (1, 2, NULL) OR {p}s LIKE '%a%'",
            lambda: f"NOT ({p}g > 3)",
            lambda: r.choice(['true', 'false', '1 = 1', 'NULL']),
            lambda: f"{p}d < DATE '2020-03-01'",
            lambda: f"{p}id % 3 = {r.randint(0, 2)}",
            lambda: f"{p}id = {n} OR {p}g = {r.randint(-3, 10)}",
            lambda: f"{p}id = {n} AND {p}g = {r.randint(-3, 10)}",
            lambda: f"({p}id = {n})",
            lambda: f"{p}id = {n} -- c\n",
            lambda: f"{p}g = {r.randint(-3, 10)}",
            lambda: f"{p}id = {n} IS NOT NULL",
            lambda: f"{p}s IN (SELECT s FROM {self.other} WHERE g > {r.randint(-3, 10)})",
        ]
        return c[k]()

    def assign(self, a=None):
        p = (a + '.') if a and self.r.random() < 0.3 else ''
        r = self.r
        opts = [
            lambda: f"g = {p}g", lambda: f"g = {p}g + 1", lambda: f"g = NULL", lambda: f"g = {self.v_g()}",
            lambda: f"x = CASE WHEN {p}x = 0 OR isnan({p}x) THEN {p}x ELSE -{p}x END", lambda: f"x = {p}x * 2", lambda: f"x = {self.v_x(assign=True)}", lambda: f"x = {p}x",
            lambda: f"s = {p}s || ','", lambda: f"s = NULL", lambda: f"s = {self.v_s()}", lambda: f"s = upper({p}s)",
            lambda: f"s = {p}s", lambda: f"d = {p}d + 1", lambda: f"id = {p}id", lambda: f"id = {p}id + 1000",
            lambda: f"s = CASE WHEN {p}s IS NULL THEN '' ELSE NULL END",
            lambda: f"x = (SELECT max(x) FILTER (WHERE NOT isnan(x)) FROM {r.choice([self.cur, self.cur + '@latest', chr(34) + self.cur + chr(34), self.other])})",
            lambda: f"g = (SELECT count(*) FROM {self.cur} WHERE g IS NOT NULL)",
        ]
        for c in self.cols[5:]:
            opts.append(lambda c=c: f"{c[0]} = {self.v_col(c)}")
        n = r.randint(1, 3)
        seen, out = set(), []
        for _ in range(n):
            s = r.choice(opts)()
            col = s.split('=')[0].strip()
            if col in seen:
                continue
            seen.add(col)
            out.append(s)
        return ', '.join(out)

    def oldref(self, tb):
        vs = self.versions.get(tb, [])
        if not vs:
            return tb
        return f"{tb}@{self.r.choice(vs)}"

    def colnames(self):
        return ', '.join(c[0] for c in self.cols)

    def gen_stmt(self):
        r = self.r
        tb = r.choice(self.tables) if r.random() < 0.3 else 't'
        self.cur = tb
        self.other = 'u' if tb == 't' else 't'
        k = r.random()
        a = None
        params = []
        if k < 0.12:
            rows = ', '.join(self.row_lit() for _ in range(r.randint(1, 5)))
            if r.random() < 0.2:
                return f"INSERT INTO {tb} (id, s) VALUES ({self.v_id()}, {self.v_s()})", params
            return f"INSERT INTO {tb} VALUES {rows}", params
        if k < 0.18:
            cn = self.colnames().replace('id, ', '', 1)
            return f"INSERT INTO {tb} SELECT id + {r.randint(1, 50)}, {cn} FROM {r.choice([tb, self.other, self.oldref(tb)])} WHERE {self.cond()}", params
        if k < 0.45:
            alias = ''
            if r.random() < 0.3:
                a = r.choice(['a', 'q'])
                alias = r.choice([f' AS {a}', f' {a}'])
            w = '' if r.random() < 0.07 else f" WHERE {self.cond(a or tb)}"
            ret = ''
            if r.random() < 0.1:
                ret = ' RETURNING id, s, CAST(x AS VARCHAR) AS xs'
            if r.random() < 0.05 and w:
                params = [f'int:{r.randint(0, self.idmax)}']
                w = ' WHERE id = ?'
            return f"UPDATE {tb}{alias} SET {self.assign(a)}{w}{ret}", params
        if k < 0.52:
            return f"UPDATE {tb} SET {self.assign()} FROM (SELECT id AS oid, g AS og FROM {self.other}) o WHERE {tb}.id = o.oid AND o.og > {r.randint(-3, 8)}", params
        if k < 0.66:
            alias = ''
            if r.random() < 0.3:
                a = 'a'
                alias = ' AS a'
            if r.random() < 0.05:
                params = [f'int:{r.randint(0, self.idmax)}']
                return f"DELETE FROM {tb}{alias} WHERE id = ?", params
            ret = ' RETURNING id, s' if r.random() < 0.1 else ''
            return f"DELETE FROM {tb}{alias} WHERE {self.cond(a or tb)}{ret}", params
        if k < 0.69:
            return f"DELETE FROM {tb} WHERE id IN (SELECT id FROM {r.choice([tb, self.other, tb + '@latest', self.oldref(tb)])} WHERE {self.cond()})", params
        if k < 0.70:
            return f"DELETE FROM {tb} USING {self.other} o WHERE {tb}.id = o.id AND o.g > {r.randint(-3, 8)}", params
        if k < 0.80:
            n = r.randint(1, 5)
            src = ', '.join(self.row_lit() for _ in range(n))
            cn = self.colnames()
            clauses = []
            if r.random() < 0.3:
                clauses.append(f"WHEN MATCHED AND src.g > {r.randint(-3, 8)} THEN DELETE")
            if r.random() < 0.8:
                sets = ', '.join(f"{c[0]} = src.{c[0]}" for c in self.cols[1:] if r.random() < 0.6) or 'g = src.g'
                clauses.append(f"WHEN MATCHED THEN UPDATE SET {sets}")
            if r.random() < 0.8:
                clauses.append("WHEN NOT MATCHED THEN INSERT VALUES (" + ', '.join('src.' + c[0] for c in self.cols) + ")")
            if r.random() < 0.15:
                clauses.append(r.choice(["WHEN NOT MATCHED BY SOURCE AND g > 5 THEN DELETE",
                                         "WHEN NOT MATCHED BY SOURCE AND id % 7 = 0 THEN UPDATE SET s = 'nbs'"]))
            if not clauses:
                clauses.append("WHEN MATCHED THEN DELETE")
            on = r.choice([f"{tb}.id = src.id", f"{tb}.id IS NOT DISTINCT FROM src.id", f"{tb}.id = src.id AND {tb}.g IS NOT DISTINCT FROM src.g"])
            return f"MERGE INTO {tb} USING (VALUES {src}) AS src({cn}) ON {on} " + ' '.join(clauses), params
        if k < 0.81:
            return f"TRUNCATE {tb}", params
        if k < 0.84:
            return f"CREATE OR REPLACE TABLE {tb} AS SELECT * FROM {r.choice([tb, self.oldref(tb)])} WHERE {self.cond()}" + (' ORDER BY id' if r.random() < 0.3 else ''), params
        if k < 0.855:
            return r.choice([
                f"INSERT INTO {tb} BY NAME SELECT {self.v_s()} AS s, {self.v_id()} AS id",
                f"INSERT INTO {tb} (s, g, id) VALUES ({self.v_s()}, {self.v_g()}, {self.v_id()}), ({self.v_s()}, NULL, {self.v_id()})",
                f"UPDATE {tb} a SET s = 'e' || a.id WHERE EXISTS (SELECT 1 FROM {self.other} o WHERE o.id = a.id AND o.g > {r.randint(0, 9)})",
                f"UPDATE {tb} SET g = g - 1 WHERE id IN (SELECT id FROM {tb} WHERE {self.cond()})",
                f"UPDATE {tb} SET id = id + 1 WHERE {self.cond()}",
            ]), params
        if k < 0.865:
            params = [f'text:p{r.randint(0, 9)}', f'int:{r.randint(0, self.idmax)}']
            return f"UPDATE {tb} SET s = ? || coalesce(s, '') WHERE id = ? OR g = {r.randint(-3, 10)}", params
        if k < 0.87:
            cn = self.colnames().replace('id, ', '', 1)
            return f"INSERT INTO {tb} SELECT id, {cn} FROM {tb} WHERE {self.cond()}", params  # duplicates rows
        if k < 0.9:
            return f"UPDATE {tb} SET x = x WHERE {self.cond()}", params  # no-op
        return f"DELETE FROM {tb} WHERE {self.cond()} AND false", params

    # ---------------------------------------------------------------- ref translation
    def to_ref(self, sql):
        sql = re.sub(r'"(t|u)@latest"', r'\1', sql)
        sql = re.sub(r'\b(t|u)@latest\b', r'\1', sql)
        sql = re.sub(r'"(t|u)@(\d+)"', r'v_\1_\2', sql)
        sql = re.sub(r'\b(t|u)@(\d+)\b', r'v_\1_\2', sql)
        return sql

    def fill_params(self, sql, params):
        for p in params:
            t, v = p.split(':', 1)
            sql = sql.replace('?', ("'" + v + "'") if t == 'text' else v, 1)
        return sql

    # ---------------------------------------------------------------- state
    def sel(self, tb):
        def e(c):
            if c[1] in ('DOUBLE', 'FLOAT'):  # the sign of 0 and NaN too (DuckDB's writer merged them)
                return f"CASE WHEN isnan({c[0]}) THEN (CASE WHEN signbit({c[0]}) THEN '-nan' ELSE 'nan' END) ELSE CAST({c[0]} AS VARCHAR) END"
            return f'CAST({c[0]} AS VARCHAR)'
        return 'SELECT ' + ', '.join(f'{e(c)} AS "{c[0]}"' for c in self.cols) + f' FROM {tb}'

    @staticmethod
    def key(row):
        return tuple((v is None, v or '') for v in row)

    def ref_rows(self, tb):
        return sorted(self.refq(self.sel(tb)), key=self.key)

    def udr_rows(self, tb):
        rc, out, err = self.udr('sql', '--json', self.sel(tb))
        if rc != 0:
            self.fail(f'read of {tb} failed rc={rc}: {err}')
        try:
            js = json.loads(out)
        except Exception as e:
            self.fail(f'bad JSON from read of {tb}: {e}: {out[:500]!r}')
        return sorted((tuple(d[c[0]] for c in self.cols) for d in js), key=self.key)

    def compare(self, tb, udrtb=None, reftb=None, what=''):
        a = self.udr_rows(udrtb or tb)
        b = self.ref_rows(reftb or tb)
        if a != b:
            sa, sb = set(a), set(b)
            from collections import Counter
            ca, cb = Counter(a), Counter(b)
            self.fail(f'CONTENT MISMATCH {what} {udrtb or tb}: udr {len(a)} rows, ref {len(b)} rows\n'
                      f' only udr: {list((ca - cb).items())[:5]}\n only ref: {list((cb - ca).items())[:5]}')

    def snap_pre(self):
        for tb in self.tables:
            self.refq(f'CREATE OR REPLACE TABLE pre_{tb} AS SELECT rowid AS __rid, * FROM {tb}')

    def rowid_counts(self, tb):
        cmp = ' OR '.join(f'CAST(a.{c[0]} AS VARCHAR) IS DISTINCT FROM CAST(b.{c[0]} AS VARCHAR)' for c in self.cols)
        ins = int(self.refq(f'SELECT count(*) FROM {tb} WHERE rowid NOT IN (SELECT __rid FROM pre_{tb})')[0][0])
        dele = int(self.refq(f'SELECT count(*) FROM pre_{tb} WHERE __rid NOT IN (SELECT rowid FROM {tb})')[0][0])
        upd = int(self.refq(f'SELECT count(*) FROM {tb} a JOIN pre_{tb} b ON a.rowid = b.__rid WHERE {cmp}')[0][0])
        return ins, upd, dele

    def multiset_counts(self, tb):
        s = self.sel(tb)
        ps = self.sel(f'pre_{tb}')
        ins = int(self.refq(f'SELECT count(*) FROM ({s} EXCEPT ALL {ps})')[0][0])
        dele = int(self.refq(f'SELECT count(*) FROM ({ps} EXCEPT ALL {s})')[0][0])
        return ins, 0, dele

    def new_log(self):
        rc, out, err = self.udr('sql', '--json', 'SELECT seq, "table", new_version, inserted, updated, deleted, dropped, message '
                                'FROM udr_log WHERE seq > ? ORDER BY seq, "table"', '-p', f'int:{self.lastseq}')
        if rc != 0:
            self.fail(f'udr_log read failed: {err}')
        rows = json.loads(out)
        if rows:
            self.lastseq = max(r['seq'] for r in rows)
        return rows

    def record_versions(self, logrows):
        for lr in logrows:
            tb, v = lr['table'], lr['new_version']
            self.refq(f'CREATE OR REPLACE TABLE v_{tb}_{v} AS SELECT * FROM {tb}')
            self.versions.setdefault(tb, []).append(v)

    def check_log(self, logrows, expect, what):
        """expect: {table: (ins, upd, del) or None(=unknown)} for tables that must have changed."""
        writes = [l for l in logrows if l['message'] != 'compaction after a SQL write']
        comps = [l for l in logrows if l['message'] == 'compaction after a SQL write']
        for l in comps:
            if (l['inserted'], l['updated'], l['deleted']) != (0, 0, 0):
                self.fail(f'compaction log row with counts {l}')
        got = {}
        for l in writes:
            if l['table'] in got:
                self.fail(f'two write log rows for {l["table"]} after {what}: {logrows}')
            got[l['table']] = (l['inserted'], l['updated'], l['deleted'])
        exp = {t: c for t, c in expect.items() if c is None or c != (0, 0, 0)}
        if set(got) != set(exp):
            self.fail(f'LOG TABLES MISMATCH after {what}: udr_log rows {writes}, expected changes {exp}')
        for t, c in exp.items():
            if c is not None and got[t] != c:
                self.fail(f'LOG COUNTS MISMATCH for {t} after {what}: udr (ins,upd,del)={got[t]} expected {c}')

    # ---------------------------------------------------------------- operations
    def setup(self):
        r = self.r
        coldef = ', '.join(f'{c} {t}' for c, t in self.cols)
        for tb in self.tables:
            n = r.choice([10, 30, 100, 500, 2000, 5000]) if not self.big else 140000
            self.idmax = max(20, n * 2)
            how = r.random()
            exprs = {
                'id': 'i' if r.random() < 0.7 else f'(i * 7919) % {n * 2}',
                'g': 'CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 7) % 11 END',
                'x': "CASE i % 17 WHEN 0 THEN NULL WHEN 1 THEN 'nan'::DOUBLE WHEN 2 THEN 0.0 WHEN 3 THEN 0.0 ELSE i / 7.0 END",
                's': "CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'a,b\"c' || i WHEN 3 THEN 'line' || chr(10) || i WHEN 4 THEN 'a' ELSE 'q''' || (i % 9) END",
                'd': "CASE WHEN i % 19 = 0 THEN NULL ELSE DATE '2020-01-01' + (i % 1000)::INTEGER END",
                'b': 'CASE WHEN i % 5 = 0 THEN NULL ELSE i % 2 = 0 END',
                'f': "CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN 0.0::FLOAT ELSE (i / 3.0)::FLOAT END",
                'dec': '((i % 2000) / 7.0)::DECIMAL(9,2)',
                'ts': "TIMESTAMP '2021-01-01' + to_seconds(i * 37)",
            }
            q = 'SELECT ' + ', '.join(f'CAST({exprs[c]} AS {t}) AS {c}' for c, t in self.cols) + f' FROM range({n}) r(i)'
            self.refq(f'CREATE TABLE {tb} AS {q}')
            if how < 0.4:
                rc, out, err = self.udr('sql', f'CREATE TABLE {tb} AS {q}')
            elif how < 0.7:
                rc, out, err = self.udr('import', tb, '--sql', q)
            else:
                half = n // 2
                self.refq(f'DELETE FROM {tb}')
                self.refq(f'INSERT INTO {tb} {q} LIMIT {half}')
                rc, out, err = self.udr('sql', f'CREATE TABLE {tb} ({coldef})')
                self.refq(f'CREATE TABLE tmp_{tb} AS SELECT * FROM {tb}')
                self.refq(f'DELETE FROM {tb}')
                self.record_versions(self.new_log())
                self.refq(f'INSERT INTO {tb} SELECT * FROM tmp_{tb}')
                if rc == 0:
                    rc, out, err = self.udr('sql', f'INSERT INTO {tb} {q} LIMIT {half}')
                if self.big:
                    self.refq(f'INSERT INTO {tb} SELECT * FROM ({q}) OFFSET {half}')
                    rc, out, err = self.udr('sql', f'INSERT INTO {tb} SELECT * FROM ({q}) OFFSET {half}')
            if rc != 0:
                self.fail(f'setup failed: {err}')
            lg = self.new_log()
            self.record_versions(lg)
        self.idmax = max(self.idmax, 20)
        for tb in self.tables:
            self.compare(tb, what='setup')

    def op_sql(self):
        r = self.r
        self.snap_pre()
        txn = r.random() < 0.15
        if txn:
            stmts, allp = [], []
            for _ in range(r.randint(2, 5)):
                s, p = self.gen_stmt()
                if p:
                    continue
                stmts.append(s)
            if not stmts:
                stmts = ["DELETE FROM t WHERE false"]
            end = 'ROLLBACK' if r.random() < 0.2 else 'COMMIT'
            # sometimes read inside the txn
            if r.random() < 0.2:
                stmts.insert(r.randint(0, len(stmts)), 'SELECT count(*) FROM t')
            script = 'BEGIN; ' + '; '.join(stmts) + f'; {end}'
            self.stats['txns'] += 1
            self.stats['stmts'] += len(stmts)
            args = ['sql', '--json', script]
            if r.random() < 0.1:
                args.insert(1, '--no-compact')
            rc, out, err = self.udr(*args)
            # ref
            referr = None
            self.refq('BEGIN TRANSACTION')
            for s in stmts:
                try:
                    self.refq(self.to_ref(s))
                except DuckErr as e:
                    referr = f'{s}: {e}'
                    break
            if referr or end == 'ROLLBACK':
                self.refq('ROLLBACK')
            else:
                self.refq('COMMIT')
            what = script
            kinds = stmts
        else:
            s, p = self.gen_stmt()
            self.stats['stmts'] += 1
            args = ['sql', '--json', s]
            for x in p:
                args += ['-p', x]
            if r.random() < 0.1:
                args.insert(1, '--no-compact')
            rc, out, err = self.udr(*args)
            referr = None
            refres = None
            try:
                refres = self.refq(self.fill_params(self.to_ref(s), p))
            except DuckErr as e:
                referr = str(e)
            what = s + (f'  params={p}' if p else '')
            kinds = [s]
            if rc == 0 and referr is None:
                # compare the statement's own result
                js = json.loads(out)
                got = sorted([tuple(None if v is None else str(v) for v in d.values()) for d in js], key=self.key)
                exp = sorted(refres, key=self.key)
                if got != exp:
                    self.fail(f'STATEMENT RESULT MISMATCH for {what}: udr {got[:5]} ref {exp[:5]}')
        if rc != 0 and referr is None:
            self.stats['udr_err'] += 1
            self.fail(f'UDR ERROR where DuckDB succeeded: {what}\n rc={rc} {err.strip()}')
        if rc == 0 and referr is not None:
            self.fail(f'UDR SUCCEEDED where DuckDB failed: {what}\n ref error: {referr}')
        if rc != 0:
            self.stats['both_err'] += 1
        lg = self.new_log()
        expect = {}
        for tb in self.tables:
            if any(re.match(rf'\s*CREATE OR REPLACE TABLE {tb}\b', k) for k in kinds):
                c = self.multiset_counts(tb)
                if c == (0, 0, 0):
                    # "nothing when they equal the old ones, row for row": may or may not commit
                    if any(l['table'] == tb for l in lg):
                        c = (0, 0, 0)
                        expect[tb] = None
                        continue
                expect[tb] = c
            else:
                expect[tb] = self.rowid_counts(tb)
        if rc != 0:
            expect = {}
        self.check_log(lg, expect, what)
        self.record_versions(lg)
        for tb in self.tables:
            self.compare(tb, what=f'after {what}')

    def op_optimize(self):
        r = self.r
        tb = r.choice(self.tables)
        args = ['optimize', tb]
        if r.random() < 0.3: args.append('--full')
        if r.random() < 0.4: args += ['--deleted', str(r.choice([0, 1, 10, 50]))]
        if r.random() < 0.4: args += ['--small-parts', str(r.choice([0, 1, 2, 3]))]
        self.stats['optimize'] += 1
        rc, out, err = self.udr(*args)
        if rc != 0:
            self.fail(f'optimize failed: {err}')
        lg = self.new_log()
        for l in lg:
            if (l['inserted'], l['updated'], l['deleted']) != (0, 0, 0) or l['table'] != tb:
                self.fail(f'optimize log row {l}')
        self.record_versions(lg)
        self.compare(tb, what=f'after optimize {args}')

    def csv_field(self, v, ty):
        if v is None:
            return ''
        if ty == 'VARCHAR':
            return '"' + v.replace('"', '""') + '"'
        return v

    def op_import(self):
        r = self.r
        tb = r.choice(self.tables)
        keys = r.choice([['id'], ['id'], ['id', 'g'], ['s'], ['g', 'id']])
        kidx = [i for i, c in enumerate(self.cols) if c[0] in keys]
        kidx = [next(i for i, c in enumerate(self.cols) if c[0] == k) for k in keys]
        cur = self.ref_rows(tb)
        # desired: dedupe current rows by key, mutate
        desired, seen = [], set()
        order = list(cur)
        r.shuffle(order)
        if r.random() < 0.5:
            order.sort(key=lambda row: self.key([row[i] for i in kidx]))
        for row in order:
            k = tuple(row[i] for i in kidx)
            if k in seen:
                continue
            seen.add(k)
            x = r.random()
            if x < 0.1:
                continue  # delete
            if x < 0.25:
                row = list(row)
                j = r.randrange(len(self.cols))
                if j not in kidx:
                    lit = self.v_col(self.cols[j])
                    val = self.refq(f'SELECT CAST(CAST({lit} AS {self.cols[j][1]}) AS VARCHAR)')[0][0]
                    row[j] = val
                row = tuple(row)
            desired.append(row)
        for _ in range(r.randint(0 if desired else 1, 5)):
            lit = self.row_lit()
            row = self.refq('SELECT ' + ', '.join(f'CAST(CAST(c{i+1} AS {c[1]}) AS VARCHAR)' for i, c in enumerate(self.cols)) + f' FROM (VALUES {lit}) v(' + ', '.join(f'c{i+1}' for i in range(len(self.cols))) + ')')[0]
            k = tuple(row[i] for i in kidx)
            if k in seen:
                continue
            seen.add(k)
            desired.append(row)
        if r.random() < 0.05 and desired:
            desired.append(desired[0])  # duplicate key in the copy: must be refused
        # import reads a quoted empty string as '' and an empty field as NULL
        path = f'{BASE}/imp_{self.seed}.csv'
        with open(path, 'w', newline='') as f:
            f.write(','.join(c[0] for c in self.cols) + '\n')
            for row in desired:
                f.write(','.join(self.csv_field(v, c[1]) for v, c in zip(row, self.cols)) + '\n')
        exp_rows = list(desired)
        # expected outcome
        def kk(row): return tuple(row[i] for i in kidx)
        from collections import Counter
        ccount = Counter(kk(x) for x in exp_rows)
        tcount = Counter(kk(x) for x in cur)
        refuse = any(v > 1 for v in ccount.values()) or any(tcount[k] > 1 for k in ccount)
        self.stats['imports'] += 1
        rc, out, err = self.udr('import', tb, path, '--key', ','.join(keys))
        lg = self.new_log()
        if refuse:
            if rc == 0:
                self.fail(f'IMPORT ACCEPTED duplicate keys ({keys}) rc=0 out={out.strip()} (csv {path})')
            if lg:
                self.fail(f'refused import committed {lg}')
            self.compare(tb, what='after refused import')
            return
        if rc != 0:
            self.fail(f'IMPORT FAILED unexpectedly keys={keys}: rc={rc} {err.strip()}  (csv kept at {path})')
        # counts by key
        cmap = {}
        for x in cur:
            cmap.setdefault(kk(x), []).append(x)
        ins = upd = dele = 0
        emap = {kk(x): x for x in exp_rows}
        for k, x in emap.items():
            if k not in cmap:
                ins += 1
            elif cmap[k][0] != x:
                upd += 1
        for k, xs in cmap.items():
            if k not in emap:
                dele += len(xs)
        # apply to ref
        self.refq(f'DELETE FROM {tb}')
        if exp_rows:
            vals = ', '.join('(' + ', '.join('NULL' if v is None else "'" + v.replace("'", "''") + "'" for v in row) + ')' for row in exp_rows)
            self.refq(f'INSERT INTO {tb} SELECT ' + ', '.join(f'CAST(c{i+1} AS {c[1]})' for i, c in enumerate(self.cols)) +
                      f' FROM (VALUES {vals}) v(' + ', '.join(f'c{i+1}' for i in range(len(self.cols))) + ')')
        self.check_log(lg, {tb: (ins, upd, dele)}, f'import --key {keys}')
        self.record_versions(lg)
        self.compare(tb, what=f'after import --key {keys} (csv {path})')

    def op_recreate(self):
        r = self.r
        tb = r.choice(self.tables)
        vs = self.versions.get(tb, [])
        v = r.choice(vs)
        self.snap_pre()
        if r.random() < 0.5:
            script = f"BEGIN; DROP TABLE {tb}; CREATE TABLE {tb} AS SELECT * FROM {tb}@{v}; COMMIT"
            rc, out, err = self.udr('sql', script)
            if rc != 0:
                self.fail(f'recreate failed: {script}: {err}')
        else:
            rc, out, err = self.udr('sql', f'DROP TABLE {tb}')
            if rc != 0:
                self.fail(f'drop failed: {err}')
            lg = self.new_log()
            if len(lg) != 1 or not lg[0]['dropped'] or lg[0]['deleted'] != int(self.refq(f'SELECT count(*) FROM {tb}')[0][0]):
                self.fail(f'drop log {lg}')
            rc2, out, err = self.udr('sql', '--csv', f'SELECT count(*) FROM {tb}')
            if rc2 == 0:
                self.fail(f'dropped table still readable: {out}')
            self.refq(f'CREATE OR REPLACE TABLE v_{tb}_{lg[0]["new_version"]} AS SELECT * FROM {tb} LIMIT 0')
            rc, out, err = self.udr('sql', f'CREATE TABLE {tb} AS SELECT * FROM {tb}@{v}')
            if rc != 0:
                self.fail(f'recreate failed: {err}')
            script = f'DROP TABLE {tb}; CREATE TABLE {tb} AS SELECT * FROM {tb}@{v}'
        self.refq(f'DROP TABLE {tb}')
        self.refq(f'CREATE TABLE {tb} AS SELECT * FROM v_{tb}_{v}')
        lg = self.new_log()
        for l in lg:
            if l['dropped']:
                continue
            if l['message'] != 'compaction after a SQL write' and (l['inserted'], l['updated'], l['deleted']) != (int(self.refq(f'SELECT count(*) FROM {tb}')[0][0]), 0, 0) and not l['dropped']:
                # a drop+create in one txn: counted as a replace? accept, but record
                self.notes.append(f'recreate log {l} for {script}')
        # in one transaction the drop and create may be one version; record only the last version's rows
        for l in lg:
            if l['dropped']:
                self.versions.setdefault(tb, [])  # dropped versions read as not found: skip
            else:
                self.refq(f'CREATE OR REPLACE TABLE v_{tb}_{l["new_version"]} AS SELECT * FROM {tb}')
                self.versions.setdefault(tb, []).append(l['new_version'])
        self.compare(tb, what=f'after {script}')

    def op_append(self):
        r = self.r
        tb = r.choice(self.tables)
        rows = []
        for _ in range(r.randint(1, 6)):
            lit = self.row_lit()
            rows.append(self.refq('SELECT ' + ', '.join(f'CAST(CAST(c{i+1} AS {c[1]}) AS VARCHAR)' for i, c in enumerate(self.cols)) + f' FROM (VALUES {lit}) v(' + ', '.join(f'c{i+1}' for i in range(len(self.cols))) + ')')[0])
        path = f'{BASE}/app_{self.seed}.csv'
        with open(path, 'w', newline='') as f:
            f.write(','.join(c[0] for c in self.cols) + '\n')
            for row in rows:
                f.write(','.join(self.csv_field(v, c[1]) for v, c in zip(row, self.cols)) + '\n')
        exp_rows = list(rows)  # "" is '', an empty field NULL
        rc, out, err = self.udr('import', tb, path, '--append')
        if rc != 0:
            self.fail(f'append failed: {err} (csv {path})')
        vals = ', '.join('(' + ', '.join('NULL' if v is None else "'" + v.replace("'", "''") + "'" for v in row) + ')' for row in exp_rows)
        self.refq(f'INSERT INTO {tb} SELECT ' + ', '.join(f'CAST(c{i+1} AS {c[1]})' for i, c in enumerate(self.cols)) +
                  f' FROM (VALUES {vals}) v(' + ', '.join(f'c{i+1}' for i in range(len(self.cols))) + ')')
        lg = self.new_log()
        self.check_log(lg, {tb: (len(rows), 0, 0)}, 'import --append')
        self.record_versions(lg)
        self.compare(tb, what=f'after import --append (csv {path})')

    def op_oldcheck(self):
        tb = self.r.choice(self.tables)
        if not self.versions.get(tb):
            return
        v = self.r.choice(self.versions[tb])
        self.stats['oldchecks'] += 1
        self.compare(tb, udrtb=f'"{tb}@{v}"', reftb=f'v_{tb}_{v}', what=f'old version {v}')

    def op_fsck(self):
        self.stats['fsck'] += 1
        rc, out, err = self.udr('fsck')
        if rc != 0 or ' 0 problems' not in out + err:
            self.fail(f'FSCK: rc={rc} {out} {err}')

    def run(self, nsteps):
        self.setup()
        for i in range(nsteps):
            x = self.r.random()
            if x < 0.72:
                self.op_sql()
            elif x < 0.8:
                self.op_import()
            elif x < 0.84:
                self.op_optimize()
            elif x < 0.85:
                self.op_recreate()
            elif x < 0.87:
                self.op_append()
            elif x < 0.97:
                self.op_oldcheck()
            else:
                self.op_fsck()
        for tb in self.tables:
            for v in self.versions.get(tb, []):
                self.stats['oldchecks'] += 1
                self.compare(tb, udrtb=f'"{tb}@{v}"', reftb=f'v_{tb}_{v}', what=f'final old version {v}')
        self.op_fsck()


def main():
    seed0 = int(sys.argv[1])
    secs = float(sys.argv[2])
    big = len(sys.argv) > 3 and sys.argv[3] == 'big'
    t0 = time.time()
    seed = seed0
    tot = {}
    rounds = 0
    fails = 0
    while time.time() - t0 < secs:
        f = Fuzz(seed, big)
        try:
            f.run(40 if not big else 15)
            shutil.rmtree(f.store, ignore_errors=True)
            for n in f.notes:
                print(f'NOTE seed={seed}: {n}', flush=True)
        except Found as e:
            fails += 1
            print(f'=== FAIL seed={seed}: {e}', flush=True)
            with open(f'{BASE}/fail_{seed}.log', 'w') as fh:
                fh.write(f'seed {seed} cols {f.cols}\n{e}\n\nhistory:\n')
                for c in f.hist:
                    fh.write(json.dumps(c) + '\n')
        except Exception as e:
            fails += 1
            print(f'=== CRASH seed={seed}: {traceback.format_exc()}', flush=True)
            with open(f'{BASE}/fail_{seed}.log', 'w') as fh:
                fh.write(traceback.format_exc())
        for k, v in f.stats.items():
            tot[k] = tot.get(k, 0) + v
        rounds += 1
        seed += 1000
        print(f'seed {seed - 1000} done; rounds={rounds} fails={fails} tot={tot} t={time.time() - t0:.0f}s', flush=True)
    print('TOTAL', rounds, tot, 'fails', fails)


if __name__ == '__main__':
    main()
