/*
 * A tiny mail program on UW-IMAP's own library, c-client (Debian's
 * libc-client2007e), so that tests read an mbox that UW-IMAP's code wrote,
 * not one written to look like it: the pseudo message ("DON'T DELETE THIS
 * MESSAGE -- FOLDER INTERNAL DATA") with X-IMAP, then X-UID, Status,
 * X-Status and X-Keywords on every message, as uw-imapd, pine and alpine
 * write them.  tests/storage/migrate/test_migrate_dovecot.py compiles it.
 *
 *   uwimap_write MAILBOX < script
 *
 * The script, one operation a line:
 *   create                       create MAILBOX (the unix driver, empty)
 *   append FLAGS|-  DATE|-  FILE append FILE's bytes (LF line ends)
 *   set SEQUENCE FLAGS           STORE +FLAGS (keywords are created)
 *   clear SEQUENCE FLAGS         STORE -FLAGS
 *   expunge                      EXPUNGE
 * FLAGS is a space-free list joined with commas: \Seen,\Flagged,work.
 * The mailbox is opened when first needed and closed (checkpointed: the
 * file is rewritten with the headers above) at the end.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <c-client/c-client.h>

extern MAILSTREAM unixproto;

static void die(const char *what, const char *arg)
{
    fprintf(stderr, "uwimap_write: %s %s\n", what, arg ? arg : "");
    exit(1);
}

static char *flag_list(char *arg)
{
    for (char *p = arg; *p; p++)
        if (*p == ',')
            *p = ' ';
    return arg;
}

int main(int argc, char **argv)
{
    char line[4096], name[4096];
    MAILSTREAM *stream = NIL;

    if (argc != 2)
        die("usage: uwimap_write MAILBOX < script", NIL);
#include <c-client/linkage.c>
    /* c-client refuses absolute names (restrict-mailbox-access); relative
     * ones are in the home directory: make that the mailbox's directory. */
    {
        char *slash = strrchr(argv[1], '/');
        if (slash) {
            *slash = '\0';
            myusername();
            mail_parameters(NIL, SET_HOMEDIR, *argv[1] ? argv[1] : "/");
            snprintf(name, sizeof name, "%s", slash + 1);
        } else {
            snprintf(name, sizeof name, "%s", argv[1]);
        }
    }
    while (fgets(line, sizeof line, stdin)) {
        char *op = strtok(line, " \t\n");
        if (!op)
            continue;
        if (!strcmp(op, "create")) {
            /* The unix driver's prototype stream names the format (an
             * empty file or a new name says none by itself). */
            if (!mail_create(&unixproto, name))
                die("cannot create", name);
        } else if (!strcmp(op, "append")) {
            char *flags = strtok(NIL, " \t\n"), *date = strtok(NIL, "\t\n");
            char *file = strtok(NIL, "\t\n");
            STRING msg;
            FILE *f;
            long size;
            char *data;
            if (!file)
                die("append needs FLAGS DATE FILE", NIL);
            while (*date == ' ')
                date++;
            if (!(f = fopen(file, "rb")))
                die("cannot read", file);
            fseek(f, 0, SEEK_END);
            size = ftell(f);
            rewind(f);
            data = fs_get(size + 1);
            if (fread(data, 1, size, f) != (size_t) size)
                die("cannot read", file);
            fclose(f);
            data[size] = '\0';
            INIT(&msg, mail_string, data, size);
            if (!mail_append_full(stream, name, strcmp(flags, "-") ? flag_list(flags) : NIL,
                                  strcmp(date, "-") ? date : NIL, &msg))
                die("cannot append to", name);
            fs_give((void **) &data);
        } else if (!strcmp(op, "set") || !strcmp(op, "clear") || !strcmp(op, "expunge")) {
            if (!stream && !(stream = mail_open(NIL, name, NIL)))
                die("cannot open", name);
            if (!strcmp(op, "expunge")) {
                mail_expunge(stream);
            } else {
                char *seq = strtok(NIL, " \t\n"), *flags = strtok(NIL, " \t\n");
                if (!flags)
                    die(op, "needs SEQUENCE FLAGS");
                if (!strcmp(op, "set"))
                    mail_setflag(stream, seq, flag_list(flags));
                else
                    mail_clearflag(stream, seq, flag_list(flags));
            }
        } else {
            die("unknown operation", op);
        }
    }
    if (stream)
        mail_close(stream);
    return 0;
}

/* c-client's callbacks: a mail program must provide them all. */
void mm_searched(MAILSTREAM *s, unsigned long n) {}
void mm_exists(MAILSTREAM *s, unsigned long n) {}
void mm_expunged(MAILSTREAM *s, unsigned long n) {}
void mm_flags(MAILSTREAM *s, unsigned long n) {}
void mm_notify(MAILSTREAM *s, char *text, long errflg) {}
void mm_list(MAILSTREAM *s, int d, char *name, long attr) {}
void mm_lsub(MAILSTREAM *s, int d, char *name, long attr) {}
void mm_status(MAILSTREAM *s, char *mailbox, MAILSTATUS *st) {}
void mm_log(char *text, long errflg)
{
    if (errflg == ERROR || errflg == WARN)
        fprintf(stderr, "c-client: %s\n", text);
}
void mm_dlog(char *text) {}
void mm_login(NETMBX *mb, char *user, char *pwd, long trial) {}
void mm_critical(MAILSTREAM *s) {}
void mm_nocritical(MAILSTREAM *s) {}
long mm_diskerror(MAILSTREAM *s, long errcode, long serious) { return T; }
void mm_fatal(char *text) { fprintf(stderr, "c-client fatal: %s\n", text); }
