"""What the broken containers of the injected incidents print before they exit (or, for the
wedged client, while they run), as `kubectl logs --previous` shows it: each line says what a real
instance of that program would, and the cause an operator has to find in it.
"""

from __future__ import annotations

CORRUPT_CACHE_LOG = (
    "INFO     [alphaswarm.api] starting alphaswarm-core 2.14.3",
    "INFO     [alphaswarm.cache] opening feature cache /var/cache/alphaswarm/features.db",
    "Traceback (most recent call last):",
    '  File "/app/alphaswarm/cache/store.py", line 57, in open',
    '    self._db.execute("PRAGMA quick_check")',
    "sqlite3.DatabaseError: database disk image is malformed",
    "ERROR:    Application startup failed. Exiting.",
)

WEDGED_CLIENT_LOG = [
    " ⚠ Config reload: re-reading /app/config/runtime.json (SIGHUP)",
    " x Error: upstream pool http://alphaswarm-core:8000 stuck after reload: 0/10 sockets free",
    " GET /api/health 503 in 5003ms",
]
CONTROLLER_CRASH_LOG = (
    "-------------------------------------------------------------------------------",
    "NGINX Ingress controller",
    "  Release:       v1.11.2",
    "-------------------------------------------------------------------------------",
    'I0110 10:00:00.000000       7 controller.go:213] "Backend reload required"',
    'E0110 10:00:00.100000       7 controller.go:225] "Unexpected failure reloading the backend" '
    'err="nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use) '
    '(a worker left over from the failed reload still holds the port)"',
    'F0110 10:00:00.200000       7 main.go:64] "Error starting NGINX" err="exit status 1"',
)

CONTROLLER_CRASH_LOG = (
    "-------------------------------------------------------------------------------",
    "NGINX Ingress controller",
    "  Release:       v1.11.2",
    "-------------------------------------------------------------------------------",
    'I0110 10:00:00.000000       7 controller.go:213] "Backend reload required"',
    'E0110 10:00:00.100000       7 controller.go:225] "Unexpected failure reloading the backend" '
    'err="nginx: [emerg] bind() to 0.0.0.0:80 failed (98: Address already in use) '
    '(a worker left over from the failed reload still holds the port)"',
    'F0110 10:00:00.200000       7 main.go:64] "Error starting NGINX" err="exit status 1"',
)

POSTGRES_CRASH_LOG = (
    "PostgreSQL Database directory appears to contain a database; Skipping initialization",
    "LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu",
    'FATAL:  could not resize shared memory segment "/PostgreSQL.2961786152" to 16777216 bytes: '
    "No space left on device",
    "LOG:  database system is shut down",
)
REDIS_CRASH_LOG = (
    "1:C * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
    "1:M * Running mode=standalone, port=6379.",
    "1:M # Warning: Could not create server TCP listening socket *:6379: bind: "
    "Address already in use",
    "1:M # Failed listening on port 6379 (tcp), aborting.",
)

REDIS_CRASH_LOG = (
    "1:C * oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
    "1:M * Running mode=standalone, port=6379.",
    "1:M # Warning: Could not create server TCP listening socket *:6379: bind: "
    "Address already in use",
    "1:M # Failed listening on port 6379 (tcp), aborting.",
)


# crashloop-several: pool-1-node-X's local SSD returned I/O errors for a moment; the emptyDir
# feature caches of the core pods on that node were half-written.
NODE_DISK_CACHE_LOG = (
    "INFO     [alphaswarm.api] starting alphaswarm-core 2.14.3",
    "INFO     [alphaswarm.cache] opening feature cache /var/cache/alphaswarm/features.db",
    "WARNING  [alphaswarm.cache] features.db: short read at page 2731 (4096 bytes expected, 0 "
    "read)",
    "Traceback (most recent call last):",
    '  File "/app/alphaswarm/cache/store.py", line 57, in open',
    '    self._db.execute("PRAGMA quick_check")',
    "sqlite3.DatabaseError: file is not a database",
    "ERROR:    Application startup failed. Exiting.",
)

# cp-crashloop: the scheduler's lock file lives on an emptyDir, which outlives a container
# restart but not the pod; the container that died holding it left it behind.
CP_STALE_LOCK_LOG = (
    '{"level":"INFO","event":"startup","service":"alphaswarm-cp","audit_log_path":null}',
    '{"level":"INFO","event":"scheduler_lock","path":"/var/run/alphaswarm-cp/scheduler.lock",'
    '"action":"acquire"}',
    '{"level":"ERROR","event":"scheduler_lock","path":"/var/run/alphaswarm-cp/scheduler.lock",'
    '"error":"lock held by pid 1 (written by a previous container of this pod); refusing to '
    'start a second scheduler"}',
    '{"level":"CRITICAL","event":"shutdown","reason":"scheduler lock unavailable","exit_code":1}',
)
