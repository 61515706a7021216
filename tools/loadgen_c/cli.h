/* What loadgen.c and feeder.c share on their command line: a numeric flag's value, checked.
 * The including program defines usage(msg), which prints msg and its usage and exits with status 2. */
#ifndef LOADGEN_CLI_H
#define LOADGEN_CLI_H
#include <stdio.h>
#include <stdlib.h>

static void usage(const char *msg);

/* The number s given to flag, in [lo, hi]; anything else is a usage error naming both. */
static double num(const char *flag, const char *s, double lo, double hi) {
    char *end;
    double v = strtod(s ? s : "", &end);
    if (!s || *end || end == s || v < lo || v > hi) {
        char m[160];
        snprintf(m, sizeof m, "%s: expected a number in [%g, %g], got %s", flag, lo, hi, s ? s : "nothing");
        usage(m);
    }
    return v;
}
#endif
