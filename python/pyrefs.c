/*
 * pyrefs.c - branches, tags, the reflog, merges and diffs on udr.Database
 * (include/udr/refs.h); the methods are added to the Database type at module
 * initialisation, like the SQL ones.  udr.MergeConflictError (a
 * ConflictError) carries the conflicts of a merge that wrote nothing.
 */
#include "udrpy.h"

#include <udr/refs.h>

PyObject *udrpy_MergeConflictError;

/* Run a call on the database's catalog without the GIL. */
#define WITH_CATALOG(self, cat, stmt)                                       \
	do {                                                                \
		udr_db *h_ = udrpy_db_enter((udrpy_db *)(self));            \
		if (h_ == NULL)                                             \
			return NULL;                                        \
		cat = udr_db_catalog(h_);                                   \
		Py_BEGIN_ALLOW_THREADS stmt; Py_END_ALLOW_THREADS           \
		udrpy_db_leave((udrpy_db *)(self));                         \
	} while (0)

static PyObject *refs_list(PyObject *self, int kind)
{
	udr_catalog *cat;
	udr_ref *refs = NULL;
	size_t n = 0;
	int rc;
	PyObject *out;
	WITH_CATALOG(self, cat, rc = udr_catalog_refs(&refs, &n, cat, kind));
	if (rc < 0)
		return udrpy_raise(rc);
	out = PyDict_New();
	for (size_t i = 0; out && i < n; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(refs[i].commit);
		if (v == NULL || PyDict_SetItemString(out, refs[i].name, v) < 0) {
			Py_XDECREF(v);
			Py_CLEAR(out);
			break;
		}
		Py_DECREF(v);
	}
	udr_ref_array_free(refs, n);
	return out;
}

PyDoc_STRVAR(branches_doc, "branches() -> dict\n\n"
                           "Every branch and its head commit: {'main': 12, 'dev': 14}.");
static PyObject *db_branches(PyObject *self, PyObject *unused)
{
	(void)unused;
	return refs_list(self, UDR_REF_BRANCH);
}

PyDoc_STRVAR(tags_doc, "tags() -> dict\n\nEvery tag and the commit it names.");
static PyObject *db_tags(PyObject *self, PyObject *unused)
{
	(void)unused;
	return refs_list(self, UDR_REF_TAG);
}

/* Optional str argument: NULL with an exception, or *out (NULL for None). */
int udrpy_opt_str(const char **out, PyObject *o, const char *what)
{
	*out = NULL;
	if (o == NULL || o == Py_None)
		return 0;
	return (*out = udrpy_cstr(o, what)) == NULL ? -1 : 0;
}

PyDoc_STRVAR(create_branch_doc,
             "create_branch(name, from_=None) -> int\n\n"
             "Create branch name at the commit from_ names (a branch, tag or\n"
             "'commit:N'; default main's head).  One small record whatever the data.\n"
             "Returns the record's commit number.  InvalidArgumentError for a bad\n"
             "name, NotFoundError for an unknown ref, ConflictError when it exists.");
static PyObject *db_create_branch(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "from_", NULL};
	const char *name, *from;
	PyObject *fobj = Py_None;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:create_branch", kwlist, &name, &fobj) ||
	    udrpy_opt_str(&from, fobj, "from_") < 0)
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_branch_create(&seq, cat, name, from));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(delete_branch_doc, "delete_branch(name) -> int\n\n"
                                "Delete a branch (never main); its commits stay.  The record's number.");
static PyObject *db_delete_branch(PyObject *self, PyObject *args)
{
	const char *name;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTuple(args, "s:delete_branch", &name))
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_branch_delete(&seq, cat, name));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(reset_branch_doc, "reset_branch(name, to) -> int\n\n"
                               "Move a branch to the commit `to` names (the reflog keeps the old head).");
static PyObject *db_reset_branch(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "to", NULL};
	const char *name, *to;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss:reset_branch", kwlist, &name, &to))
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_branch_reset(&seq, cat, name, to));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(tag_doc, "tag(name, ref=None) -> int\n\n"
                      "Tag the commit ref names (default main's head); tags are immutable\n"
                      "(ConflictError when it exists).  The record's number.");
