/*
 * duck.c - DuckDB loaded when a session runs its first statement
 * (udr__q_duck), not at process start: see duck.h.  Commands that never run
 * SQL (put, get, log, show, commit, merge without row merges ...) then never
 * pay for relocating libduckdb.so, which was most of their start-up time.
 * The last resort, dlopen by bare name, also finds libraries registered in
 * ld.so.cache (which the search path listing leaves out).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr1, dlinfo */
#endif
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UDR__DUCK_NO_REDIRECT
#include "query/duck.h"
#include "util/util.h"

udr__duck_api udr__duck;

#define DUCK_SONAME "libduckdb.so"

static pthread_once_t duck_once = PTHREAD_ONCE_INIT;
static char duck_error[8192]; /* empty when loaded */

/*
 * dlopen of path, after checking that the file holds every byte its
 * loadable segments map: the loader maps a truncated library without
 * checking and the process dies of SIGBUS on the first page past its end
 * (a damaged or half-copied install).  NULL with *why set (when empty) for
 * a truncated file; what is not a 64-bit ELF file is left to dlopen.
 */
static void *duck_dlopen(const char *path, char *why, size_t whysize)
{
	Elf64_Ehdr eh;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	memset(&st, 0, sizeof(st));
	if (fd >= 0) {
		uint64_t need = 0;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
		    memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
		    eh.e_phentsize == sizeof(Elf64_Phdr)) {
			for (unsigned k = 0; k < eh.e_phnum; k++) {
				Elf64_Phdr ph;
				if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)k * sizeof(ph))) !=
				    (ssize_t)sizeof(ph)) {
					need = UINT64_MAX;
					break;
				}
				if (ph.p_type == PT_LOAD && ph.p_offset + ph.p_filesz > need)
					need = ph.p_offset + ph.p_filesz;
			}
		}
		close(fd);
		if (need > (uint64_t)st.st_size) {
			if (!*why && need == UINT64_MAX)
				snprintf(why, whysize, "%.1024s: truncated (%lld bytes, its program headers cut off)", path,
				         (long long)st.st_size);
			else if (!*why)
				snprintf(why, whysize, "%.1024s: truncated (%lld bytes, its segments need %llu)", path,
				         (long long)st.st_size, (unsigned long long)need);
			return NULL;
		}
	}
	return dlopen(path, RTLD_LAZY | RTLD_LOCAL);
}

/*
 * The library as the dynamic loader would find it for the object that holds
 * this code (the udr executable, libudr_query.so, the Python extension):
 * each directory of that object's search path (its runpath with $ORIGIN
 * expanded, LD_LIBRARY_PATH, the system's directories) in order.  Plain
 * dlopen(DUCK_SONAME) does the same only when it sees who called it; under
 * the sanitizers dlopen is intercepted and the caller becomes the sanitizer
 * runtime, whose runpath is empty.  NULL when not found there.
 */
static void *duck_open_near_self(char *path, size_t size, char *why, size_t whysize)
{
	Dl_info info;
	struct link_map *self = NULL, *main_map = NULL;
	Dl_serinfo probe, *si = NULL;
	void *obj, *h = NULL;
	unsigned i;
	if (!dladdr1((void *)&udr__duck_load, &info, (void **)&self, RTLD_DL_LINKMAP) || !self)
		return NULL;
	obj = dlopen(NULL, RTLD_LAZY);
	if (obj && dlinfo(obj, RTLD_DI_LINKMAP, &main_map) == 0 && main_map != self) {
		dlclose(obj);
		obj = self->l_name && *self->l_name ? dlopen(self->l_name, RTLD_LAZY | RTLD_NOLOAD) : NULL;
	}
	if (!obj)
		return NULL;
	if (dlinfo(obj, RTLD_DI_SERINFOSIZE, &probe) == 0 && (si = malloc(probe.dls_size)) != NULL &&
	    dlinfo(obj, RTLD_DI_SERINFOSIZE, si) == 0 && dlinfo(obj, RTLD_DI_SERINFO, si) == 0) {
		for (i = 0; i < si->dls_cnt && !h; i++) {
			const char *dir = si->dls_serpath[i].dls_name;
			/* only absolute directories: an empty entry (a stray ':' in
			 * LD_LIBRARY_PATH) would mean the working directory */
			if (dir[0] != '/' || (size_t)snprintf(path, size, "%s/%s", dir, DUCK_SONAME) >= size)
				continue;
			/* RTLD_LOCAL: DuckDB's symbols stay out of the global namespace. */
			if (!(h = duck_dlopen(path, why, whysize)) && !*why && access(path, F_OK) == 0) {
				/* there but not loadable: the reason to report */
				const char *e = dlerror();
				snprintf(why, whysize, "%.1024s", e ? e : path);
			}
		}
	}
	free(si);
	dlclose(obj);
	return h;
}

static void duck_load_once(void)
{
	const char *env = secure_getenv("UDR_DUCKDB_LIBRARY");
	const char *path, *missing = NULL;
	char found[4096], why[2048] = "";
	udr__duck_api api;
	void *h = NULL, *sym;
	if (env && *env) {
		path = env;
		h = duck_dlopen(path, why, sizeof(why));
	} else {
		env = NULL;
		path = found;
		/* by bare name (ld.so.cache) only when the search found no file:
		 * one it found unloadable would be found again, and its reason is
		 * the one to give */
		if (!(h = duck_open_near_self(found, sizeof(found), why, sizeof(why))) && !*why) {
			path = DUCK_SONAME;
			h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
		}
	}
	if (!h) {
		const char *e = dlerror();
		snprintf(duck_error, sizeof(duck_error), "SQL needs DuckDB, which cannot be loaded (%s)%s",
		         *why ? why : e ? e : path, env ? "" : "; set UDR_DUCKDB_LIBRARY to its path");
		return;
	}
	memset(&api, 0, sizeof(api));
	/* dlsym's void * becomes a function pointer by copying its bytes, the
	 * conversion POSIX guarantees and ISO C leaves out. */
#define UDR__DUCK_RESOLVE(name)                                    \
	if (!missing) {                                            \
		if ((sym = dlsym(h, #name)) == NULL)               \
			missing = #name;                           \
		else                                               \
			memcpy(&api.name, &sym, sizeof(api.name)); \
	}
	UDR__DUCK_API(UDR__DUCK_RESOLVE)
#undef UDR__DUCK_RESOLVE
	if (missing) {
		snprintf(duck_error, sizeof(duck_error),
		         "the DuckDB library %s has no %s (UDR needs DuckDB 1.4's C API)", path, missing);
		dlclose(h);
		return;
	}
	udr__duck = api;
}

int udr__duck_load(void)
{
	if (pthread_once(&duck_once, duck_load_once) != 0)
		return udr__error_set(UDR_ERROR, "cannot load DuckDB: pthread_once failed");
	if (duck_error[0])
		return udr__error_set(UDR_ERROR, "%s", duck_error);
	return 0;
}
