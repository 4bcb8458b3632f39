"""`sh -c` as the runbook's exec uses it: one line of stdin into a variable, then the command.

The flows never put a password on an exec's argv (the API server's audit log and the sandbox's
journal keep argv); they run `sh -c 'IFS= read -r VAR && export VAR && exec "$0" "$@"'
PROGRAM ARGS...` and write the password on stdin. This is the one script the sandbox's shell
understands: it hands the program's handler its argv with the secret as that program takes it
on its command line (redis-cli's `-a`; psql's PGPASSWORD is not needed over the pod's trusted
local socket), which stays inside the sandbox. Any other `sh -c` is a shell the pods do not
have here: the runtime's "executable file not found".
"""

from __future__ import annotations

import re

_READ_THEN_EXEC = re.compile(r'IFS= read -r ([A-Z_][A-Z0-9_]*) && export \1 && exec "\$0" "\$@"')


def unwrap(argv: list[str], stdin: str) -> list[str]:
    """The command the shell would run, with the secret read from stdin where the program
    takes it; `argv` itself when it is not the read-then-exec script."""
    if argv[:2] != ["sh", "-c"] or len(argv) < 4:
        return argv
    found = _READ_THEN_EXEC.fullmatch(argv[2])
    if found is None:
        return argv
    secret = stdin.split("\n", 1)[0]
    program, args = argv[3], argv[4:]
    if found[1] == "REDISCLI_AUTH" and program == "redis-cli":
        return [program, "-a", secret, "--no-auth-warning", *args]
    return [program, *args]
