#!/bin/bash
# crudcast-healthcheck: exits 0 when crudcast's admin listener answers GET /healthz with 200.
# The container image's HEALTHCHECK (deploy/Dockerfile): it needs only bash, whose /dev/tcp does
# the connecting, so the image carries no curl. The address comes from CRUDCAST_ADMIN_LISTEN, as
# crudcast reads it (the image sets 0.0.0.0:9901); a wildcard address is reached over loopback.
set -eu
listen=${CRUDCAST_ADMIN_LISTEN:-127.0.0.1:9901}
host=${listen%:*}
port=${listen##*:}
case $host in
  "" | 0.0.0.0) host=127.0.0.1 ;;
  "[::]") host=::1 ;;
  "["*"]") host=${host#[}; host=${host%]} ;;
esac
exec 3<>"/dev/tcp/$host/$port"
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3  # the admin listener answers localhost (DNS-rebinding check)
read -r -t 3 _ status _ <&3
[ "$status" = 200 ]
