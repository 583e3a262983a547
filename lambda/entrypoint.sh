#!/bin/sh
# As in AWS's base images: CMD names the handler; under Lambda AWS_LAMBDA_RUNTIME_API is set and the
# bootstrap talks to it; elsewhere the Runtime Interface Emulator (mounted, never shipped) hosts it.
if [ $# -ne 1 ]; then
    echo "the entrypoint takes the handler name as its one argument (CMD)" >&2
    exit 142
fi
export _HANDLER="$1"
if [ -n "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    exec /var/runtime/bootstrap
fi
if [ ! -x /usr/local/bin/aws-lambda-rie ]; then
    echo "not under Lambda and no emulator at /usr/local/bin/aws-lambda-rie; see lambda/README.md" >&2
    exit 1
fi
# RIE_ADDRESS / RIE_API_ADDRESS let several emulators share the host network on other ports.
exec /usr/local/bin/aws-lambda-rie \
    --runtime-interface-emulator-address "${RIE_ADDRESS:-0.0.0.0:8080}" \
    --runtime-api-address "${RIE_API_ADDRESS:-127.0.0.1:9001}" \
    /var/runtime/bootstrap
