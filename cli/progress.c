/*
 * cli/progress.c - the progress line of long puts and gets: bytes, rate and
 * ETA on stderr, redrawn in place with \r when stderr is a terminal.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_MS 100

struct cli_progress {
	char label[32];
	uint64_t total;     /* 0: unknown */
	int64_t start_ms;
	int64_t last_ms;    /* last drawing */
	size_t width;       /* length of the line on screen, to clear it */
	int fd;             /* poll mode: the descriptor whose offset is sampled */
	uint64_t fd_base;   /* its offset at the start */
	int has_thread;
	pthread_t thread;
	atomic_int stop;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void draw(cli_progress *p, uint64_t done, int64_t now)
{
	char line[160], d[32], t[32], r[32];
	double secs = (double)(now - p->start_ms) / 1000.0;
	double rate = secs > 0 ? (double)done / secs : 0;
	size_t n;

	cli_format_size(d, done);
	cli_format_size(r, (uint64_t)rate);
	if (p->total) {
		uint64_t left = done < p->total ? p->total - done : 0;
		unsigned eta = rate > 0 ? (unsigned)((double)left / rate + 0.5) : 0;

		cli_format_size(t, p->total);
		snprintf(line, sizeof(line), "%s  %s / %s  %3u%%  %s/s  ETA %u:%02u", p->label, d, t,
		         (unsigned)(done >= p->total ? 100 : done * 100 / p->total), r, eta / 60,
		         eta % 60);
	} else {
		snprintf(line, sizeof(line), "%s  %s  %s/s", p->label, d, r);
	}
	n = strlen(line);
	/* Pad over what a longer previous line left on screen. */
	fprintf(stderr, "\r%s%*s", line, p->width > n ? (int)(p->width - n) : 0, "");
	if (n > p->width)
		p->width = n;
	p->last_ms = now;
}

void cli_progress_update(cli_progress *p, uint64_t done)
{
	int64_t now;

	if (!p)
		return;
	now = now_ms();
	if (now - p->last_ms >= REDRAW_MS)
		draw(p, done, now);
}

void cli_progress_draw(cli_progress *p, uint64_t done)
{
	if (p)
		draw(p, done, now_ms());
}

void cli_progress_put_cb(uint64_t done, void *payload)
{
	cli_progress_update(payload, done);
}

/* Poll mode: the library writes to fd; its offset is the progress. */
static void *poll_thread(void *arg)
{
	cli_progress *p = arg;
	struct timespec ts = { 0, 20 * 1000000L };

	while (!atomic_load(&p->stop)) {
		off_t off = lseek(p->fd, 0, SEEK_CUR);

		if (off >= 0 && (uint64_t)off >= p->fd_base)
			cli_progress_update(p, (uint64_t)off - p->fd_base);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

cli_progress *cli_progress_start(const cli_ctx *ctx, const char *label, uint64_t total, int poll_fd)
{
	cli_progress *p;

	if (ctx->quiet || !isatty(STDERR_FILENO))
		return NULL;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL; /* the display is optional */
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->total = total;
	p->start_ms = p->last_ms = now_ms();
	p->fd = poll_fd;
	atomic_init(&p->stop, 0);
	if (poll_fd >= 0) {
		off_t off = lseek(poll_fd, 0, SEEK_CUR);

		if (off < 0) { /* a pipe: no offset to sample */
			free(p);
			return NULL;
		}
		p->fd_base = (uint64_t)off;
		if (pthread_create(&p->thread, NULL, poll_thread, p) != 0) {
			free(p);
			return NULL;
		}
		p->has_thread = 1;
	}
	return p;
}

void cli_progress_finish(cli_progress *p)
{
	if (!p)
		return;
	if (p->has_thread) {
		atomic_store(&p->stop, 1);
		pthread_join(p->thread, NULL);
	}
	if (p->width)
		fprintf(stderr, "\r%*s\r", (int)p->width, "");
	free(p);
}
