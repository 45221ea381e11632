import os as _os
ROOT = _os.environ.get('UDR_SOURCE_DIR', _os.path.dirname(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))))
BASE = _os.environ.get('UDR_FUZZ_DIR', '/tmp/udr-sqlfuzz')
_os.makedirs(BASE, exist_ok=True)
import os
import ctypes
lib = ctypes.CDLL(os.environ.get("UDR_DUCKDB_LIBRARY", os.path.join(ROOT, ".deps", "duckdb", "lib", "libduckdb.so")))
class Res(ctypes.Structure):
    _fields_ = [("cc", ctypes.c_uint64), ("rc", ctypes.c_uint64), ("rch", ctypes.c_uint64),
                ("cols", ctypes.c_void_p), ("err", ctypes.c_char_p), ("internal", ctypes.c_void_p), ("pad", ctypes.c_char*64)]
lib.duckdb_open.argtypes=[ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.duckdb_connect.argtypes=[ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.duckdb_query.argtypes=[ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Res)]
lib.duckdb_result_error.argtypes=[ctypes.POINTER(Res)]; lib.duckdb_result_error.restype=ctypes.c_char_p
lib.duckdb_row_count.argtypes=[ctypes.POINTER(Res)]; lib.duckdb_row_count.restype=ctypes.c_uint64
lib.duckdb_column_count.argtypes=[ctypes.POINTER(Res)]; lib.duckdb_column_count.restype=ctypes.c_uint64
lib.duckdb_value_varchar.argtypes=[ctypes.POINTER(Res), ctypes.c_uint64, ctypes.c_uint64]; lib.duckdb_value_varchar.restype=ctypes.c_void_p
lib.duckdb_value_is_null.argtypes=[ctypes.POINTER(Res), ctypes.c_uint64, ctypes.c_uint64]; lib.duckdb_value_is_null.restype=ctypes.c_bool
lib.duckdb_free.argtypes=[ctypes.c_void_p]
lib.duckdb_destroy_result.argtypes=[ctypes.POINTER(Res)]
lib.duckdb_library_version.restype=ctypes.c_char_p

class DuckErr(Exception): pass
class DB:
    def __init__(self):
        self.db=ctypes.c_void_p(); self.con=ctypes.c_void_p()
        assert lib.duckdb_open(None, ctypes.byref(self.db))==0
        assert lib.duckdb_connect(self.db, ctypes.byref(self.con))==0
    def q(self, sql):
        r=Res()
        st=lib.duckdb_query(self.con, sql.encode(), ctypes.byref(r))
        if st!=0:
            e=lib.duckdb_result_error(ctypes.byref(r)); e=e.decode() if e else "?"
            lib.duckdb_destroy_result(ctypes.byref(r)); raise DuckErr(e)
        nr=lib.duckdb_row_count(ctypes.byref(r)); nc=lib.duckdb_column_count(ctypes.byref(r))
        rows=[]
        for i in range(nr):
            row=[]
            for j in range(nc):
                if lib.duckdb_value_is_null(ctypes.byref(r), j, i): row.append(None)
                else:
                    p=lib.duckdb_value_varchar(ctypes.byref(r), j, i)
                    row.append(ctypes.string_at(p).decode()); lib.duckdb_free(p)
            rows.append(tuple(row))
        lib.duckdb_destroy_result(ctypes.byref(r))
        return rows
if __name__=="__main__":
    print(lib.duckdb_library_version())
    d=DB(); d.q("create table t(a int, s varchar)"); print(d.q("insert into t values (1,'x'),(2,NULL)")); print(d.q("select * from t"))
    try: d.q("select * from nope")
    except DuckErr as e: print("err", e)
