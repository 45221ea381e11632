/*
 * cli/man.c - the manual pages, generated from the help texts of the command
 * table (main.c): udr.1 from `udr --help`, udr-COMMAND.1 from
 * `udr COMMAND --help`.  The help texts are laid out for a terminal, so the
 * pages keep that layout (no-fill blocks) instead of guessing at structure;
 * what the pages say is exactly what --help says.
 *
 * The build runs the hidden command `udr __man-pages DIR` and installs DIR
 * under share/man/man1.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The next line of *s (without its newline) as [*line, *line + *len);
 * advances *s.  Returns 0 at the end of the text. */
static int next_line(const char **s, const char **line, size_t *len)
{
	const char *nl;

	if (**s == '\0')
		return 0;
	nl = strchr(*s, '\n');
	*line = *s;
	*len = nl ? (size_t)(nl - *s) : strlen(*s);
	*s = nl ? nl + 1 : *s + *len;
	return 1;
}

/* Text for roff: backslashes and dashes escaped, a leading control
 * character neutralised. */
static void roff_text(FILE *f, const char *s, size_t n)
{
	size_t i;

	if (n > 0 && (s[0] == '.' || s[0] == '\''))
		fputs("\\&", f);
	for (i = 0; i < n; i++) {
		if (s[i] == '\\')
			fputs("\\e", f);
		else if (s[i] == '-')
			fputs("\\-", f);
		else
			fputc(s[i], f);
	}
}

/* The lines of [text, end) (end NULL: up to the end of text) as a no-fill
 * block (an empty line becomes .sp); leading and trailing empty lines are
 * dropped. */
static void roff_block(FILE *f, const char *text, const char *end)
{
	const char *line;
	size_t len;
	int blanks = 0, started = 0;

	fputs(".nf\n", f);
	while ((!end || text < end) && next_line(&text, &line, &len)) {
		if (len == 0) {
			blanks += started;
			continue;
		}
		for (; blanks > 0; blanks--)
			fputs(".sp\n", f);
		started = 1;
		roff_text(f, line, len);
		fputc('\n', f);
	}
	fputs(".fi\n", f);
}

/* The usage block at the start of a help text (up to its first empty line),
 * without the "usage: " prefix and the matching indentation; returns the
 * text after it. */
static const char *roff_synopsis(FILE *f, const char *usage)
{
	const char *line;
	size_t len, skip = strlen("usage: ");

	fputs(".SH SYNOPSIS\n.nf\n", f);
	while (next_line(&usage, &line, &len) && len > 0) {
		if (len >= skip && (strncmp(line, "usage: ", skip) == 0 ||
		                    strspn(line, " ") >= skip)) {
			line += skip;
			len -= skip;
		}
		roff_text(f, line, len);
		fputc('\n', f);
	}
	fputs(".fi\n", f);
	return usage;
}

static void roff_header(FILE *f, const char *page)
{
	fputs(".TH ", f);
	for (; *page; page++) {
		if (*page == '-')
			fputs("\\-", f);
		else
			fputc(toupper((unsigned char)*page), f);
	}
	fprintf(f, " 1 \"\" \"udr %s\" \"User Commands\"\n", udr_libversion());
}

/* The exit codes: the part of tail after its "Exit status:" line. */
static void roff_exit_status(FILE *f, const char *tail)
{
	const char *p = strstr(tail, "Exit status:\n");

	if (!p)
		return;
	fputs(".SH \"EXIT STATUS\"\n", f);
	roff_block(f, p + strlen("Exit status:\n"), NULL);
}

static void write_main_page(FILE *f, const char *usage, const char *tail,
                            const cli_command *cmds, size_t n)
{
	const char *rest, *line, *end;
	size_t len, i;

	roff_header(f, "udr");
	fputs(".SH NAME\nudr \\- ", f);
	rest = usage;
	while (next_line(&rest, &line, &len) && len > 0)
		;
	/* the first line of the description, as a phrase */
	if (next_line(&rest, &line, &len) && len > 1) {
		fputc(tolower((unsigned char)line[0]), f);
		roff_text(f, line + 1, len - 1 - (line[len - 1] == '.'));
	}
	fputc('\n', f);
	rest = roff_synopsis(f, usage);
	/* the description and the global options, without the "Commands:"
	 * heading the command list follows */
	end = strstr(rest, "Commands:\n");
	fputs(".SH DESCRIPTION\n", f);
	roff_block(f, rest, end);
	fputs(".SH COMMANDS\n", f);
	for (i = 0; i < n; i++) {
		fputs(".TP\n.BR udr\\-", f);
		roff_text(f, cmds[i].name, strlen(cmds[i].name));
		fputs(" (1)\n", f);
		roff_text(f, cmds[i].summary, strlen(cmds[i].summary));
		fputc('\n', f);
	}
	roff_exit_status(f, tail);
	fputs(".SH \"SEE ALSO\"\n", f);
	for (i = 0; i < n; i++) {
		fputs(".BR udr\\-", f);
		roff_text(f, cmds[i].name, strlen(cmds[i].name));
		fputs(i + 1 < n ? " (1),\n" : " (1)\n", f);
	}
}

static void write_command_page(FILE *f, const cli_command *cmd, const char *tail)
{
	const char *rest;
	char page[64];

	snprintf(page, sizeof(page), "udr-%s", cmd->name);
	roff_header(f, page);
	fputs(".SH NAME\n", f);
	roff_text(f, page, strlen(page));
	fputs(" \\- ", f);
	roff_text(f, cmd->summary, strlen(cmd->summary));
	fputc('\n', f);
	rest = roff_synopsis(f, cmd->usage);
	fputs(".SH DESCRIPTION\n", f);
	roff_block(f, rest, NULL);
	roff_exit_status(f, tail);
	fputs(".SH \"SEE ALSO\"\n.BR udr (1)\n"
	      "for the global options (\\-\\-store, \\-\\-quiet) and the other commands.\n", f);
}

/* Write one page to DIR/NAME.1; 0 or CLI_EXIT_IO (reported). */
static int write_page(const char *dir, const char *name, const char *usage, const char *tail,
                      const cli_command *cmds, size_t n, const cli_command *cmd)
{
	char path[4096];
	FILE *f;
	int bad;

	if (snprintf(path, sizeof(path), "%s/%s.1", dir, name) >= (int)sizeof(path)) {
		cli_errorf("path too long: %s", dir);
		return CLI_EXIT_USAGE;
	}
	f = fopen(path, "w");
	if (!f) {
		cli_errorf("cannot create %s", path);
		return CLI_EXIT_IO;
	}
	if (cmd)
		write_command_page(f, cmd, tail);
	else
		write_main_page(f, usage, tail, cmds, n);
	bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		cli_errorf("cannot write %s", path);
		return CLI_EXIT_IO;
	}
	return CLI_EXIT_OK;
}

int cli_man_pages(const char *dir, const char *usage, const char *tail,
                  const cli_command *cmds, size_t n)
{
	char name[64];
	size_t i;
	int rc = write_page(dir, "udr", usage, tail, cmds, n, NULL);

	for (i = 0; rc == CLI_EXIT_OK && i < n; i++) {
		snprintf(name, sizeof(name), "udr-%s", cmds[i].name);
		rc = write_page(dir, name, usage, tail, cmds, n, &cmds[i]);
	}
	return rc;
}