static PyObject *db_tag(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "ref", NULL};
	const char *name, *ref;
	PyObject *robj = Py_None;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|O:tag", kwlist, &name, &robj) || udrpy_opt_str(&ref, robj, "ref") < 0)
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_tag_create(&seq, cat, name, ref));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(delete_tag_doc, "delete_tag(name) -> int\n\nDelete a tag.  The record's number.");
static PyObject *db_delete_tag(PyObject *self, PyObject *args)
{
	const char *name;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTuple(args, "s:delete_tag", &name))
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_tag_delete(&seq, cat, name));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(resolve_doc, "resolve(ref) -> int\n\nThe commit a ref (branch, tag, 'commit:N') names.");
static PyObject *db_resolve(PyObject *self, PyObject *args)
{
	const char *ref;
	udr_catalog *cat;
	uint64_t seq = 0;
	int rc;
	if (!PyArg_ParseTuple(args, "s:resolve", &ref))
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_catalog_resolve(&seq, cat, ref));
	return rc < 0 ? udrpy_raise(rc) : PyLong_FromUnsignedLongLong(seq);
}

PyDoc_STRVAR(reflog_doc, "reflog(name='main', limit=0) -> list of dict\n\n"
                         "The moves of a branch, newest first: seq, op, head, old, time_ms,\n"
                         "author, message.");
static PyObject *db_reflog(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "limit", NULL};
	const char *name = "main";
	Py_ssize_t limit = 0;
	udr_reflog_entry *e = NULL;
	size_t n = 0;
	udr_catalog *cat;
	PyObject *out;
	int rc;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|sn:reflog", kwlist, &name, &limit))
		return NULL;
	if (limit < 0)
		return udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "limit must be >= 0");
	WITH_CATALOG(self, cat, rc = udr_branch_reflog(&e, &n, cat, name, (size_t)limit));
	if (rc < 0)
		return udrpy_raise(rc);
	out = PyList_New(0);
	for (size_t i = 0; out && i < n; i++) {
		PyObject *d = Py_BuildValue("{s:K,s:s,s:K,s:K,s:L,s:s,s:z}", "seq", (unsigned long long)e[i].seq, "op",
		                            e[i].op, "head", (unsigned long long)e[i].head, "old",
		                            (unsigned long long)e[i].old, "time_ms", (long long)e[i].time_ms, "author",
		                            e[i].author, "message", e[i].message);
		if (d == NULL || PyList_Append(out, d) < 0)
			Py_CLEAR(out);
		Py_XDECREF(d);
	}
	udr_reflog_free(e, n);
	return out;
}

int udrpy_strategy_of(int *out, PyObject *o, const char *what)
{
	const char *s;
	if (o == Py_None) {
		*out = UDR_MERGE_FAIL;
		return 0;
	}
	if ((s = udrpy_cstr(o, what)) == NULL)
		return -1;
	if (strcmp(s, "ours") == 0)
		*out = UDR_MERGE_OURS;
	else if (strcmp(s, "theirs") == 0)
		*out = UDR_MERGE_THEIRS;
	else {
		udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "%s must be 'ours' or 'theirs', not '%s'", what, s);
		return -1;
	}
	return 0;
}

