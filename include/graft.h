/*
 * graft.h — helpers for writing live-patch fixes (graft build fix.c --target BIN).
 *
 * A function defined (non-static) in the fix replaces the target's function of the same name.
 * Static functions in the fix are new helpers. Anything the fix declares but does not define is
 * bound to the running target: its globals, its statics, and the libraries it has loaded (libc).
 */
#ifndef GRAFT_H
#define GRAFT_H

/* Refer to a static variable or function of the target. `file` is the source file's basename;
 * it is needed only when several files define a static of that name.
 *   GRAFT_LOCAL(int, request_count, "server.c");   -> uses server.c's `static int request_count`
 */
#define GRAFT_LOCAL(type, name, file) extern type name __asm__(#name "@" file)

/* Same for a static function: GRAFT_LOCAL_FN(int, parse_header, (const char *), "http.c"); */
#define GRAFT_LOCAL_FN(ret, name, params, file) extern ret name params __asm__(#name "@" file)

/* Replace a static function of the target that has a twin in another file:
 *   GRAFT_REPLACE(int, parse_header, (const char *s), "http.c") { ...new body... } */
#define GRAFT_REPLACE(ret, name, params, file) ret name params __asm__(#name "@" file); ret name params

#endif
