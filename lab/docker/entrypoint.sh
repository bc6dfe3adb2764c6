#!/bin/sh
# Entrypoint of the herald/speaker image. With arguments, runs them (`docker run IMAGE herald check
# --config ...`). Without, starts `herald-l2 run` if /etc/herald/l2.yaml is bound and `herald agent`
# if /etc/herald/herald.yaml is bound (the netns runner's rule, lab/src/runner/images.rs), and exits
# when any of them exits, so the container's state follows the agents'.
set -eu
if [ "$#" -gt 0 ]; then
    exec "$@"
fi
AGENT_CONF=${HERALD_AGENT_CONF:-/etc/herald/herald.yaml}
L2_CONF=${HERALD_L2_CONF:-/etc/herald/l2.yaml}
if [ ! -f "$AGENT_CONF" ] && [ ! -f "$L2_CONF" ]; then
    echo "herald-entrypoint: bind $AGENT_CONF and/or $L2_CONF into the container" >&2
    exit 2
fi
pids=""
stop() {
    # shellcheck disable=SC2086
    # Some of them may be gone already: a failing kill is expected, not an error.
    kill -TERM $pids 2>/dev/null || true
    wait || true
}
trap 'stop; exit 0' TERM INT
if [ -f "$L2_CONF" ]; then
    herald-l2 run --config "$L2_CONF" --status-file /run/herald/l2-status.json &
    pids="$pids $!"
fi
if [ -f "$AGENT_CONF" ]; then
    herald agent --config "$AGENT_CONF" &
    pids="$pids $!"
fi
# Wait for the first agent to exit, then stop the others too.
while :; do
    for p in $pids; do
        if ! kill -0 "$p" 2>/dev/null; then
            status=0
            wait "$p" || status=$?
            echo "herald-entrypoint: agent (pid $p) exited with $status" >&2
            stop
            exit "$status"
        fi
    done
    sleep 1
done