static PyObject *merge_dict(const udr_merge_result *m, int dry_run, PyObject *rows)
{
	PyObject *tables = PyList_New(0), *conflicts = PyList_New(0), *d = NULL;
	if (tables == NULL || conflicts == NULL)
		goto fail;
	for (size_t i = 0; i < m->ntables; i++) {
		const udr_merge_table *t = &m->tables[i];
		PyObject *x = Py_BuildValue("{s:s,s:K,s:K,s:K,s:K,s:O}", "table", t->table, "base",
		                            (unsigned long long)t->base, "ours", (unsigned long long)t->ours, "theirs",
		                            (unsigned long long)t->theirs, "result", (unsigned long long)t->result,
		                            "conflict", t->conflict ? Py_True : Py_False);
		if (x && t->rowlevel) {
			/* merged row by row: what the rows did */
			PyObject *c = Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "ours", (unsigned long long)t->rows_ours, "theirs",
			                            (unsigned long long)t->rows_theirs, "same", (unsigned long long)t->rows_same,
			                            "cells", (unsigned long long)t->rows_cells, "conflict",
			                            (unsigned long long)t->rows_conflict);
			if (c == NULL || PyDict_SetItemString(x, "counts", c) < 0)
				Py_CLEAR(x);
			Py_XDECREF(c);
		}
		if (x && t->note) {
			PyObject *n = PyUnicode_FromString(t->note);
			if (n == NULL || PyDict_SetItemString(x, "note", n) < 0)
				Py_CLEAR(x);
			Py_XDECREF(n);
		}
		if (x && t->conflict && rows) {
			/* the recorded conflicting rows of this table */
			PyObject *r = PyDict_GetItemString(rows, t->table), *e = NULL;
			if (r == NULL)
				r = e = PyList_New(0);
			if (r == NULL || PyDict_SetItemString(x, "rows", r) < 0)
				Py_CLEAR(x);
			Py_XDECREF(e);
		}
		if (x == NULL || PyList_Append(t->conflict ? conflicts : tables, x) < 0) {
			Py_XDECREF(x);
			goto fail;
		}
		Py_DECREF(x);
	}
	d = Py_BuildValue("{s:K,s:K,s:K,s:K,s:O,s:O,s:O,s:O,s:O}", "commit", (unsigned long long)m->seq, "base",
	                  (unsigned long long)m->base, "ours", (unsigned long long)m->ours, "theirs",
	                  (unsigned long long)m->theirs, "up_to_date", m->up_to_date ? Py_True : Py_False,
	                  "fast_forward", m->fast_forward ? Py_True : Py_False, "dry_run", dry_run ? Py_True : Py_False,
	                  "tables", tables, "conflicts", conflicts);
fail:
	Py_XDECREF(tables);
	Py_XDECREF(conflicts);
	return d;
}

int udrpy_merge_tables(udr_merge_options *mo, const char ***names_out, int **strat_out, PyObject *tobj)
{
	const char **names = NULL;
	int *strat = NULL;
	*names_out = NULL;
	*strat_out = NULL;
	if (tobj != Py_None) {
		PyObject *key, *val;
		Py_ssize_t pos = 0, i = 0, n;
		if (!PyDict_Check(tobj)) {
			udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL,
			                "tables must be a dict of table name -> 'ours' or 'theirs'");
			return -1;
		}
		n = PyDict_Size(tobj);
		names = PyMem_Calloc((size_t)n + 1, sizeof(*names));
		strat = PyMem_Calloc((size_t)n + 1, sizeof(*strat));
		*names_out = names;
		*strat_out = strat;
		if (names == NULL || strat == NULL) {
			PyErr_NoMemory();
			return -1;
		}
		while (PyDict_Next(tobj, &pos, &key, &val)) {
			if ((names[i] = udrpy_cstr(key, "tables")) == NULL || udrpy_strategy_of(&strat[i], val, "a table's strategy") < 0)
				return -1;
			if (strat[i] == UDR_MERGE_FAIL) {
				udrpy_raise_msg(udrpy_InvalidArgumentError, UDR_EINVAL, "a table's strategy must be 'ours' or 'theirs'");
				return -1;
			}
			i++;
		}
		mo->tables = names;
		mo->table_strategies = strat;
		mo->ntables = (size_t)n;
	}
	return 0;
}

PyDoc_STRVAR(merge_doc,
             "merge(source, into='main', strategy=None, tables=None, dry_run=False, message=None) -> dict\n\n"
             "Merge the commit source names into branch into: nothing when it is\n"
             "already there, a fast-forward when into has nothing of its own, else\n"
             "three-way at table level (a table changed on one side takes that side;\n"
             "changed on both: a conflict unless strategy, or tables={'t': 'ours'},\n"
             "picks a side).  Returns {commit, base, ours, theirs, up_to_date,\n"
             "fast_forward, dry_run, tables, conflicts}.  With conflicts nothing is\n"
             "written and udr.MergeConflictError is raised; its .conflicts lists\n"
             "them ({table, base, ours, theirs}) and .result is the dict.");
