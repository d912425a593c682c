#!/bin/sh
# Ansible Vault password client (ansible.cfg vault_identity_list): prints the
# password of the vault id Ansible asks for (--vault-id ID), read from
#   ${ALGOTRADE_VAULT_PASSWORD_DIR:-~/.config/algotrade/vault}/ID   (mode 0600 or 0400)
# or, when there is none, the example inventory's public example password
# (inventories/ID/example-vault-password.txt), which the preflight refuses to deploy with.
set -eu
id=""
while [ $# -gt 0 ]; do
  case "$1" in
    --vault-id) id="${2:-}"; shift 2 || shift ;;
    --vault-id=*) id="${1#--vault-id=}"; shift ;;
    *) shift ;;
  esac
done
case "$id" in
  "" | */* | .*) echo "vault-pass-client: no usable --vault-id given" >&2; exit 2 ;;
esac
dir="${ALGOTRADE_VAULT_PASSWORD_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/algotrade/vault}"
file="$dir/$id"
if [ -f "$file" ]; then
  mode="$(stat -c %a "$file")"
  case "$mode" in
    600 | 400) cat "$file"; exit 0 ;;
    *) echo "vault-pass-client: $file is mode $mode; make it readable by you only: chmod 600 $file" >&2; exit 1 ;;
  esac
fi
example="$(dirname "$0")/../inventories/$id/example-vault-password.txt"
if [ -f "$example" ]; then
  cat "$example"
  exit 0
fi
echo "vault-pass-client: no password for vault id '$id': save it in $file (chmod 600)," \
  "or pass --vault-id $id@prompt" >&2
exit 1
