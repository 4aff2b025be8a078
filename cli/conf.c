// SPDX-License-Identifier: MIT
/*
 * Configuration files: the options of a command line, one per line, for
 * the systemd units (aioloop-serve@NAME reads /etc/aioloop/NAME.conf).
 *
 *     # comment
 *     socket = /run/aioloop/vm1.sock
 *     export = data=/srv/data.img,ro
 *     read-only = yes
 *     file = /var/lib/aioloop/vm1.img
 *
 * A key is a long option's name; its value is what the option takes on the
 * command line, blanks around it and around '=' ignored; an option without
 * a value (read-only, fork) takes yes/no, true/false, on/off or 1/0; a
 * repeatable option is repeated; the key "file" is the command's FILE.
 * The file becomes command-line arguments ("--socket=/run/..."), which the
 * subcommand's own parse function then reads: a value means in a file what
 * it means on the command line, and is refused with the same message.
 *
 * cli_conf_args() is pure (the text is given, nothing read), so unit tests
 * check it; cli_config_expand() reads the file named by --config.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define CONF_MAX_BYTES (1 << 20)

void cli_argv_free(struct cli_argv *av)
{
	for (int i = 0; i < av->argc; i++)
		if (av->owned[i])
			free(av->argv[i]);
	free(av->argv);
	free(av->owned);
	av->argv = NULL;
	av->owned = NULL;
	av->argc = 0;
}

/* Append s (owned: freed by cli_argv_free) keeping argv NULL-terminated.
 * Returns 0 or -ENOMEM (s freed if owned). */
static int argv_push(struct cli_argv *av, char *s, bool owned)
{
	char **a = realloc(av->argv, sizeof(*a) * (size_t)(av->argc + 2));
	bool *o;

	if (a)
		av->argv = a;
	o = a ? realloc(av->owned, sizeof(*o) * (size_t)(av->argc + 2)) : NULL;
	if (!o) {
		if (owned)
			free(s);
		return -ENOMEM;
	}
	av->owned = o;
	av->argv[av->argc] = s;
	av->owned[av->argc] = owned;
	av->argc++;
	av->argv[av->argc] = NULL;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* yes/no and friends: 1, 0, or -1 for anything else. */
static int conf_bool(const char *v)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

int cli_conf_args(const char *text, const char *path, const struct option *opts,
		  struct cli_argv *av, struct cli_err *err)
{
	char *copy = strdup(text), *line, *save = NULL, *file = NULL;
	unsigned int lineno = 0;
	int ret = -ENOMEM;

	err->msg[0] = '\0';
	if (!copy)
		goto out;
	/* strtok_r would skip empty lines and miscount: cut by hand. */
	for (line = copy; line; line = save) {
		const struct option *o;
		char *key, *val, *eq, *arg;
		int b;

		save = strchr(line, '\n');
		if (save)
			*save++ = '\0';
		lineno++;
		key = trim(line);
		if (!*key || *key == '#' || *key == ';')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err->msg, sizeof(err->msg), "%s:%u: not 'key = value'", path,
				 lineno);
			ret = -EINVAL;
			goto out;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if (!strcmp(key, "file")) {
			free(file);
			file = strdup(val);
			if (!file)
				goto out;
			continue;
		}
		for (o = opts; o->name; o++)
			if (!strcmp(o->name, key))
				break;
		if (!o->name || !strcmp(key, "help") || !strcmp(key, "version")) {
			snprintf(err->msg, sizeof(err->msg),
				 "%s:%u: unknown key '%s' (the long option names, and 'file')",
				 path, lineno, key);
			ret = -EINVAL;
			goto out;
		}
		if (o->has_arg == no_argument) {
			b = conf_bool(val);
			if (b < 0) {
				snprintf(err->msg, sizeof(err->msg),
					 "%s:%u: %s = '%s': not yes or no", path, lineno, key, val);
				ret = -EINVAL;
				goto out;
			}
			if (!b)
				continue;
			if (asprintf(&arg, "--%s", key) < 0)
				goto out;
		} else if (o->has_arg == optional_argument && !*val) {
			if (asprintf(&arg, "--%s", key) < 0)
				goto out;
		} else {
			if (asprintf(&arg, "--%s=%s", key, val) < 0)
				goto out;
		}
		if (argv_push(av, arg, true) < 0)
			goto out;
	}
	ret = 0;
	/* FILE last: after the options, as on a command line. */
	if (file) {
		ret = argv_push(av, file, true);
		file = NULL;
	}
out:
	if (ret == -ENOMEM && !err->msg[0])
		snprintf(err->msg, sizeof(err->msg), "%s: out of memory", path);
	free(file);
	free(copy);
	return ret;
}

/* Read path whole (at most CONF_MAX_BYTES).  Returns a malloc'd string or
 * NULL with err filled. */
static char *conf_read(const char *path, struct cli_err *err)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_size > CONF_MAX_BYTES) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		goto fail;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if (memchr(buf, '\0', got)) {
		errno = EINVAL;
		goto fail;
	}
	close(fd);
	return buf;
fail:
	snprintf(err->msg, sizeof(err->msg), "--config %s: %s", path, strerror(errno));
	free(buf);
	if (fd >= 0)
		close(fd);
	return NULL;
}

int cli_config_expand(int argc, char **argv, const struct option *opts, struct cli_argv *av,
		      struct cli_err *err)
{
	const char *path = NULL;
	char *text;
	int i, ret, cfg_at = -1, cfg_len = 0;

	memset(av, 0, sizeof(*av));
	err->msg[0] = '\0';
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= argc) {
				snprintf(err->msg, sizeof(err->msg),
					 "option '--config' needs a value");
				return -EINVAL;
			}
			path = argv[i + 1];
			cfg_len = 2;
		} else if (!strncmp(argv[i], "--config=", 9)) {
			path = argv[i] + 9;
			cfg_len = 1;
		} else {
			continue;
		}
		if (cfg_at >= 0) {
			snprintf(err->msg, sizeof(err->msg), "one --config at most");
			return -EINVAL;
		}
		cfg_at = i;
		i += cfg_len - 1;
	}
	if (argv_push(av, argv[0], false) < 0)
		goto nomem;
	if (path) {
		text = conf_read(path, err);
		if (!text) {
			cli_argv_free(av);
			return -EINVAL;
		}
		ret = cli_conf_args(text, path, opts, av, err);
		free(text);
		if (ret < 0) {
			cli_argv_free(av);
			return ret;
		}
	}
	/* The command line after the file: its options win. */
	for (i = 1; i < argc; i++) {
		if (i == cfg_at) {
			i += cfg_len - 1;
			continue;
		}
		if (argv_push(av, argv[i], false) < 0)
			goto nomem;
	}
	return 0;
nomem:
	cli_argv_free(av);
	snprintf(err->msg, sizeof(err->msg), "out of memory");
	return -ENOMEM;
}