static PyObject *db_merge(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"source", "into", "strategy", "tables", "dry_run", "message", NULL};
	const char *source, *into = NULL, *message = NULL;
	PyObject *iobj = Py_None, *sobj = Py_None, *tobj = Py_None, *mobj = Py_None, *res = NULL;
	int dry_run = 0, rc;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	const char **names = NULL;
	int *strat = NULL;
	udr_catalog *cat;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OOOpO:merge", kwlist, &source, &iobj, &sobj, &tobj, &dry_run,
	                                 &mobj) ||
	    udrpy_opt_str(&into, iobj, "into") < 0 || udrpy_opt_str(&message, mobj, "message") < 0 ||
	    udrpy_strategy_of(&mo.strategy, sobj, "strategy") < 0)
		return NULL;
	if (udrpy_merge_tables(&mo, &names, &strat, tobj) < 0)
		goto out;
	mo.dry_run = dry_run;
	mo.message = message;
	WITH_CATALOG(self, cat, rc = udr_merge(&m, cat, source, into, &mo));
	res = udrpy_merge_finish(m, rc, dry_run, NULL, NULL);
	goto out;
out:
	udr_merge_result_free(m);
	PyMem_Free(names);
	PyMem_Free(strat);
	return res;
}

PyObject *udrpy_merge_finish(const udr_merge_result *m, int rc, int dry_run, PyObject *rows, const char *msg)
{
	PyObject *res = NULL;
	if (!msg)
		msg = udr_error_last()->message;
	if (m)
		res = merge_dict(m, dry_run, rows);
	if (rc < 0 && m && m->nconflicts > 0 && res) {
		/* the conflicts ride on the exception */
		PyObject *exc = PyObject_CallFunction(udrpy_MergeConflictError, "N",
		                                      PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "backslashreplace"));
		PyObject *code = PyLong_FromLong(UDR_ECONFLICT);
		if (exc && code && PyObject_SetAttrString(exc, "conflicts", PyDict_GetItemString(res, "conflicts")) == 0 &&
		    PyObject_SetAttrString(exc, "result", res) == 0 && PyObject_SetAttrString(exc, "code", code) == 0)
			PyErr_SetObject(udrpy_MergeConflictError, exc);
		Py_XDECREF(exc);
		Py_XDECREF(code);
		Py_CLEAR(res);
	} else if (rc < 0) {
		udrpy_raise(rc);
		Py_CLEAR(res);
	}
	return res;
}

static PyObject *pick_call(PyObject *args, PyObject *kw, PyObject *self, int revert)
{
	static char *kwlist[] = {"commit", "branch", "strategy", "dry_run", "message", NULL};
	const char *branch = NULL, *message = NULL, *commit;
	PyObject *cobj, *bobj = Py_None, *sobj = Py_None, *mobj = Py_None, *res;
	char ref[64];
	int dry_run = 0, rc;
	udr_merge_options mo = UDR_MERGE_OPTIONS_INIT;
	udr_merge_result *m = NULL;
	udr_catalog *cat;
	if (!PyArg_ParseTupleAndKeywords(args, kw, revert ? "O|OOpO:revert" : "O|OOpO:cherry_pick", kwlist, &cobj,
	                                 &bobj, &sobj, &dry_run, &mobj) ||
	    udrpy_opt_str(&branch, bobj, "branch") < 0 || udrpy_opt_str(&message, mobj, "message") < 0 ||
	    udrpy_strategy_of(&mo.strategy, sobj, "strategy") < 0)
		return NULL;
	if (PyLong_Check(cobj)) { /* a commit number */
		unsigned long long n = PyLong_AsUnsignedLongLong(cobj);
		if (PyErr_Occurred())
			return NULL;
		snprintf(ref, sizeof(ref), "commit:%llu", n);
		commit = ref;
	} else if ((commit = udrpy_cstr(cobj, "commit")) == NULL) {
		return NULL;
	}
	mo.dry_run = dry_run;
	mo.message = message;
	WITH_CATALOG(self, cat, rc = revert ? udr_revert(&m, cat, commit, branch, &mo)
	                                    : udr_cherry_pick(&m, cat, commit, branch, &mo));
	res = udrpy_merge_finish(m, rc, dry_run, NULL, NULL);
	udr_merge_result_free(m);
	return res;
}

