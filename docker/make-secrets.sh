#!/usr/bin/env bash
# Writes the secrets docker/compose.yaml mounts, random, into docker/secrets/ (git ignores
# them); an existing file is kept, so running it again changes nothing.
set -euo pipefail
cd "$(dirname "$0")/secrets"
# Compose without Swarm bind-mounts each secret file with its host permissions, and the
# containers read them as their own users (fraudscore: uid 10001, postgres, minio): so the
# files are readable by all, and the directory is closed to everyone but you.
chmod 700 .
umask 022

secret() {  # name, value
  [[ -e $1 ]] || printf '%s' "$2" >"$1"
}
random() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

secret postgres_password "$(random 24)"
secret minio_root_user fraudscore-admin
secret minio_root_password "$(random 24)"
secret audit_s3_secret_access_key "$(random 24)"
secret api_jwt_secret "$(random 32)"
ls -l "$PWD"
