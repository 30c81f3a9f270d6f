#!/usr/bin/env bash
# Debian packages the tests need: nginx (HTTP/HTTPS), openssl (test CAs), the compressors that
# build archive fixtures, OpenStack Swift + memcached (S3 with signature checks), docker-registry,
# skopeo, umoci and apache2-utils (OCI registry with htpasswd), git (git daemon, http-backend),
# krb5 KDC + libkrb5-dev (Kerberos for WebHDFS SPNEGO; the optional `kerberos` npm module builds
# against it, so this runs before npm ci), buildah (builds and runs the container image), time
# (/usr/bin/time measures peak memory in tests).
# gcloud comes with the machine image. Idempotent; needs root (CI and dev machines are root).
set -euo pipefail
packages=(nginx openssl procps tar gzip bzip2 xz-utils zstd zip swift swift-proxy swift-object swift-container swift-account memcached docker-registry skopeo umoci apache2-utils git krb5-kdc krb5-admin-server krb5-user libkrb5-dev buildah time)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