PyDoc_STRVAR(cherry_pick_doc,
             "cherry_pick(commit, branch='main', strategy=None, dry_run=False, message=None) -> dict\n\n"
             "Apply the table changes of commit (a number or a ref) to branch as\n"
             "one commit: each table the commit changed gets a new version with the\n"
             "content of the commit's version, when branch still has the version\n"
             "the commit started from.  Returns {commit, base, ours, theirs,\n"
             "up_to_date, fast_forward, dry_run, tables, conflicts}: theirs is the\n"
             "commit, each table {table, base (the version branch must have), ours,\n"
             "theirs (the content taken), result (the new version)}.  With\n"
             "conflicts (unless strategy 'ours' or 'theirs') nothing is written and\n"
             "udr.MergeConflictError is raised, carrying them.");
static PyObject *db_cherry_pick(PyObject *self, PyObject *args, PyObject *kw)
{
	return pick_call(args, kw, self, 0);
}

PyDoc_STRVAR(revert_doc,
             "revert(commit, branch='main', strategy=None, dry_run=False, message=None) -> dict\n\n"
             "Undo commit on branch as one new commit: each table the commit changed\n"
             "gets a new version with the content of its version before the commit,\n"
             "when branch still has the commit's version.  As cherry_pick otherwise.");
static PyObject *db_revert(PyObject *self, PyObject *args, PyObject *kw)
{
	return pick_call(args, kw, self, 1);
}

PyDoc_STRVAR(diff_doc, "diff(a, b) -> list of dict\n\n"
                       "The tables whose version differs between the commits refs a and b\n"
                       "name: {table, change ('added', 'removed', 'changed'), old, new}.");
static PyObject *db_diff(PyObject *self, PyObject *args)
{
	const char *ra, *rb;
	udr_table_diff *d = NULL;
	size_t n = 0;
	udr_catalog *cat;
	PyObject *out;
	int rc;
	if (!PyArg_ParseTuple(args, "ss:diff", &ra, &rb))
		return NULL;
	WITH_CATALOG(self, cat, rc = udr_catalog_diff(&d, &n, cat, ra, rb));
	if (rc < 0)
		return udrpy_raise(rc);
	out = PyList_New(0);
	for (size_t i = 0; out && i < n; i++) {
		const char *what = d[i].old_version == 0 ? "added" : d[i].new_version == 0 ? "removed" : "changed";
		PyObject *x = Py_BuildValue("{s:s,s:s,s:K,s:K}", "table", d[i].table, "change", what, "old",
		                            (unsigned long long)d[i].old_version, "new", (unsigned long long)d[i].new_version);
		if (x == NULL || PyList_Append(out, x) < 0)
			Py_CLEAR(out);
		Py_XDECREF(x);
	}
	udr_table_diff_free(d, n);
	return out;
}

PyMethodDef udrpy_refs_methods[] = {
	{"branches", (PyCFunction)db_branches, METH_NOARGS, branches_doc},
	{"tags", (PyCFunction)db_tags, METH_NOARGS, tags_doc},
	{"create_branch", (PyCFunction)(void (*)(void))db_create_branch, METH_VARARGS | METH_KEYWORDS,
	 create_branch_doc},
	{"delete_branch", (PyCFunction)db_delete_branch, METH_VARARGS, delete_branch_doc},
	{"reset_branch", (PyCFunction)(void (*)(void))db_reset_branch, METH_VARARGS | METH_KEYWORDS, reset_branch_doc},
	{"tag", (PyCFunction)(void (*)(void))db_tag, METH_VARARGS | METH_KEYWORDS, tag_doc},
	{"delete_tag", (PyCFunction)db_delete_tag, METH_VARARGS, delete_tag_doc},
	{"resolve", (PyCFunction)db_resolve, METH_VARARGS, resolve_doc},
	{"reflog", (PyCFunction)(void (*)(void))db_reflog, METH_VARARGS | METH_KEYWORDS, reflog_doc},
	{"merge", (PyCFunction)(void (*)(void))db_merge, METH_VARARGS | METH_KEYWORDS, merge_doc},
	{"diff", (PyCFunction)db_diff, METH_VARARGS, diff_doc},
	{"cherry_pick", (PyCFunction)(void (*)(void))db_cherry_pick, METH_VARARGS | METH_KEYWORDS, cherry_pick_doc},
	{"revert", (PyCFunction)(void (*)(void))db_revert, METH_VARARGS | METH_KEYWORDS, revert_doc},
	{NULL, NULL, 0, NULL}};
