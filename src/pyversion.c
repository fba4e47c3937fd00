/* pyversion.c - see pyversion.h. */
#include "pyversion.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int plausible(int major, int minor)
{
    return (major == 2 && minor >= 0 && minor <= 7) || (major == 3 && minor >= 0 && minor <= 99);
}

int pyversion_from_hex(uint64_t hex, struct pyversion *v)
{
    int major = (int)((hex >> 24) & 0xff), minor = (int)((hex >> 16) & 0xff);
    if ((hex >> 32) != 0 || !plausible(major, minor))
        return -EINVAL;
    v->major = major;
    v->minor = minor;
    v->micro = (int)((hex >> 8) & 0xff);
    return 0;
}

/* Reads "X.Y" at s; returns the number of characters used, 0 if none. */
static int parse_xy(const char *s, int *major, int *minor)
{
    int n = 0;
    if (sscanf(s, "%d.%d%n", major, minor, &n) != 2 || n == 0)
        return 0;
    if (!isdigit((unsigned char)s[0]))
        return 0;
    return n;
}

int pyversion_from_soname(const char *soname, struct pyversion *v)
{
    if (!soname)
        return -EINVAL;
    const char *p = strstr(soname, "libpython");
    if (!p)
        return -EINVAL;
    int major, minor;
    if (!parse_xy(p + 9, &major, &minor) || !plausible(major, minor))
        return -EINVAL;
    v->major = major;
    v->minor = minor;
    v->micro = -1;
    return 0;
}

int pyversion_from_string(const char *s, struct pyversion *v)
{
    int major, minor, micro, n = 0;
    if (sscanf(s, "%d.%d.%d%n", &major, &minor, &micro, &n) != 3 || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    /* Allow a release tag ("3.13.0rc1", "2.7.18+") but nothing else. */
    for (const char *p = s + n; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '+')
            return -EINVAL;
    if (!plausible(major, minor) || micro < 0 || micro > 99)
        return -EINVAL;
    v->major = major;
    v->minor = minor;
    v->micro = micro;
    return 0;
}

void pyversion_format(const struct pyversion *v, char *buf, int cap)
{
    if (v->micro >= 0)
        snprintf(buf, (size_t)cap, "%d.%d.%d", v->major, v->minor, v->micro);
    else
        snprintf(buf, (size_t)cap, "%d.%d", v->major, v->minor);
}
