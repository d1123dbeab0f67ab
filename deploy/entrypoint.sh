#!/bin/sh
# Runs one service of the mesh: the first argument names it (decision, parser,
# monitor, executor-agent), else AUTOGLM_SERVICE does. Any other command runs
# as given (`docker run IMAGE node libs/client/bin/autoglm.js nodes`, `sh`).
set -eu

APP_DIR=${AUTOGLM_APP_DIR:-/app}

service=${AUTOGLM_SERVICE:-}
if [ "$#" -gt 0 ]; then
  case "$1" in
    decision | parser | monitor | executor-agent)
      service=$1
      shift
      ;;
    *)
      exec "$@"
      ;;
  esac
fi

case "$service" in
  decision | parser | monitor | executor-agent) ;;
  "")
    echo "autoglm: name a service: decision, parser, monitor or executor-agent (argument or AUTOGLM_SERVICE)" >&2
    exit 64
    ;;
  *)
    echo "autoglm: unknown service \"$service\"; expected decision, parser, monitor or executor-agent" >&2
    exit 64
    ;;
esac

# exec, so that `docker stop` delivers SIGTERM to node itself (graceful shutdown).
exec node "$APP_DIR/services/$service/dist/main.js" "$@"
