#!/bin/sh
# Mimics the Vast.ai base images: host keys made on first boot, the account's keys
# arrive in PUBLIC_KEY, the user's onstart script runs once sshd is up.
set -eu
ssh-keygen -A >/dev/null
if [ -n "${PUBLIC_KEY:-}" ]; then
    printf '%s\n' "$PUBLIC_KEY" > /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
fi
# sshd hands a login only the variables it knows; Vast exports the container env for logins the same way.
env | grep -v -e '^PUBLIC_KEY=' -e '^HOSTNAME=' -e '^HOME=' -e '^PWD=' -e '^SHLVL=' \
    | sed 's/^\([^=]*\)=\(.*\)$/export \1="\2"/' > /etc/profile.d/vast_env.sh || true
if [ -s /root/onstart.sh ]; then
    (sleep 1; sh /root/onstart.sh > /var/log/onstart.log 2>&1) &
fi
exec "$@"
